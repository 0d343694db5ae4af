"""Reads for image pages, the image API and the health panel. Each function runs a fixed number
of queries, whatever the number of images."""

import logging
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from kombu.exceptions import ChannelError

from images import pipeline
from images.models import Batch, BatchImage, FailureKind, ImageStatus, Preset, Variant
from portal.celery import app, broker_can_broadcast

logger = logging.getLogger(__name__)


def presets_offered() -> QuerySet[Preset]:
    """Active presets, the default first: the first is chosen on the upload page."""
    return Preset.objects.filter(is_active=True).order_by("-is_default", "name")


def batches_recent() -> QuerySet[Batch]:
    """Newest first, with their counts (one query a page)."""
    return (
        Batch.objects.select_related("preset", "created_by")
        .annotate(
            done=Count("images", filter=Q(images__status=ImageStatus.DONE)),
            failed=Count("images", filter=Q(images__status=ImageStatus.FAILED)),
            bytes_uploaded=Sum("images__bytes"),
            bytes_before=Sum("images__bytes", filter=Q(images__status=ImageStatus.DONE)),
            bytes_after=Sum("images__bytes_after", filter=Q(images__status=ImageStatus.DONE)),
        )
        .order_by("-created_at", "-id")
    )


@dataclass
class BatchTotals:
    total: int
    queued: int
    working: int
    done: int
    failed: int
    bytes_uploaded: int  # every image of the batch, whatever its status
    bytes_before: int  # the images done, which bytes_after compares with
    bytes_after: int
    seconds: float | None
    retryable: int = 0
    unsent: int = 0  # queued, and no message reached the broker yet (it was down)

    @property
    def settled(self) -> int:
        return self.done + self.failed

    @property
    def percent(self) -> int:
        return round(100 * self.settled / self.total) if self.total else 100

    @property
    def savings_percent(self) -> float | None:
        if not self.bytes_before:
            return None
        return round(100 * (1 - self.bytes_after / self.bytes_before), 1)

    @property
    def images_per_second(self) -> float | None:
        if not self.seconds or not self.settled:
            return None
        return round(self.settled / self.seconds, 2)


def batch_totals(*, batch: Batch, now: datetime | None = None) -> BatchTotals:
    """Counts by status (and the failed images a retry may fix), bytes before and after
    (images done), and the processing time: the sum of the batch's runs, each from its first
    claim to its last image settled (or to now while it runs), never the wait between an
    upload or a retry and the work. One query."""
    counts = batch.images.aggregate(
        total=Count("pk"),
        queued=Count("pk", filter=Q(status=ImageStatus.QUEUED)),
        working=Count("pk", filter=Q(status=ImageStatus.WORKING)),
        done=Count("pk", filter=Q(status=ImageStatus.DONE)),
        failed=Count("pk", filter=Q(status=ImageStatus.FAILED)),
        bytes_uploaded=Sum("bytes"),
        retryable=Count(
            "pk", filter=Q(status=ImageStatus.FAILED) & ~Q(failure=FailureKind.REJECTED)
        ),
        unsent=Count("pk", filter=Q(status=ImageStatus.QUEUED, sent_at__isnull=True)),
        bytes_before=Sum("bytes", filter=Q(status=ImageStatus.DONE)),
        bytes_after=Sum("bytes_after", filter=Q(status=ImageStatus.DONE)),
    )
    seconds = None
    if batch.run_started_at:
        run = ((now or timezone.now()) - batch.run_started_at).total_seconds()
        seconds = batch.processing_seconds + max(0.0, run)
    elif batch.started_at:
        seconds = batch.processing_seconds
    return BatchTotals(
        total=counts["total"],
        queued=counts["queued"],
        working=counts["working"],
        done=counts["done"],
        failed=counts["failed"],
        bytes_uploaded=counts["bytes_uploaded"] or 0,
        bytes_before=counts["bytes_before"] or 0,
        bytes_after=counts["bytes_after"] or 0,
        seconds=seconds,
        retryable=counts["retryable"],
        unsent=counts["unsent"],
    )


def batch_images(*, batch: Batch) -> list[BatchImage]:
    return list(batch.images.order_by("position"))


def image_variants(*, image: BatchImage) -> list[Variant]:
    return list(image.variants.order_by("-size", "format"))


