"""What image optimization shows in the portal (portal.registry), registered by
ImagesConfig.ready(): its Today block, its gauges on /metrics and the image success KPI."""

from datetime import datetime, timedelta

from django.http import HttpRequest
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from images.selectors import batches_recent, image_stats, image_success_rate
from portal.registry import KpiSource, NavLink, Registry, TodayBlock

TODAY_BATCHES = 5


def _batches_block(request: HttpRequest, now: datetime) -> dict | None:
    """The latest batches and the last hour's processing, for those who work with images."""
    if not request.user.has_perm("images.view_batch"):
        return None
    batches = list(batches_recent()[:TODAY_BATCHES])
    can_upload = request.user.has_perm("images.upload_batch")
    if not batches and not can_upload:
        return None
    return {
        "batches": batches,
        "can_upload": can_upload,
        "image_stats": image_stats(since=now - timedelta(hours=1)),
    }


def _image_metrics():
    """The last hour of image processing: how many settled, the share that succeeded and the
    median time per image."""
    stats = image_stats(since=timezone.now() - timedelta(hours=1))
    settled = GaugeMetricFamily(
        "portal_images_settled_last_hour", "Images done or failed in the last hour."
    )
    settled.add_metric([], stats.settled)
    yield settled
    if stats.success_rate is not None:
        rate = GaugeMetricFamily(
            "portal_image_success_ratio", "Share of the last hour's images optimized (0-1)."
        )
        rate.add_metric([], stats.success_rate)
        yield rate
    if stats.seconds_per_image_median is not None:
        seconds = GaugeMetricFamily(
            "portal_image_seconds_median", "Median seconds per image over the last hour."
        )
        seconds.add_metric([], stats.seconds_per_image_median)
        yield seconds


def _image_success(since: datetime) -> tuple[float | None, str]:
    """Image processing success (%) of the images settled in the window."""
    rate = image_success_rate(since=since)
    if rate is None:
        return None, "no images processed in the window"
    return round(100 * rate, 2), "image batches"


def register(registry: Registry) -> None:
    registry.add_nav_link(
        NavLink("Images", "images:batch_list", ("images.view_batch",), ("images:",), 100)
    )
    registry.add_today_block(
        TodayBlock("image-batches", "images/_today_batches.html", _batches_block, 50)
    )
    registry.add_metrics_collector(_image_metrics)
    registry.add_kpi_source(KpiSource(metric="image_success", value=_image_success))
