"""Deploy jobs against the simulated DigitalOcean (a real HTTP server on 127.0.0.1) with pydo
pointed at it: followed to the end, single flight, cancel, roles, gates, automatic rollback
with an incident, and the faults the issue lists."""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ops.digitalocean_simulator import SIM_TOKEN
from ops.models import (
    Backup,
    BackupTarget,
    CheckResult,
    Deploy,
    DeployStatus,
    Environment,
    Incident,
    Kpi,
    MaintenanceWindow,
    MonitoredService,
    WindowOccurrence,
)
from ops.selectors.health import kpi_values
from ops.services import releases
from ops.services.health import health_result_store
from ops.services.health_checks import Outcome
from ops.services.maintenance import maintenance_occurrence_cancel
from ops.services.releases import (
    deploy_approve,
    deploy_cancel,
    deploy_gates,
    deploy_rollback_start,
    deploy_run,
    deploy_start,
    deploys_resume,
)
from portal.celery import app
from portal.errors import ActionRefused
from portal.models import AuditEntry
from portal.registry import registry
from tests.conftest import client_for
from tests.fakes import simulator_in_thread

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def simulator(settings, monkeypatch):
    server = simulator_in_thread(step_seconds=0.05)
    server.add_app("staging-app", "staging")
    server.add_app("production-app", "production")
    settings.DIGITALOCEAN_API_URL = server.url
    settings.DEPLOY_POLL_SECONDS = 0.02
    settings.DEPLOY_HEALTH_INTERVAL_SECONDS = 0.02
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", SIM_TOKEN)
    yield server
    server.stop()


@pytest.fixture
def staging(db, simulator):
    return Environment.objects.create(
        name="Staging",
        slug="staging",
        app_id="staging-app",
        health_urls=f"{simulator.url}/_sim/apps/staging-app/health",
        promotion_order=0,
        validate_seconds=0,
    )


@pytest.fixture
def production(db, simulator):
    return Environment.objects.create(
        name="Production",
        slug="production",
        app_id="production-app",
        health_urls=f"{simulator.url}/_sim/apps/production-app/health",
        promotion_order=1,
        requires_manager=True,
        validate_seconds=0,
    )


def test_a_staging_deploy_is_followed_to_active(staging, operator, simulator):
    deploy = deploy_start(environment=staging, user=operator, version="v1.2.0")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.error
    assert deploy.phase == "ACTIVE" and deploy.simulated
    assert [step["status"] for step in deploy.steps] == ["SUCCESS"] * 3
    assert all(0 <= step["seconds"] < 5 for step in deploy.steps)
    assert "[build] " in deploy.log and "build: done" in deploy.log
    assert deploy.previous_deployment_id and deploy.do_deployment_id
    assert simulator.created == 1
    assert AuditEntry.objects.filter(action="deploy.start", summary__contains="v1.2.0").exists()


def test_two_clicks_make_one_job(staging, operator, second_operator):
    first = deploy_start(environment=staging, user=operator, version="v1")
    with pytest.raises(ActionRefused, match="already under way"):
        deploy_start(environment=staging, user=second_operator, version="v1")
    assert Deploy.objects.count() == 1
    # The database holds it too, whatever the code above does.
    with pytest.raises(IntegrityError), transaction.atomic():
        Deploy.objects.create(
            environment=staging, version="v2", created_at=timezone.now(), status="running"
        )
    assert first.status == DeployStatus.QUEUED


def test_a_second_delivery_of_the_task_does_nothing(staging, operator, simulator):
    deploy = deploy_start(environment=staging, user=operator, version="v1")
    deploy_run(deploy_id=deploy.pk)
    assert deploy_run(deploy_id=deploy.pk) is None
    assert simulator.created == 1