def best_variant(variants: list[Variant]) -> Variant | None:
    """What a page would serve instead of the original (one rule: pipeline.best_of)."""
    return pipeline.best_of(variants)


def batch_variants(*, batch: Batch) -> QuerySet[Variant]:
    """The kept variants of a batch, for its ZIP, in image order."""
    return (
        Variant.objects.filter(image__batch=batch, kept=True)
        .select_related("image")
        .order_by("image__position", "-size", "format")
    )


# --- for the health panel and /metrics -----------------------------------------------------------


@dataclass
class ImageStats:
    since: datetime
    settled: int
    done: int
    failed: int
    success_rate: float | None
    seconds_per_image_mean: float | None
    seconds_per_image_median: float | None
    bytes_before: int
    bytes_after: int


def image_success_rate(*, since: datetime) -> float | None:
    """Share of the images settled since ``since`` that were optimized (0.0-1.0), or None when
    none settled. The health KPI's target is above 0.99."""
    return image_stats(since=since).success_rate


def image_stats(*, since: datetime) -> ImageStats:
    """Images settled (done or failed) since ``since``: counts, success rate, seconds per image
    (mean and median of those done), bytes before and after. Two queries."""
    settled = BatchImage.objects.filter(
        finished_at__gte=since, status__in=[ImageStatus.DONE, ImageStatus.FAILED]
    )
    counts = settled.aggregate(
        done=Count("pk", filter=Q(status=ImageStatus.DONE)),
        failed=Count("pk", filter=Q(status=ImageStatus.FAILED)),
        bytes_before=Sum("bytes", filter=Q(status=ImageStatus.DONE)),
        bytes_after=Sum("bytes_after", filter=Q(status=ImageStatus.DONE)),
    )
    seconds = list(
        settled.filter(status=ImageStatus.DONE, seconds__isnull=False).values_list(
            "seconds", flat=True
        )
    )
    done, failed = counts["done"], counts["failed"]
    return ImageStats(
        since=since,
        settled=done + failed,
        done=done,
        failed=failed,
        success_rate=round(done / (done + failed), 4) if done + failed else None,
        seconds_per_image_mean=round(statistics.fmean(seconds), 3) if seconds else None,
        seconds_per_image_median=round(statistics.median(seconds), 3) if seconds else None,
        bytes_before=counts["bytes_before"] or 0,
        bytes_after=counts["bytes_after"] or 0,
    )


def image_queue_health(*, ping_timeout: float = 1.0) -> dict:
    """Workers consuming the image queue, messages waiting in it, images queued and working,
    and the last hour's figures. The broker parts are None when the broker does not answer;
    ``workers`` is None on the file-system broker, which cannot broadcast safely."""
    queue = app.conf.task_default_queue
    workers = None
    if broker_can_broadcast():
        try:
            replies = app.control.inspect(timeout=ping_timeout).active_queues() or {}
            workers = sum(
                1 for queues in replies.values() if any(q.get("name") == queue for q in queues)
            )
        except Exception:  # the broker is down: say so, do not fail
            logger.warning("Could not ask the workers", exc_info=True)
    queue_length = None
    try:
        with app.connection_for_read() as connection:
            queue_length = connection.default_channel.queue_declare(
                queue=queue, passive=True
            ).message_count
    except ChannelError as error:
        # Redis deletes an empty list: a queue with nothing waiting is "not found".
        queue_length = 0 if "NOT_FOUND" in str(error) else None
    except Exception:
        logger.info("Could not read the length of queue %s", queue, exc_info=True)
    now = timezone.now()
    hour = image_stats(since=now - timedelta(hours=1))
    in_db = BatchImage.objects.aggregate(
        queued=Count("pk", filter=Q(status=ImageStatus.QUEUED)),
        working=Count("pk", filter=Q(status=ImageStatus.WORKING)),
    )
    return {
        "workers": workers,
        "queue": queue,
        "queue_length": queue_length,
        "images_queued": in_db["queued"],
        "images_working": in_db["working"],
        "last_hour": {
            "images": hour.settled,
            "done": hour.done,
            "failed": hour.failed,
            "success_rate": hour.success_rate,
            "seconds_per_image_median": hour.seconds_per_image_median,
        },
        "checked_at": now.isoformat(),
    }
