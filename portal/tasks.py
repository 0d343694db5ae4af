"""Celery entry points of the portal itself."""

from celery import shared_task

from portal.health import worker_heartbeat


@shared_task(name="portal.worker_heartbeat", ignore_result=True, soft_time_limit=20, time_limit=25)
def worker_heartbeat_task() -> None:
    """Beat sends this every 10 s; the worker that takes it proves workers are consuming."""
    worker_heartbeat()