def test_an_operator_asks_and_a_manager_approves_production(
    staging, production, operator, manager, simulator
):
    asked = deploy_start(environment=production, user=operator, version="v1")
    assert asked.status == DeployStatus.AWAITING_APPROVAL
    assert deploy_run(deploy_id=asked.pk) is None  # nothing runs before the approval
    with pytest.raises(PermissionDenied, match="Only a Manager approves"):
        deploy_approve(deploy=asked, user=operator)
    with pytest.raises(ActionRefused, match="already under way"):
        deploy_start(
            environment=production, user=manager, version="v1", override_reason="a second one"
        )
    with pytest.raises(ActionRefused, match="Gates not passed"):
        deploy_approve(deploy=asked, user=manager)
    approved = deploy_approve(deploy=asked, user=manager, override_reason="staging is down today")
    assert approved.status == DeployStatus.QUEUED and approved.approved_by == manager
    assert AuditEntry.objects.filter(action="deploy.approve", actor=manager).exists()
    deploy_run(deploy_id=approved.pk)
    approved.refresh_from_db()
    assert approved.status == DeployStatus.SUCCEEDED, approved.error
    with pytest.raises(ActionRefused, match="not waiting for an approval"):
        deploy_approve(deploy=approved, user=manager)


def test_gates_block_production_until_a_manager_overrides_with_a_reason(
    staging, production, manager, make_incident
):
    with pytest.raises(ActionRefused) as refused:
        deploy_start(environment=production, user=manager, version="v9")
    assert "Staging last deployed nothing, not v9" in refused.value.message
    assert "No pre-deployment checklist run is labelled v9" in refused.value.message
    with pytest.raises(ActionRefused, match="at least 10 characters"):
        deploy_start(environment=production, user=manager, version="v9", override_reason="x")
    assert not Deploy.objects.exists()
    deploy = deploy_start(
        environment=production, user=manager, version="v9", override_reason="hotfix for P1 login"
    )
    assert deploy.approved_by == manager
    failed = {gate["name"] for gate in deploy.gates if not gate["passed"]}
    assert "Same version ACTIVE and healthy on the environment below" in failed
    assert AuditEntry.objects.filter(action="deploy.gates_override").exists()


FREEZE_GATE = "Not inside a change freeze or a maintenance window that forbids deploys"


def _freeze(*, forbids=True, **fields) -> MaintenanceWindow:
    now = timezone.now().replace(microsecond=0)
    values = {
        "title": "Year-end change freeze",
        "starts_at": now - timezone.timedelta(hours=1),
        "duration": timezone.timedelta(hours=3),
        "time_zone": "Europe/Berlin",
        "notice_period": timezone.timedelta(0),
        "forbids_deploys": forbids,
        **fields,
    }
    return MaintenanceWindow.objects.create(**values)


def _gate(environment, name=FREEZE_GATE):
    return next(g for g in deploy_gates(environment=environment, version="v1") if g.name == name)


def test_a_change_freeze_in_progress_fails_the_gate_until_a_manager_overrides(
    production, staging, manager, operator
):
    assert _gate(production).passed
    window = _freeze()
    gate = _gate(production)
    ends = (window.starts_at + window.duration).astimezone(window.tz)
    assert not gate.passed and gate.url == window.get_absolute_url()
    assert gate.evidence == (
        f"In progress: “Year-end change freeze” until {ends:%Y-%m-%d %H:%M} Europe/Berlin."
    )
    assert deploy_gates(environment=staging, version="v1") == []  # staging has no gates
    with pytest.raises(ActionRefused) as refused:
        deploy_start(environment=production, user=manager, version="v1")
    assert "Year-end change freeze" in refused.value.message
    with pytest.raises(ActionRefused, match="at least 10 characters"):
        deploy_start(environment=production, user=manager, version="v1", override_reason="now")
    # An operator may not override (their deploy waits for a Manager): refused, nothing made.
    with pytest.raises(ActionRefused, match="Only a Manager overrides gates") as refused:
        deploy_start(
            environment=production, user=operator, version="v1", override_reason="urgent fix x"
        )
    assert refused.value.status == 403
    assert not Deploy.objects.exists()
    deploy = deploy_start(
        environment=production,
        user=manager,
        version="v1",
        override_reason="security fix, CVE in the login",
    )
    recorded = next(g for g in deploy.gates if g["name"] == FREEZE_GATE)
    assert not recorded["passed"] and "until" in recorded["evidence"]
    override = AuditEntry.objects.get(action="deploy.gates_override")
    assert FREEZE_GATE in override.after["failed_gates"]
    assert override.summary == "security fix, CVE in the login"
    page = client_for(manager).get(deploy.get_absolute_url()).content.decode()
    assert "Year-end change freeze" in page


