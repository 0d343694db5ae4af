"""The Celery app: configured from the CELERY_* Django settings, tasks found in tasks modules."""

import logging
import os

from celery import Celery, signals
from celery.beat import PersistentScheduler

logger = logging.getLogger(__name__)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# portal.metrics is imported inside these handlers: this module is imported before Django's
# settings are read, and prometheus_client must not start before settings has set
# PROMETHEUS_MULTIPROC_DIR (else a worker's counters would be single-process ones).
@signals.task_success.connect
def _task_succeeded(sender=None, **kwargs):
    from portal.metrics import count_task

    count_task(sender, "success")


@signals.task_failure.connect
def _task_failed(sender=None, **kwargs):
    from portal.metrics import count_task

    count_task(sender, "failure")


class HeartbeatScheduler(PersistentScheduler):
    """Beat's scheduler, recording that beat is alive on every tick (read by /api/health)."""

    def tick(self, *args, **kwargs):
        # portal.health reads this module's app: imported here, at beat's first tick, when
        # Django is set up.
        from portal.health import beat_heartbeat

        try:
            beat_heartbeat()
        except Exception:
            logger.warning("could not record beat's heartbeat", exc_info=True)
        return super().tick(*args, **kwargs)


def broker_can_broadcast() -> bool:
    """Whether workers may be asked things by broadcast (ping, inspect). Not on kombu's
    file-system broker (the development default): it writes a broadcast into each worker's
    mailbox non-atomically, and a worker that reads one half-written stops."""
    return not str(app.conf.broker_url).startswith("filesystem")
