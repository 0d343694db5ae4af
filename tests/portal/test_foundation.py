"""Roles, login, CSRF, CSP and settings from the environment."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from portal import env, roles
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db


def test_roles_are_groups_with_their_permissions():
    perms = {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.prefetch_related("permissions__content_type")
    }
    assert set(roles.ROLES) <= set(perms)
    assert "ops.tick_checklistrun" in perms[roles.OPERATOR]
    assert "ops.change_checklisttemplate" not in perms[roles.OPERATOR]
    assert {"ops.change_checklisttemplate", "portal.view_auditentry"} <= perms[roles.MANAGER]
    assert "ops.tick_checklistrun" not in perms[roles.IMAGE_STAFF]
    assert perms[roles.OPERATOR] < perms[roles.ADMIN]


def test_login_flow(operator):
    client = Client()
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/"
    page = client.get(response["Location"])
    assert page.status_code == 200 and b'autocomplete="current-password"' in page.content
    bad = client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
    assert bad.status_code == 200 and b"didn't match" in bad.content
    good = client.post("/accounts/login/?next=/", {"username": "olivia", "password": PASSWORD})
    assert good.status_code == 302
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_csp_forbids_inline_script_and_style(operator):
    response = client_for(operator).get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    html = response.content.decode()
    assert "<script>" not in html and " style=" not in html and " onclick=" not in html
    assert "/static/vendor/htmx/htmx-2.0.11.min.js" in html


def test_htmx_posts_need_the_csrf_token_from_the_body(make_template, operator):
    from ops.services.checklists import checklist_runs_schedule

    make_template(items=["One"])
    (run,) = checklist_runs_schedule()
    item = run.items.get()
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in page
    token = page.split('"X-CSRFToken": "')[1].split('"')[0]
    url = reverse("ops:item_tick", args=[run.pk, item.pk])
    assert client.post(url, {"done": "1"}, HTTP_HX_REQUEST="true").status_code == 403
    item.refresh_from_db()
    assert item.state == "open"
    response = client.post(url, {"done": "1"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.state == "done"


def test_static_files_are_served(client):
    response = client.get("/static/portal/portal.css")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("reader", "name", "value", "message"),
    [
        (lambda: env.env_bool("X_FLAG", False), "X_FLAG", "maybe", "X_FLAG must be a boolean"),
        (lambda: env.env_int("X_NUM", 1), "X_NUM", "ten", "X_NUM must be an integer"),
        (lambda: env.env_int("X_NUM", 1, minimum=1), "X_NUM", "0", "X_NUM must be at least 1"),
        (
            lambda: env.database_from_url(env.env_str("X_DB")),
            "X_DB",
            "mysql://h/db",
            "DATABASE_URL must start with postgres://",
        ),
        (
            lambda: env.database_from_url(env.env_str("X_DB")),
            "X_DB",
            "postgres://h:port/db",
            "port that is not a number",
        ),
        (
            lambda: env.database_from_url(env.env_str("X_DB")),
            "X_DB",
            "postgres://h:5432/",
            "must name a database",
        ),
    ],
)
def test_malformed_environment_is_refused(monkeypatch, reader, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader()


def test_env_reads_files_and_urls(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env.env_str("X_SECRET") == "s3cret"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot read"):
        env.env_str("X_SECRET")
    database = env.database_from_url(
        "postgres://ops:p%40ss@db.internal:6432/portal?sslmode=require"
    )
    assert database["NAME"] == "portal" and database["PASSWORD"] == "p@ss"
    assert database["PORT"] == "6432" and database["OPTIONS"] == {"sslmode": "require"}
    sqlite = env.database_from_url("sqlite:////tmp/x.sqlite3")
    assert sqlite["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in sqlite["OPTIONS"]["init_command"]


def test_favicon_ico_leads_to_the_icon_without_a_login(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("portal/favicon.svg")
