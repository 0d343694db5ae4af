"""Monitored services keep secrets and internal data to themselves: http(s) only, nothing of
an answer echoed, targets with credentials given as env:NAME, nothing secret on any page, and
only Admins add or change services (Managers pause them)."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.urls import reverse

from ops.hooks import _monitor_the_portal
from ops.models import CheckResult, MonitoredService
from ops.services.health import health_result_store
from ops.services.health_checks import CheckSpec, describe_target, run_check
from portal import roles
from portal.models import AuditEntry
from tests.conftest import client_for
from tests.fakes import closed_port, controlled_server

pytestmark = pytest.mark.django_db

LEAK = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def server():
    with controlled_server() as server:
        yield server


@pytest.fixture
def admin_user(make_user):
    return make_user("ada", roles.ADMIN, is_staff=True)


def spec(kind: str, target: str, **extra) -> CheckSpec:
    return CheckSpec(kind=kind, target=target, timeout=2.0, **extra)


# Item 10: http(s) only, nothing of the answer echoed


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "FILE:///etc/hostname", "ftp://127.0.0.1/", "data:,hello"]
)
def test_the_http_check_refuses_other_schemes_when_it_runs(target):
    outcome = run_check(spec("http", target))
    assert outcome.state == "critical"
    assert outcome.detail == "refused: only http:// and https:// URLs are checked"


def test_a_file_url_behind_an_env_reference_is_refused_too(monkeypatch):
    monkeypatch.setenv("PORTAL_TEST_TARGET", "file:///etc/passwd")
    outcome = run_check(spec("http", "env:PORTAL_TEST_TARGET"))
    assert outcome.state == "critical" and "root:" not in outcome.detail
    assert outcome.detail == "refused: only http:// and https:// URLs are checked"


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1/"])
def test_the_admin_refuses_other_schemes(admin_user, target):
    service = MonitoredService(name="x", slug="x", kind="http", target=target)
    with pytest.raises(Exception, match="http:// or https://"):
        service.full_clean()


def test_no_answer_content_reaches_the_pages_or_the_api(server, operator):
    server.body = {"iam": {"credentials": {"token": LEAK}}, "status": "ok"}
    service = MonitoredService.objects.create(
        name="Metadata",
        slug="metadata",
        kind="http",
        target=server.url,
        json_field="iam.credentials.token",
        json_value="x",
    )
    outcome = run_check(
        spec("http", server.url, json_field="iam.credentials.token", json_value="x")
    )
    assert outcome.detail == "field did not match" and LEAK not in str(outcome.metrics)
    health_result_store(service=service, outcome=outcome)
    body = run_check(spec("http", server.url, body_contains="AKIA-something-else"))
    assert body.detail == "body did not match"
    client = client_for(operator)
    for url in [reverse("ops:health_panel"), service.get_absolute_url(), "/api/health/services"]:
        text = client.get(url).content.decode()
        assert "field did not match" in text and LEAK not in text, url


# Item 11: targets name an environment variable; nothing secret shown


def test_an_env_target_is_read_when_the_check_runs(server, monkeypatch):
    monkeypatch.setenv("PORTAL_TEST_HTTP", server.url)
    assert run_check(spec("http", "env:PORTAL_TEST_HTTP")).state == "ok"
    monkeypatch.delenv("PORTAL_TEST_HTTP")
    outcome = run_check(spec("http", "env:PORTAL_TEST_HTTP"))
    assert outcome.state == "critical"
    assert outcome.detail == "the environment variable PORTAL_TEST_HTTP is not set"


def test_a_resolved_secret_never_shows_in_the_detail(monkeypatch):
    with closed_port() as closed:
        url = f"redis://:hunter2-secret@127.0.0.1:{closed}/0"
        monkeypatch.setenv("PORTAL_TEST_REDIS", url)
        outcome = run_check(spec("redis", "env:PORTAL_TEST_REDIS"))
        assert outcome.state == "critical" and "hunter2-secret" not in outcome.detail
        query = f"redis://127.0.0.1:{closed}/0?password=hunter2-secret"
        outcome = run_check(spec("redis", query))
    assert "hunter2-secret" not in outcome.detail


@pytest.mark.parametrize(
    "target",
    [
        "postgres://app:s3cret@127.0.0.1:5432/app",
        "postgres://app@127.0.0.1:5432/app?password=s3cret",
        "https://127.0.0.1/status?token=s3cret",
    ],
)
def test_a_target_with_a_secret_is_refused_in_favour_of_env(target):
    kind = "http" if target.startswith("https") else "postgres"
    service = MonitoredService(name="x", slug="x", kind=kind, target=target)
    with pytest.raises(Exception, match="enter env:NAME"):
        service.full_clean()


def test_env_targets_are_validated_with_their_value(monkeypatch):
    monkeypatch.setenv("PORTAL_TEST_DB", "postgres://app:s3cret@127.0.0.1:5432/app")
    MonitoredService(name="x", slug="x", kind="postgres", target="env:PORTAL_TEST_DB").full_clean()
    with pytest.raises(Exception, match="PORTAL_TEST_UNSET is not set"):
        MonitoredService(
            name="x", slug="x", kind="redis", target="env:PORTAL_TEST_UNSET"
        ).full_clean()
    with pytest.raises(Exception, match="redis://"):
        MonitoredService(name="x", slug="x", kind="redis", target="env:PORTAL_TEST_DB").full_clean()
    with pytest.raises(Exception, match="not an environment variable name"):
        MonitoredService(name="x", slug="x", kind="redis", target="env:no such").full_clean()


def test_describe_target_masks_query_secrets_and_keeps_env_references():
    assert describe_target("redis://127.0.0.1:6379/0?password=hunter2") == (
        "redis://127.0.0.1:6379/0?password=***"
    )
    assert describe_target("postgres://app:pw@db/app?sslmode=require") == (
        "postgres://app:***@db/app?sslmode=require"
    )
    assert describe_target("env:DATABASE_URL") == "env:DATABASE_URL"


def test_service_page_hides_a_password_in_the_query_string(operator):
    service = MonitoredService.objects.create(
        name="Cache", slug="cache", kind="redis", target="redis://10.0.0.5:6379/0?password=hunter2"
    )
    html = client_for(operator).get(service.get_absolute_url()).content.decode()
    assert "hunter2" not in html and "password=***" in html


def test_the_demo_setup_names_environment_variables(settings):
    settings.REDIS_URL = "redis://:hunter2@127.0.0.1:6379/14"
    _monitor_the_portal(demo=True)
    assert MonitoredService.objects.get(slug="redis").target == "env:REDIS_URL"
    targets = " ".join(MonitoredService.objects.values_list("target", flat=True))
    assert "hunter2" not in targets


def test_the_migration_moves_secrets_out_of_existing_rows(monkeypatch):
    known = "redis://:hunter2@127.0.0.1:6379/14"
    monkeypatch.setenv("REDIS_URL", known)
    copied = MonitoredService.objects.create(name="Redis", slug="redis", kind="redis", target=known)
    unknown = MonitoredService.objects.create(
        name="Other DB",
        slug="other-db",
        kind="postgres",
        target="postgres://app:zebra-42@10.0.0.9:5432/app",
        last_detail=f"iam.credentials.token is “{LEAK}”, expected “x”",
    )
    plain = MonitoredService.objects.create(
        name="Web", slug="web", kind="http", target="http://127.0.0.1/api/health"
    )
    CheckResult.objects.create(
        service=unknown, state="critical", detail=f"iam.credentials.token is “{LEAK}”, expected “x”"
    )
    migration = importlib.import_module("ops.migrations.0008_monitoring_secrets")
    migration.move_secrets_out(django_apps, None)
    copied.refresh_from_db()
    unknown.refresh_from_db()
    plain.refresh_from_db()
    assert copied.target == "env:REDIS_URL" and copied.is_active
    assert unknown.target == "postgres://app:***@10.0.0.9:5432/app" and not unknown.is_active
    assert unknown.last_detail.startswith("Paused: the target held a password or token")
    assert plain.target == "http://127.0.0.1/api/health"
    assert CheckResult.objects.get().detail == "field did not match"


# Who may add, change and pause services


def _service_form(service: MonitoredService, **changes) -> dict:
    data = {
        "name": service.name,
        "slug": service.slug,
        "kind": service.kind,
        "target": service.target,
        "is_active": "on" if service.is_active else "",
        "interval_seconds": "30",
        "timeout_seconds": "5",
        "latency_warning_ms": "1000",
        "latency_critical_ms": "2000",
        "expected_status": "200",
        "days_warning": "21",
        "days_critical": "7",
        "queue_warning": "50",
        "queue_critical": "100",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_managers_may_pause_but_not_add_or_change_services(manager, admin_user):
    service = MonitoredService.objects.create(
        name="Web", slug="web", kind="http", target="http://127.0.0.1:9/"
    )
    client = client_for(manager)
    add = reverse("admin:ops_monitoredservice_add")
    assert client.get(add).status_code == 403
    assert client.post(add, _service_form(service, slug="other")).status_code == 403
    change = reverse("admin:ops_monitoredservice_change", args=[service.pk])
    page = client.get(change).content.decode()
    assert 'name="target"' not in page and 'name="is_active"' in page
    # A row from before env: targets shows its target masked to a Manager.
    legacy = MonitoredService.objects.create(
        name="Legacy", slug="legacy", kind="http", target="http://127.0.0.1:9/?token=zz-secret"
    )
    page = client.get(reverse("admin:ops_monitoredservice_change", args=[legacy.pk]))
    text = page.content.decode()
    assert "zz-secret" not in text and "token=***" in text
    # A forged target in the form changes nothing; unticking Active pauses.
    response = client.post(
        change, _service_form(service, target="file:///etc/passwd", is_active="")
    )
    assert response.status_code == 302
    service.refresh_from_db()
    assert service.target == "http://127.0.0.1:9/" and not service.is_active
    entry = AuditEntry.objects.get(action="health.service.pause")
    assert entry.actor == manager and entry.after == {"is_active": False}
    # The list's action resumes.
    changelist = reverse("admin:ops_monitoredservice_changelist")
    client.post(changelist, {"action": "resume", "_selected_action": [service.pk]})
    service.refresh_from_db()
    assert service.is_active and AuditEntry.objects.filter(action="health.service.resume").exists()
    # Admins add and change.
    admin = client_for(admin_user)
    response = admin.post(add, _service_form(service, name="API", slug="api"))
    assert response.status_code == 302 and MonitoredService.objects.filter(slug="api").exists()


def test_operators_may_not_pause(operator):
    service = MonitoredService.objects.create(
        name="Web", slug="web", kind="http", target="http://127.0.0.1:9/"
    )
    change = reverse("admin:ops_monitoredservice_change", args=[service.pk])
    response = client_for(operator).post(change, _service_form(service, is_active=""))
    assert response.status_code in {302, 403}
    service.refresh_from_db()
    assert service.is_active
