"""The main navigation: each role sees the links of the pages it may open (registered by the
apps in portal.registry), the page shown is marked current, and the account menu holds the
audit log, the admin and logging out."""

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.registry import NavLink, Registry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

OPS = [
    "Checklists",
    "Health",
    "Incidents",
    "Maintenance",
    "Calendar",
    "GDPR",
    "Alerts",
    "Deploys",
    "Backups",
]


def _main_links(html: str) -> list[str]:
    nav = html[html.index('aria-label="Main"') : html.index("data-account-menu")]
    return re.findall(r"<li><a href=\"[^\"]+\"[^>]*>([^<]+)</a></li>", nav)


def _current(html: str) -> list[str]:
    return re.findall(r'aria-current="page">([^<]+)</a>', html)


@pytest.mark.parametrize(
    ("persona", "links"),
    [
        ("operator", ["Today", *OPS]),
        ("manager", ["Today", *OPS]),
        ("image_staff", ["Today", "Checklists", "Health", "Images"]),
        # Found trying the portal as a user in no role: Checklists was listed and answered 403.
        ("outsider", ["Today"]),
    ],
)
def test_each_role_sees_the_links_of_the_pages_it_may_open(request, persona, links):
    user = request.getfixturevalue(persona)
    html = client_for(user).get("/").content.decode()
    assert _main_links(html) == links
    # and every page listed opens for this user
    for url in re.findall(r"<li><a href=\"(/[^\"]*)\"", html):
        assert client_for(user).get(url).status_code == 200, url


def test_the_page_shown_is_marked_current_in_the_navigation(operator, make_incident):
    incident = make_incident(operator, title="Checkout errors")
    client = client_for(operator)
    assert _current(client.get("/").content.decode()) == ["Today"]
    assert _current(client.get(incident.get_absolute_url()).content.decode()) == ["Incidents"]
    assert _current(client.get("/on-call/").content.decode()) == ["Alerts"]
    assert _current(client.get("/calendar/").content.decode()) == ["Calendar"]


def test_the_account_menu_holds_the_audit_log_and_the_admin_for_those_who_may(operator, manager):
    mine = client_for(operator).get("/").content.decode()
    account = mine[mine.index("data-account-menu") :]
    assert "olivia" in account and "Log out" in account
    assert "Audit log" not in account and "Admin" not in account
    theirs = client_for(manager).get("/audit/").content.decode()
    account = theirs[theirs.index("data-account-menu") :]
    assert 'href="/audit/" aria-current="page">Audit log' in account
    assert 'href="/admin/">Admin' in account


def test_two_links_with_one_label_are_refused():
    registry = Registry()
    registry.add_nav_link(NavLink("Deploys", "ops:environment_list"))
    with pytest.raises(ImproperlyConfigured, match="Deploys"):
        registry.add_nav_link(NavLink("Deploys", "ops:backup_list"))
