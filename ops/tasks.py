"""Celery entry points of the operations domains: thin, they call services."""

from celery import shared_task

from ops.services.backups import backup_run, backup_verify, backups_run_due, backups_verify_latest
from ops.services.checklists import checklist_runs_schedule
from ops.services.health import health_checks_run_due, health_results_prune
from ops.services.incident_notifications import incident_notifications_send
from ops.services.releases import deploy_run, deploys_resume
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