def test_only_windows_that_forbid_deploys_and_are_in_progress_count(production, manager):
    _freeze(forbids=False)
    assert _gate(production).passed
    later = _freeze()
    MaintenanceWindow.objects.filter(pk=later.pk).update(
        starts_at=timezone.now() + timezone.timedelta(hours=2)
    )
    assert _gate(production).passed  # not yet
    now_on = _freeze(title="Freeze now")
    assert not _gate(production).passed
    maintenance_occurrence_cancel(
        window=now_on, user=manager, starts_at=now_on.starts_at, reason="freeze lifted early"
    )
    assert WindowOccurrence.objects.get(window=now_on).status == "cancelled"
    assert _gate(production).passed


def test_managers_mark_a_window_as_a_freeze_in_the_form_and_the_admin(manager, operator):
    window = _freeze(forbids=False)
    client = client_for(manager)
    change = client.get(f"/admin/ops/maintenancewindow/{window.pk}/change/").content.decode()
    assert 'name="forbids_deploys"' in change
    assert client_for(operator).get(
        f"/admin/ops/maintenancewindow/{window.pk}/change/"
    ).status_code in (302, 403)
    MaintenanceWindow.objects.filter(pk=window.pk).update(forbids_deploys=True)
    page = client.get(window.get_absolute_url()).content.decode()
    assert "Change freeze: no deploys to production" in page
    assert client.get("/maintenance/windows/999999/").status_code == 404
    form = client.get("/maintenance/windows/new/").content.decode()
    assert "Change freeze: forbids deploys" in form


def test_bad_versions_are_refused(staging, operator):
    for version in ("", "   ", "two words", "x" * 101):
        with pytest.raises(ActionRefused):
            deploy_start(environment=staging, user=operator, version=version)
    assert not Deploy.objects.exists()


def test_failed_health_rolls_back_and_opens_an_incident(staging, operator, simulator, severities):
    staging.validate_seconds = 1
    staging.save()
    simulator.unhealthy_next = True
    deploy = deploy_start(environment=staging, user=operator, version="v2-bad")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.ROLLED_BACK, deploy.error
    assert "answered 503" in deploy.error
    assert deploy.rollback_deployment_id and not deploy.pinned
    app = simulator.apps["staging-app"]
    assert app.pinned is None  # committed
    active = simulator.active(app, time.time())
    assert active.id == deploy.rollback_deployment_id and active.healthy
    incident = Incident.objects.get(deploys=deploy)
    assert deploy.do_deployment_id in incident.summary
    assert "answered 503" in incident.summary


@pytest.mark.parametrize(
    ("switch", "reason"),
    [
        ({"refuse_token": True}, "refused the token in DIGITALOCEAN_TOKEN (401)"),
        ({"rate_limited": 1}, "rate limit was reached (429)"),
        ({"server_errors": 1}, "DigitalOcean answered 500"),
        ({"fail_next": True}, "ended ERROR (build: build step exited 1)"),
    ],
)
def test_faults_fail_the_job_with_the_reason_and_the_next_try_works(
    staging, operator, simulator, switch, reason
):
    simulator.set_switches(switch)
    deploy = deploy_start(environment=staging, user=operator, version="v1")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.FAILED
    assert reason in deploy.error
    simulator.set_switches({"refuse_token": False})
    again = deploy_start(environment=staging, user=operator, version="v1")
    deploy_run(deploy_id=again.pk)
    again.refresh_from_db()
    assert again.status == DeployStatus.SUCCEEDED, again.error


def test_an_unknown_app_id_and_a_missing_token(staging, operator, monkeypatch):
    staging.app_id = "no-such-app"
    staging.save()
    deploy = deploy_start(environment=staging, user=operator, version="v1")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.FAILED
    assert "App no-such-app of Staging: DigitalOcean does not know it (404)" in deploy.error
    monkeypatch.delenv("DIGITALOCEAN_TOKEN")
    deploy = deploy_start(environment=staging, user=operator, version="v1")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert "DIGITALOCEAN_TOKEN" in deploy.error and "is not set" in deploy.error


