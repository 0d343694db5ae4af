"""Celery entry points of the operations domains: thin, they call services."""

from celery import shared_task

from ops.services.checklists import checklist_runs_schedule


@shared_task(name="ops.checklist_runs_schedule", soft_time_limit=50, time_limit=58)
def checklist_runs_schedule_task() -> list[int]:
    """Beat calls this every minute; it opens the runs whose period has started."""
    return [run.pk for run in checklist_runs_schedule()]
