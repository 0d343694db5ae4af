"""Celery entry points of image batches: thin, they call services.

``image_optimize_task`` is ``acks_late`` (the message is acknowledged after the work, so a
machine that dies mid-image gives its message back to the broker) and ``reject_on_worker_lost``
(a child killed by the kernel, e.g. out of memory, requeues it too). That is safe because the
service claims the image first and settles it only under that claim: a second delivery of the
same message does nothing while the claim's worker is alive, and takes the image over once its
heartbeat is gone. A claim whose worker died with no second delivery is the periodic reclaim's.
"""

from celery import shared_task
from django.conf import settings

from images.services import (
    AVIF_TASK,
    OPTIMIZE_TASK,
    image_avif_process,
    image_claim,
    image_claims_reclaim,
    image_messages_send,
    image_process,
)


@shared_task(
    name=OPTIMIZE_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.IMAGE_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.IMAGE_TASK_TIME_LIMIT,
)
def image_optimize_task(image_id: int) -> str:
    token = image_claim(image_id=image_id)
    if token is None:
        # Done, gone, or held by a live worker; if that worker dies, the reclaim requeues it.
        return "skipped"
    image = image_process(image_id=image_id, token=token)
    return image.status


@shared_task(name="images.image_claims_reclaim", soft_time_limit=50, time_limit=58)
def image_claims_reclaim_task() -> list[int]:
    """Beat calls this every IMAGE_RECLAIM_SECONDS: images whose worker died are queued again,
    and queued work with no message (the broker was down) is sent. Returns the images
    requeued."""
    requeued = image_claims_reclaim()
    image_messages_send()
    return requeued


@shared_task(
    name=AVIF_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.IMAGE_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.IMAGE_TASK_TIME_LIMIT,
)
def image_avif_task(image_id: int) -> str:
    """The AVIF variants of one done image, sent at the lowest priority."""
    image = image_avif_process(image_id=image_id)
    return image.avif_status if image is not None else "skipped"