def test_stuck_in_building_past_the_timeout_is_cancelled(staging, operator, simulator, settings):
    settings.DEPLOY_PHASE_TIMEOUT_SECONDS = 0.3
    simulator.stuck_next = True
    deploy = deploy_start(environment=staging, user=operator, version="v1")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.FAILED
    assert "Stuck in BUILDING" in deploy.error
    deployment = simulator.find(simulator.apps["staging-app"], deploy.do_deployment_id)
    assert deployment.canceled_at is not None


def test_cancel_a_queued_and_a_running_deploy(staging, operator, simulator):
    queued = deploy_start(environment=staging, user=operator, version="v1")
    deploy_cancel(deploy=queued, user=operator)
    queued.refresh_from_db()
    assert queued.status == DeployStatus.CANCELED
    with pytest.raises(ActionRefused, match="Only a queued or building"):
        deploy_cancel(deploy=queued, user=operator)
    simulator.stuck_next = True
    running = deploy_start(environment=staging, user=operator, version="v2")
    Deploy.objects.filter(pk=running.pk).update(status="running", started_at=timezone.now())
    deploy_cancel(deploy=running, user=operator)
    Deploy.objects.filter(pk=running.pk).update(status="queued")
    deploy_run(deploy_id=running.pk)
    running.refresh_from_db()
    assert running.status == DeployStatus.CANCELED


def test_rollback_to_a_chosen_deployment_pins_until_committed(staging, operator, simulator):
    first = deploy_start(environment=staging, user=operator, version="v1")
    deploy_run(deploy_id=first.pk)
    second = deploy_start(environment=staging, user=operator, version="v2")
    deploy_run(deploy_id=second.pk)
    first.refresh_from_db()
    with pytest.raises(ActionRefused, match="will not roll back to nope: no such deployment"):
        deploy_rollback_start(environment=staging, user=operator, deployment_id="nope")
    rollback = deploy_rollback_start(
        environment=staging, user=operator, deployment_id=first.do_deployment_id
    )
    deploy_run(deploy_id=rollback.pk)
    rollback.refresh_from_db()
    assert rollback.status == DeployStatus.SUCCEEDED and rollback.pinned
    client = client_for(operator)
    page = client.get(rollback.get_absolute_url())
    assert "pinned to this rollback" in page.content.decode()
    response = client.post(f"/deploys/{rollback.pk}/pin/", {"action": "commit"})
    assert response.status_code == 303
    rollback.refresh_from_db()
    assert not rollback.pinned
    assert simulator.apps["staging-app"].pinned is None


def test_resume_sends_only_stale_live_deploys(staging, operator, settings):
    deploy = deploy_start(environment=staging, user=operator, version="v1")
    assert deploys_resume(send=lambda pk: None) == []
    past = timezone.now() - timezone.timedelta(seconds=settings.DEPLOY_STALE_SECONDS + 5)
    Deploy.objects.filter(pk=deploy.pk).update(status="running", heartbeat_at=past)
    sent = []
    assert deploys_resume(send=sent.append) == [deploy.pk] == sent


def test_deploy_page_polls_until_the_end(staging, operator, htmx, simulator):
    client = client_for(operator)
    response = client.post("/releases/staging/deploy/", {"version": "v7"}, **htmx)
    assert response.status_code == 200 and response.headers["HX-Redirect"]
    deploy = Deploy.objects.get()
    live = client.get(deploy.get_absolute_url(), **htmx)
    assert live.status_code == 200 and 'hx-trigger="every' in live.content.decode()
    deploy_run(deploy_id=deploy.pk)
    done = client.get(deploy.get_absolute_url(), **htmx)
    assert done.status_code == 286
    body = done.content.decode()
    assert "Succeeded" in body and "hx-trigger" not in body and "<html" not in body
    page = client.get(deploy.get_absolute_url())
    assert "Simulated DigitalOcean" in page.content.decode()


def test_deploy_form_errors_and_roles(staging, production, operator, outsider, htmx):
    client = client_for(operator)
    response = client.post("/releases/staging/deploy/", {"version": ""}, **htmx)
    assert response.status_code == 400
    assert "Say which version" in response.content.decode()
    assert client.get("/releases/staging/deploy/").status_code == 405
    assert (
        client_for(outsider).post("/releases/staging/deploy/", {"version": "v1"}).status_code == 403
    )
    assert client_for(outsider).get("/releases/").status_code == 403
    page = client.get("/releases/staging/").content.decode()
    assert "simulated DigitalOcean" in page and "Deployments at DigitalOcean" in page
    assert not Deploy.objects.exists()


