"""Celery entry points of the operations domains: thin, they call services."""

from celery import shared_task

from ops.services.alerts import alert_sends_deliver, alert_sends_reclaim, alerts_evaluate
from ops.services.backups import (
    backup_run,
    backup_verify,
    backups_run_due,
    backups_verify_latest,
    restore_test_run,
    restore_tests_due,
)
from ops.services.checklists import checklist_runs_schedule
from ops.services.gdpr import gdpr_deadline_notifications_send
from ops.services.gdpr_jobs import gdpr_exports_expire, gdpr_job_run, gdpr_jobs_resend
from ops.services.health import health_checks_run_due, health_results_prune
from ops.services.incident_notifications import incident_notifications_send
from ops.services.maintenance import maintenance_scan
from ops.services.maintenance_notices import maintenance_notices_send
from ops.services.releases import deploy_run, deploys_resume
from ops.services.status_subscribers import status_subscribers_tick
from portal.health import checks_heartbeat


@shared_task(name="ops.checklist_runs_schedule", soft_time_limit=50, time_limit=58)
def checklist_runs_schedule_task() -> list[int]:
    """Beat calls this every minute; it opens the runs whose period has started."""
    return [run.pk for run in checklist_runs_schedule()]


@shared_task(name="ops.health_checks_run_due", soft_time_limit=50, time_limit=58)
def health_checks_run_due_task() -> int:
    """Beat calls this every 10 seconds: the due checks run in parallel threads. Its heartbeat
    tells the health pages that checks are running (portal.health.checks_stopped)."""
    checks_heartbeat()
    return len(health_checks_run_due())


@shared_task(name="ops.health_results_prune", soft_time_limit=300, time_limit=360)
def health_results_prune_task() -> list[int]:
    return list(health_results_prune())


@shared_task(name="ops.incident_notifications_send", soft_time_limit=50, time_limit=58)
def incident_notifications_send_task() -> list[int]:
    """Beat calls this every minute; it notifies each overdue step of an unacknowledged
    incident once (e-mail, then the optional webhook)."""
    return [notification.pk for notification in incident_notifications_send()]


@shared_task(name="ops.maintenance_scan", soft_time_limit=50, time_limit=58)
def maintenance_scan_task() -> dict[str, int]:
    """Beat calls this every minute: occurrences stored ahead, started, their pre- and
    post-maintenance runs opened; then the notices due, each once."""
    counts = maintenance_scan()
    counts["notices"] = len(maintenance_notices_send())
    return counts


@shared_task(
    name="ops.gdpr_job_run", bind=True, soft_time_limit=3000, time_limit=3600, max_retries=5
)
def gdpr_job_run_task(self, job_id: int) -> str:
    """An export or erasure of a data-subject request (the job row says which and how far).
    A source that did not answer leaves the job queued: retried with a growing delay."""
    outcome = gdpr_job_run(job_id=job_id)
    if outcome == "retry":
        raise self.retry(countdown=30 * 2**self.request.retries)
    return outcome


@shared_task(name="ops.gdpr_housekeeping", soft_time_limit=50, time_limit=58)
def gdpr_housekeeping_task() -> dict:
    """Beat calls this every minute: deadline notices (once each), expired exports deleted,
    queued jobs whose message was lost sent again."""
    return {
        "notified": gdpr_deadline_notifications_send(),
        "expired": gdpr_exports_expire(),
        "resent": gdpr_jobs_resend(),
    }


@shared_task(name="ops.alerts_evaluate", soft_time_limit=25, time_limit=28)
def alerts_evaluate_task() -> dict:
    """Beat calls this every 30 seconds: every rule over the stored results, the alerts that
    fire or resolve, and the escalation steps now due."""
    return alerts_evaluate()


@shared_task(name="ops.alert_sends_deliver", soft_time_limit=50, time_limit=58)
def alert_sends_deliver_task() -> dict:
    """Beat calls this every 15 seconds: due sends, each claimed, sent, recorded; a failure
    is retried with backoff, never raised."""
    alert_sends_reclaim()
    return alert_sends_deliver()


@shared_task(
    name="ops.deploy_run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=3 * 3600,
    time_limit=3 * 3600 + 60,
)
def deploy_run_task(deploy_id: int) -> str | None:
    """Follows one deploy to its end (minutes); a second delivery finds it claimed and stops."""
    deploy = deploy_run(deploy_id=deploy_id)
    return deploy.status if deploy else None


@shared_task(name="ops.deploys_resume", soft_time_limit=50, time_limit=58)
def deploys_resume_task() -> list[int]:
    """Beat calls this every minute: live deploys nobody follows are sent again."""
    return deploys_resume()


@shared_task(
    name="ops.backup_run", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60
)
def backup_run_task(backup_id: int) -> str | None:
    backup = backup_run(backup_id=backup_id)
    return backup.status if backup else None


@shared_task(
    name="ops.backup_verify", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60
)
def backup_verify_task(verification_id: int) -> str | None:
    verification = backup_verify(verification_id=verification_id)
    return verification.status if verification else None


@shared_task(name="ops.backups_run_due", soft_time_limit=50, time_limit=58)
def backups_run_due_task() -> list[int]:
    return backups_run_due()


@shared_task(name="ops.backups_verify_latest", soft_time_limit=50, time_limit=58)
def backups_verify_latest_task() -> list[int]:
    return backups_verify_latest()


@shared_task(
    name="ops.restore_test_run",
    acks_late=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
)
def restore_test_run_task(restore_id: int) -> str | None:
    restore = restore_test_run(restore_id=restore_id)
    return restore.status if restore else None


@shared_task(name="ops.restore_tests_due", soft_time_limit=50, time_limit=58)
def restore_tests_due_task() -> list[int]:
    """Beat calls this daily: restore tests on staging that are due (quarterly)."""
    return restore_tests_due()


@shared_task(name="ops.status_subscribers_tick", soft_time_limit=50, time_limit=58)
def status_subscribers_tick_task() -> dict:
    """Beat calls this every 15 seconds, and a new notice or subscription nudges it: public
    maintenance announcements become notices, notices become deliveries, due deliveries are
    sent (claimed one by one, retried with backoff, never raised)."""
    return status_subscribers_tick()
