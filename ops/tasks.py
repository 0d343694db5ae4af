"""Celery entry points of the operations domains: thin, they call services."""

from celery import shared_task

from ops.services.checklists import checklist_runs_schedule
from ops.services.incidents import incident_notifications_send


@shared_task(name="ops.checklist_runs_schedule", soft_time_limit=50, time_limit=58)
def checklist_runs_schedule_task() -> list[int]:
    """Beat calls this every minute; it opens the runs whose period has started."""
    return [run.pk for run in checklist_runs_schedule()]


@shared_task(name="ops.incident_notifications_send", soft_time_limit=50, time_limit=58)
def incident_notifications_send_task() -> list[int]:
    """Beat calls this every minute; it notifies each overdue step of an unacknowledged
    incident once (e-mail, then the optional webhook)."""
    return [notification.pk for notification in incident_notifications_send()]