def test_today_shows_a_deploy_in_progress(staging, operator):
    deploy_start(environment=staging, user=operator, version="v3")
    page = client_for(operator).get("/").content.decode()
    assert "Deploy v3 to Staging" in page


def _celery_worker(queue: str, name: str, env: dict) -> subprocess.Popen:
    """A real Celery worker process (as the Procfile starts one, solo pool) on its own queue,
    so no other test's worker takes its messages."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "portal",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--hostname",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait(condition, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    raise AssertionError("not reached before the deadline")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_killed_mid_deploy_hands_the_same_deployment_to_the_next(
    simulator, operator, settings, monkeypatch
):
    """A real worker process follows the deploy and is killed by SIGKILL while the deployment
    builds; its heartbeat goes stale, the resume sends the deploy again, a second worker
    process follows the stored deployment to ACTIVE: one DigitalOcean deployment in all."""
    simulator.step_seconds = 1.5
    settings.DEPLOY_STALE_SECONDS = 2
    queue = f"h14-deploys-{secrets.token_hex(4)}"

    def send(pk: int) -> None:
        app.send_task("ops.deploy_run", args=[pk], queue=queue)

    monkeypatch.setattr(
        releases, "_enqueue", lambda deploy: transaction.on_commit(lambda: send(deploy.pk))
    )
    environment = Environment.objects.create(
        name="Staging", slug="staging", app_id="staging-app", validate_seconds=0
    )
    env = {
        **os.environ,
        "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0]
        + f"/{connection.settings_dict['NAME']}",
        "DIGITALOCEAN_API_URL": simulator.url,
        "DIGITALOCEAN_TOKEN": SIM_TOKEN,
        "DEPLOY_POLL_SECONDS": "0",
        "DEPLOY_STALE_SECONDS": "2",
    }
    first = _celery_worker(queue, "first", env)
    second = None
    try:
        deploy = deploy_start(environment=environment, user=operator, version="v1")

        def following() -> bool:
            deploy.refresh_from_db()
            return bool(deploy.do_deployment_id) and deploy.phase not in ("", "ACTIVE")

        _wait(following)
        deployment_id = deploy.do_deployment_id
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        deploy.refresh_from_db()
        assert deploy.status == DeployStatus.RUNNING and deploy.attempts == 1
        assert simulator.created == 1

        second = _celery_worker(queue, "second", env)
        resent = []
        _wait(lambda: deploys_resume(send=lambda pk: (resent.append(pk), send(pk))))
        assert resent == [deploy.pk]

        def ended() -> bool:
            deploy.refresh_from_db()
            return not deploy.is_live

        _wait(ended, seconds=90)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.error
    assert deploy.do_deployment_id == deployment_id
    assert deploy.attempts == 2 and "Taken over by another worker" in deploy.log
    assert simulator.created == 1  # no second DigitalOcean deployment
    assert len(simulator.apps["staging-app"].deployments) == 2  # the initial one and ours


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_triggers_make_one_job(simulator, operator, second_operator):
    """Two operators press Deploy at the same moment (two threads, two connections): one job,
    the other is told it is under way."""
    environment = Environment.objects.create(name="Staging", slug="staging", app_id="staging-app")
    barrier = threading.Barrier(2)
    outcomes = []

    def trigger(user):
        barrier.wait()
        try:
            outcomes.append(deploy_start(environment=environment, user=user, version="v1").pk)
        except ActionRefused as refused:
            outcomes.append(refused.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger, args=(u,)) for u in (operator, second_operator)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert Deploy.objects.count() == 1
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["int", "str"]
    assert any("already under way" in str(outcome) for outcome in outcomes)


@pytest.mark.django_db(transaction=True)
def test_full_deploy_failed_health_rollback_incident_through_a_worker(
    simulator, operator, severities
):
    """The whole path in a real Celery worker: deploy, ACTIVE, health fails, automatic
    rollback committed, incident opened and linked."""
    environment = Environment.objects.create(
        name="Staging",
        slug="staging",
        app_id="staging-app",
        health_urls=f"{simulator.url}/_sim/apps/staging-app/health",
        validate_seconds=2,
    )
    with app.connection_for_write() as broker, contextlib.suppress(Exception):
        broker.default_channel.queue_purge(app.conf.task_default_queue)
    simulator.unhealthy_next = True
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        deploy = deploy_start(environment=environment, user=operator, version="v5")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            deploy.refresh_from_db()
            if not deploy.is_live:
                break
            time.sleep(0.1)
    assert deploy.status == DeployStatus.ROLLED_BACK, deploy.error
    assert deploy.incident is not None
    assert "failed health validation" in deploy.incident.summary
    app_state = simulator.apps["staging-app"]
    assert app_state.pinned is None
    assert simulator.active(app_state, time.time()).id == deploy.rollback_deployment_id


def test_metrics_show_live_deploys_and_backup_ages(staging, operator, settings, client):
    deploy_start(environment=staging, user=operator, version="v1")
    target = BackupTarget.objects.create(name="DB", slug="db", url_variable="X")
    now = timezone.now()
    Backup.objects.create(
        target=target,
        status="succeeded",
        created_at=now,
        finished_at=now - timezone.timedelta(hours=2),
        verified_at=now - timezone.timedelta(hours=1),
    )
    settings.METRICS_TOKEN = "scrape-me"
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").content.decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    live = {s.labels["environment"]: s.value for s in families["portal_deploy_live"].samples}
    assert live == {"staging": 1.0}
    age = families["portal_backup_age_seconds"].samples[0].value
    assert 7100 < age < 7300


def test_managed_database_backups_are_listed_beside_the_portals(staging, operator, simulator):
    target = BackupTarget.objects.create(
        name="DB", slug="db", url_variable="X", managed_database_id="portal-db"
    )
    page = client_for(operator).get(target.get_absolute_url()).content.decode()
    assert "DigitalOcean&#x27;s own backups" in page or "DigitalOcean's own backups" in page
    assert "0.42 GB" in page and "simulated DigitalOcean" in page
    BackupTarget.objects.filter(pk=target.pk).update(managed_database_id="gone")
    page = client_for(operator).get(target.get_absolute_url()).content.decode()
    assert "does not know the database gone (404)" in page


def test_backups_are_evidence_for_the_backup_checklist_items(db, make_template):
    template = make_template(
        items=["Last night's backup jobs all succeeded", "Backups were verified this week"]
    )
    target = BackupTarget.objects.create(name="DB", slug="db", url_variable="X")
    now = timezone.now()
    Backup.objects.create(
        target=target,
        status="succeeded",
        created_at=now,
        finished_at=now - timezone.timedelta(hours=3),
    )
    step = next(step for step in registry.setup_steps if step.name == "backup-evidence")
    step.run(demo=False)
    completed, verified = template.items.order_by("position")
    assert completed.evidence_kpi.metric == "backup_age"
    assert verified.evidence_kpi.metric == "backup_verified_age"
    values = {value.kpi.metric: value for value in kpi_values(now=now)}
    assert values["backup_age"].value == 3.0 and values["backup_age"].state == "ok"
    assert values["backup_verified_age"].value is None
    assert values["backup_verified_age"].source == "DB has no verified backup yet"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"health_urls": "ftp://x/health"}, "Each line is one http:// or https:// URL"),
        ({"health_urls": "https://ok/health\n/api/health"}, "not '/api/health'"),
        ({"token_variable": "dop_v1_abc123"}, "The name of an environment variable"),
        ({"validate_seconds": 7200}, "at most an hour"),
    ],
)
def test_environment_bad_input_is_explained(db, fields, message):
    environment = Environment(name="X", slug="x", app_id="a", **fields)
    with pytest.raises(ValidationError, match=message):
        environment.full_clean()


def _api_service(simulator, app_id="staging-app", **fields) -> MonitoredService:
    values = {
        "name": "Staging API",
        "slug": "staging-api",
        "kind": "http",
        "target": f"{simulator.url}/_sim/apps/{app_id}/health",
        "interval_seconds": 300,
        **fields,
    }
    return MonitoredService.objects.create(**values)


def test_validation_checks_the_monitored_services_at_the_deploy_cadence(
    staging, operator, simulator, settings
):
    """No health URL on the environment: only its monitored service is watched, far more
    often than the service's own 5-minute schedule, each result stored."""
    staging.health_urls = ""
    staging.validate_seconds = 1
    staging.save()
    staging.services.add(_api_service(simulator))
    settings.DEPLOY_HEALTH_INTERVAL_SECONDS = 0.1
    deploy = deploy_start(environment=staging, user=operator, version="v1")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.error
    results = CheckResult.objects.filter(service__slug="staging-api")
    assert results.count() >= 5 and {r.state for r in results} == {"ok"}
    assert "1 monitored service(s) checked" in deploy.log


