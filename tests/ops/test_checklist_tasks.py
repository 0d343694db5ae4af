"""The scheduler task executed by a real Celery worker on the configured broker (Redis in CI)."""

import pytest
from celery.contrib.testing.worker import start_worker

from ops.models import ChecklistRun
from ops.models.checklists import Cadence
from ops.tasks import checklist_runs_schedule_task
from portal.celery import app


@pytest.mark.django_db(transaction=True)
def test_worker_opens_runs_once_per_period(make_template):
    morning = make_template("Morning check", items=["One", "Two"])
    make_template("Pre-deployment", cadence=Cadence.ON_DEMAND)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        first = checklist_runs_schedule_task.delay().get(timeout=30)
        # A restarted beat, or a second one, sends the same task again in the same period.
        second = checklist_runs_schedule_task.delay().get(timeout=30)
    run = ChecklistRun.objects.get()
    assert first == [run.pk] and second == []
    assert run.template == morning and run.items.count() == 2


@pytest.mark.django_db(transaction=True)
def test_worker_runs_the_due_health_checks():
    from ops.models import CheckResult, MonitoredService
    from ops.tasks import health_checks_run_due_task
    from tests.fakes import controlled_server

    with controlled_server() as server:
        service = MonitoredService.objects.create(
            name="API", slug="api", kind="http", target=server.url
        )
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            assert health_checks_run_due_task.delay().get(timeout=30) == 1
    result = CheckResult.objects.get(service=service)
    assert result.state == "ok" and result.detail == "HTTP 200"
