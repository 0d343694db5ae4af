"""Input that used to give a 500: far-away dates, NUL characters, login redirects. Each gets
a clear 400 (or the login page's own answer), never a server error; a fuzz test sends many
generated values to every list filter."""

from urllib.parse import quote, unquote

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from portal import roles
from portal.services.audit import audit_record
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db

DATE_PAGES = ["ops:incident_list", "ops:incident_export", "ops:incident_report", "audit_log"]


@pytest.fixture
def some_data(make_incident, operator, manager):
    make_incident(operator, title="Checkout errors")
    audit_record(actor=manager, action="test.thing", summary="something")


@pytest.mark.parametrize("name", DATE_PAGES)
@pytest.mark.parametrize(
    "params",
    [
        {"until": "9999-12-31"},
        {"since": "9999-12-31", "until": "9999-12-31"},
        {"since": "0001-01-01"},
    ],
)
def test_dates_out_of_range_are_refused_with_a_message(some_data, manager, name, params):
    response = client_for(manager).get(reverse(name), params)
    assert response.status_code == 400
    text = response.content.decode()
    assert "must be between 1970-01-01 and 2999-12-31" in text


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("ops:incident_list", "q"),
        ("ops:incident_list", "severity"),
        ("ops:incident_list", "commander"),
        ("ops:incident_list", "service"),
        ("ops:incident_export", "q"),
        ("audit_log", "actor"),
        ("audit_log", "q"),
        ("ops:template_list", "q"),
    ],
)
def test_a_nul_character_in_a_filter_is_a_clear_400(some_data, manager, name, param):
    response = client_for(manager).get(f"{reverse(name)}?{param}=a%00b&status=open")
    assert response.status_code == 400
    text = response.content.decode()
    assert f"The address has a NUL character (%00) in “{param}”" in text
    assert f'href="{reverse(name)}"' in text


def test_logged_in_user_asking_for_the_login_page_to_return_to_itself_goes_home(operator):
    client = client_for(operator)
    response = client.get("/accounts/login/?next=/accounts/login/")
    assert response.status_code == 302 and response["Location"] == reverse("today")
    response = client.get("/accounts/login/?next=/accounts/login/%3Fnext%3D/")
    assert response.status_code == 302 and response["Location"] == reverse("today")


def test_logging_in_with_next_pointing_at_the_login_page_goes_home(operator):
    response = Client().post(
        "/accounts/login/?next=/accounts/login/",
        {"username": "olivia", "password": PASSWORD, "next": "/accounts/login/"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("today")


def test_htmx_login_redirect_keeps_the_whole_page_address(db):
    page = "/incidents/?severity=P1&status=open&q=a b"
    response = Client().get(
        "/incidents/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=f"http://testserver{page}"
    )
    location = response["HX-Redirect"]
    assert location.startswith("/accounts/login/?next=")
    assert unquote(location.split("next=", 1)[1]).replace("+", " ") == page
    assert "&status" not in location


# The fuzz test: every list filter, the values that broke it and a few hundred generated ones.

LIST_FILTERS = {
    "ops:incident_list": ["q", "severity", "status", "service", "commander", "since", "until"],
    "ops:incident_export": ["q", "severity", "status", "service", "commander", "since", "until"],
    "ops:incident_report": ["since", "until"],
    "audit_log": ["actor", "action", "object_type", "q", "since", "until"],
    "ops:template_list": ["q"],
    "ops:health_panel": ["range"],
    "images:batch_list": [],
}
KNOWN_BAD = [
    "9999-12-31",
    "0001-01-01",
    "0000-00-00",
    "2026-02-30",
    "\x00",
    "a\x00b",
    "%00",
    "'; DROP TABLE x; --",
    "\\",
    "%",
    "_",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    " " * 300,
    "x" * 5000,
    "-1",
    "99999999999999999999",
]
PAGE_VALUES = ["0", "-1", "last", "99999", "1e9", "\x00"]

values = st.one_of(
    st.sampled_from(KNOWN_BAD),
    st.text(max_size=40),
    st.dates().map(str),
    st.binary(max_size=20).map(lambda raw: raw.decode("latin-1")),
)


def _query(params: dict[str, str]) -> str:
    return "&".join(
        f"{quote(name)}={quote(value.encode('utf-8', 'surrogatepass'))}"
        for name, value in params.items()
    )


@pytest.fixture
def admin_client(make_user, some_data):
    return client_for(make_user("ada", roles.ADMIN, is_staff=True, is_superuser=True))


@pytest.mark.parametrize("name", list(LIST_FILTERS))
def test_fuzzed_filters_never_give_a_server_error(admin_client, name):
    url = reverse(name)
    filters = LIST_FILTERS[name] + ["page"]

    @fuzz_settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.dictionaries(st.sampled_from(filters), values, min_size=1, max_size=3))
    def check(params):
        response = admin_client.get(f"{url}?{_query(params)}")
        assert response.status_code < 500, (params, response.status_code)
        if any("\x00" in value for value in params.values()):
            assert response.status_code == 400

    check()
    for value in KNOWN_BAD + PAGE_VALUES:
        for param in filters:
            response = admin_client.get(f"{url}?{_query({param: value})}")
            assert response.status_code < 500, (param, value, response.status_code)