def test_a_critical_service_check_rolls_back_with_the_check_in_the_incident(
    staging, operator, simulator, severities
):
    staging.health_urls = ""
    staging.validate_seconds = 1
    staging.save()
    staging.services.add(_api_service(simulator))
    simulator.unhealthy_next = True
    deploy = deploy_start(environment=staging, user=operator, version="v2-bad")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.ROLLED_BACK, deploy.error
    incident = Incident.objects.get(deploys=deploy)
    assert "check Staging API (HTTP(S) endpoint " in incident.summary
    assert "/_sim/apps/staging-app/health) is critical: " in incident.summary
    assert "503" in incident.summary and deploy.do_deployment_id in incident.summary
    assert MonitoredService.objects.get(slug="staging-api").state == "critical"


def test_a_kpi_turning_critical_during_validation_rolls_back(
    staging, operator, simulator, severities
):
    staging.health_urls = ""
    staging.save()
    service = _api_service(simulator)
    staging.services.add(service)
    # No data before the deploy (unknown); the validation's own checks make it critical.
    Kpi.objects.create(
        name="API p95", metric="latency_p95", service=service, target=0, warning=0, critical=0
    )
    deploy = deploy_start(environment=staging, user=operator, version="v3")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.ROLLED_BACK, deploy.error
    incident = Incident.objects.get(deploys=deploy)
    assert "KPI API p95 on Staging API is critical: ≤ " in incident.summary
    assert "P95 response time (ms), critical beyond 0; 1 HTTP checks" in incident.summary


def test_a_kpi_already_critical_before_the_deploy_is_not_held_against_it(
    staging, operator, simulator
):
    staging.health_urls = ""
    staging.save()
    service = _api_service(simulator)
    staging.services.add(service)
    Kpi.objects.create(
        name="API p95", metric="latency_p95", service=service, target=0, warning=0, critical=0
    )
    health_result_store(service=service, outcome=Outcome("ok", "200", latency_ms=30))
    deploy = deploy_start(environment=staging, user=operator, version="v4")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.error
    assert "Critical before the deploy (not held against it): KPI API p95" in deploy.log
    page = client_for(operator).get(staging.get_absolute_url()).content.decode()
    assert "Monitored services checked while validating" in page and "Staging API" in page


@pytest.fixture
def blue_green(db, simulator):
    simulator.add_app("shop-blue", "shop-blue")
    simulator.add_app("shop-green", "shop-green")
    simulator.add_router("shop-router", "shop", blue="shop-blue", green="shop-green")
    return Environment.objects.create(
        name="Shop",
        slug="shop",
        app_id="shop-blue",
        green_app_id="shop-green",
        router_app_id="shop-router",
        health_urls=f"{simulator.url}/_sim/apps/shop-router/health",
        validate_seconds=0,
    )


def _routed(simulator) -> str:
    return simulator.apps["shop-router"].routed_colour()


def test_blue_green_deploys_to_the_idle_colour_then_switches_traffic(
    blue_green, operator, simulator
):
    deploy = deploy_start(environment=blue_green, user=operator, version="v1")
    assert deploy.colour == "green" and deploy.app_id == "shop-green"
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.error
    assert deploy.traffic_switched_at is not None
    assert "Traffic switched from blue to green." in deploy.log
    blue_green.refresh_from_db()
    assert blue_green.live_colour == "green" and blue_green.live_app_id == "shop-green"
    assert _routed(simulator) == "green" and simulator.traffic_switches == 1
    assert len(simulator.apps["shop-blue"].deployments) == 1  # blue untouched
    assert simulator.find(simulator.apps["shop-green"], deploy.do_deployment_id)
    switch = AuditEntry.objects.get(action="deploy.traffic_switch")
    assert switch.before == {"live_colour": "blue"} and switch.after == {"live_colour": "green"}
    # The next one goes to blue, and switches back.
    again = deploy_start(environment=blue_green, user=operator, version="v2")
    assert again.colour == "blue" and again.app_id == "shop-blue"
    deploy_run(deploy_id=again.pk)
    again.refresh_from_db()
    assert again.status == DeployStatus.SUCCEEDED, again.error
    assert _routed(simulator) == "blue" and simulator.traffic_switches == 2
    page = client_for(operator).get(blue_green.get_absolute_url()).content.decode()
    assert "live: <strong>Blue</strong>" in page and "the next deploy goes to green" in page
    detail = client_for(operator).get(again.get_absolute_url()).content.decode()
    assert "to the idle colour, blue" in detail and "traffic switched to it" in detail


@pytest.mark.parametrize("switch", [{"unhealthy_next": True}, {"fail_next": True}])
def test_blue_green_never_switches_on_a_failure(blue_green, operator, simulator, switch):
    simulator.set_switches(switch)
    deploy = deploy_start(environment=blue_green, user=operator, version="v1-bad")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.FAILED
    assert deploy.traffic_switched_at is None
    assert _routed(simulator) == "blue" and simulator.traffic_switches == 0
    blue_green.refresh_from_db()
    assert blue_green.live_colour == "blue"
    if "unhealthy_next" in switch:
        assert "Health failed on green (component shop-green is UNHEALTHY" in deploy.error
        assert deploy.error.endswith("traffic stays on blue.")
    else:
        assert "ended ERROR" in deploy.error
    assert not AuditEntry.objects.filter(action="deploy.traffic_switch").exists()
    # The live site still answers from blue.
    with urllib.request.urlopen(blue_green.health_url_list()[0]) as response:
        assert response.status == 200


def test_blue_green_unhealthy_behind_the_traffic_switches_back(
    blue_green, operator, simulator, severities
):
    """The idle colour's components say healthy but the live URL, now answering from it,
    fails: the traffic goes back at once and an incident says so."""
    service = _api_service(simulator, app_id="shop-router", slug="shop-live")
    blue_green.services.add(service)
    deploy = deploy_start(environment=blue_green, user=operator, version="v1")
    simulator.broken_endpoints.add("shop-green")  # components HEALTHY, its endpoint 503
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.ROLLED_BACK, deploy.error
    assert _routed(simulator) == "blue" and simulator.traffic_switches == 2
    blue_green.refresh_from_db()
    assert blue_green.live_colour == "blue"
    incident = Incident.objects.get(deploys=deploy)
    assert "Traffic switched back from green (app shop-green) to blue." in incident.summary
    assert "shop-router/health answered 503" in incident.summary
    assert "check Staging API (HTTP(S) endpoint" in incident.summary


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"green_app_id": "g"}, "needs both the green app and the router app"),
        ({"router_app_id": "r"}, "needs both the green app and the router app"),
        ({"green_app_id": "a", "router_app_id": "r"}, "Green is a third app"),
    ],
)
def test_blue_green_configuration_errors(db, fields, message):
    environment = Environment(name="X", slug="x", app_id="a", **fields)
    with pytest.raises(ValidationError, match=message):
        environment.full_clean()


def test_a_router_that_refuses_the_switch_fails_the_deploy_and_keeps_blue(
    blue_green, operator, simulator
):
    simulator.apps["shop-router"].spec["services"] = [{"name": "blue"}]  # green is gone
    deploy = deploy_start(environment=blue_green, user=operator, version="v1")
    deploy_run(deploy_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.FAILED
    assert "DigitalOcean answered 400" in deploy.error
    assert "'green' is not a service of the app" in deploy.error
    blue_green.refresh_from_db()
    assert blue_green.live_colour == "blue" and _routed(simulator) == "blue"
