"""Batches processed by a real Celery worker on the configured broker (Redis in CI)."""

import contextlib
import multiprocessing
import os
import signal
import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from images import services as image_services
from images.models import Batch, BatchImage, BatchStatus, ImageStatus, Variant
from images.services import batch_create, image_claim, image_claims_reclaim, image_messages_send
from images.tasks import image_claims_reclaim_task, image_optimize_task
from portal import health
from portal.celery import app
from portal.health import PROCESS_HEARTBEAT_STALE_SECONDS
from portal.models import AuditEntry
from tests.conftest import client_for
from tests.fakes import private_redis
from tests.images import samples
from tests.images.samples import upload

pytestmark = pytest.mark.django_db(transaction=True)


def _purge_queue() -> None:
    """Messages left by an earlier test of this process must not reach this test's worker."""
    # A queue never declared has nothing to purge.
    with app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_purge(app.conf.task_default_queue)


def _worker():
    return start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20)


def _wait_until_finished(batch: Batch, timeout: float = 30) -> Batch:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch.refresh_from_db()
        if batch.status == BatchStatus.FINISHED:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch still {batch.status}: {list(batch.images.values('status'))}")


def test_tasks_are_acks_late_with_time_limits():
    task = app.tasks["images.image_optimize"]
    assert task.acks_late and task.reject_on_worker_lost
    assert (task.soft_time_limit, task.time_limit) == (120, 150)


def test_worker_finishes_a_batch_with_good_and_bad_files(image_staff, preset):
    _purge_queue()
    batch = batch_create(
        user=image_staff,
        name="Mixed",
        preset=preset,
        files=[
            upload("a.jpg", samples.jpeg()),
            upload("truncated.jpg", samples.truncated_jpeg()),
            upload("alpha.png", samples.png_alpha()),
            upload("cmyk.jpg", samples.cmyk_jpeg()),
        ],
    )
    with _worker():
        batch = _wait_until_finished(batch)
    statuses = dict(batch.images.values_list("original_name", "status"))
    assert statuses == {
        "a.jpg": "done",
        "truncated.jpg": "failed",
        "alpha.png": "done",
        "cmyk.jpg": "done",
    }
    assert "truncated or corrupt" in batch.images.get(original_name="truncated.jpg").error
    assert AuditEntry.objects.filter(action="images.batch.finish").count() == 1
    assert batch.started_at <= batch.finished_at


def test_a_worker_killed_mid_batch_its_image_is_redone_once(image_staff, preset):
    """The first image's worker died holding it: its claim is stale and its message was
    consumed. The reclaim task (beat) queues it again; the broker also delivers the dead
    worker's message again (acks_late). Every image is processed exactly once."""
    _purge_queue()
    batch = batch_create(
        user=image_staff,
        name="Interrupted",
        preset=preset,
        files=[upload(f"{n}.jpg", samples.jpeg(seed=n)) for n in range(3)],
        enqueue=False,
    )
    first, *others = batch.images.order_by("position")
    assert image_claim(image_id=first.pk, worker="killed-machine")
    BatchImage.objects.filter(pk=first.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=301)
    )
    for image in others:
        image_optimize_task.delay(image.pk)
    with _worker():
        assert image_claims_reclaim_task.delay().get(timeout=30) == [first.pk]
        image_optimize_task.delay(first.pk)  # the dead worker's message, delivered again
        batch = _wait_until_finished(batch)
        # The solo worker takes its queue in order: once this later task has answered, the
        # duplicate delivery has run too (and must have changed nothing).
        assert image_claims_reclaim_task.delay().get(timeout=30) == []
    first.refresh_from_db()
    assert first.status == ImageStatus.DONE and first.attempts == 2
    assert first.worker != "killed-machine"
    assert all(image.status == ImageStatus.DONE for image in batch.images.all())
    assert Variant.objects.filter(image__batch=batch).count() == 3 * 6
    assert AuditEntry.objects.filter(action="images.image.done").count() == 3
    assert AuditEntry.objects.filter(action="images.image.reclaim").count() == 1
    assert AuditEntry.objects.filter(action="images.batch.finish").count() == 1


def test_health_reports_the_worker_and_the_queue(image_staff):
    _purge_queue()
    client = client_for(image_staff)
    with _worker():
        health = client.get(reverse("images_api:health")).json()
    # The development file-system broker cannot ask workers safely; Redis (CI) can.
    assert health["workers"] == (1 if app.conf.broker_url.startswith("redis") else None)
    assert health["queue"] == app.conf.task_default_queue
    assert health["queue_length"] == 0
    assert health["last_hour"]["success_rate"] is None


def test_worker_makes_avif_after_the_batch_at_the_lowest_priority(image_staff, preset):
    _purge_queue()
    preset.make_avif = True
    preset.sizes = "400"
    preset.save()
    assert app.tasks["images.image_avif"].acks_late
    batch = batch_create(
        user=image_staff, name="With AVIF", preset=preset, files=[upload("a.jpg", samples.jpeg())]
    )
    with _worker():
        batch = _wait_until_finished(batch)
        image = batch.images.get()
        deadline = time.monotonic() + 30
        while image.avif_status != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
            image.refresh_from_db()
    assert image.status == "done" and image.avif_status == "done"
    assert set(image.variants.values_list("format", flat=True)) == {"jpeg", "webp", "avif"}


def _use_broker(url: str, options: dict) -> None:
    app.conf.broker_url = url
    app.conf.broker_transport_options = options
    # The producer pool was made for the broker before: it is made again on first use.
    app._pool = None
    app.amqp._producer_pool = None


@contextlib.contextmanager
def _portal_on_redis(url: str, settings):
    """The portal's broker and cache on a Redis of the test's own, as in production."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    }
    before = app.conf.broker_url, dict(app.conf.broker_transport_options or {})
    _use_broker(url, {})
    try:
        yield
    finally:
        _use_broker(*before)


def test_a_batch_made_while_redis_is_down_starts_when_it_is_back(image_staff, preset, settings):
    """Redis (broker and cache) is really stopped while a batch is uploaded: the batch is
    saved and the page says it will start when the workers are reachable (no 500, nothing to
    upload again). Once Redis is back, the periodic reclaim sends its images and the batch
    finishes."""
    with private_redis() as redis_server, _portal_on_redis(redis_server.url, settings):
        client = client_for(image_staff)
        redis_server.stop()
        response = client.post(
            reverse("images:batch_new"),
            {
                "name": "During the outage",
                "preset": preset.pk,
                "files": [upload("a.jpg", samples.jpeg()), upload("b.png", samples.png())],
            },
            follow=True,
        )
        html = response.content.decode()
        assert response.status_code == 200, html
        batch = Batch.objects.get()
        assert response.redirect_chain == [(batch.get_absolute_url(), 302)]
        assert "“During the outage”: 2 images saved." in html
        assert "Saved; it will start when the workers are reachable" in html
        assert batch.images.filter(status=ImageStatus.QUEUED, sent_at=None).count() == 2
        assert image_messages_send() == []  # still down: nothing sent, nothing raised

        redis_server.start()  # empty, as a Redis without persistence comes back
        with _worker():
            image_claims_reclaim_task.delay()  # what beat sends every IMAGE_RECLAIM_SECONDS
            batch = _wait_until_finished(batch)
        html = client.get(batch.get_absolute_url()).content.decode()
    assert set(batch.images.values_list("status", flat=True)) == {ImageStatus.DONE}
    assert "it will start when the workers are reachable" not in html
    assert AuditEntry.objects.filter(action="images.image.done").count() == 2


def _worker_process() -> None:
    """A Celery worker in a process of its own (forked from the test, so on its database)."""
    app.Worker(
        pool="solo",
        concurrency=1,
        hostname=f"doomed-{os.getpid()}@127.0.0.1",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        redirect_stdouts=False,
        loglevel="WARNING",
        quiet=True,
    ).start()


def test_an_image_held_by_a_worker_killed_with_sigkill_is_redone_within_a_minute(
    image_staff, preset, settings, monkeypatch
):
    """A worker process takes a slow image and is killed with SIGKILL: nothing tells the
    broker or the database. Its claim names it, and its heartbeat stops: within a minute the
    reclaim (every IMAGE_RECLAIM_SECONDS) queues the image again and another worker does it.
    Until the heartbeat is gone, the claim is left alone.

    The production periods add up to under a minute (asserted first); the test then runs the
    same path on a clock five times faster (heartbeat every second, stale after 6 s, reclaim
    every second), so it waits seconds, not the 20 s a real heartbeat takes to go stale."""
    assert settings.IMAGE_RECLAIM_SECONDS + PROCESS_HEARTBEAT_STALE_SECONDS < 60
    stale, beat = 6, 1
    monkeypatch.setattr(health, "PROCESS_HEARTBEAT_STALE_SECONDS", stale)
    monkeypatch.setattr(health, "PROCESS_HEARTBEAT_SECONDS", beat)
    monkeypatch.setattr(image_services, "PROCESS_HEARTBEAT_STALE_SECONDS", stale)
    settings.IMAGE_RECLAIM_SECONDS = 1
    _purge_queue()
    preset.measure_ssim = True  # slow enough to be killed half-way
    preset.webp_method = 6
    preset.save()
    batch = batch_create(
        user=image_staff,
        name="Killed",
        preset=preset,
        files=[upload("large.jpg", samples.jpeg(3000, 2000))],
        enqueue=False,
    )
    image = batch.images.get()
    connections.close_all()  # the child opens its own
    doomed = multiprocessing.get_context("fork").Process(target=_worker_process, daemon=True)
    doomed.start()
    try:
        image_optimize_task.delay(image.pk)
        deadline = time.monotonic() + 60
        while image.status != ImageStatus.WORKING and time.monotonic() < deadline:
            time.sleep(0.05)
            image.refresh_from_db()
        assert image.status == ImageStatus.WORKING
        assert image.worker.endswith(f" pid {doomed.pid}")
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.join(10)
    killed = time.monotonic()
    assert image_claims_reclaim() == []  # its heartbeat is still fresh: not yet judged dead

    with _worker():
        while time.monotonic() - killed < 60:
            image_claims_reclaim_task.delay()  # what beat sends every IMAGE_RECLAIM_SECONDS
            reclaim_deadline = time.monotonic() + settings.IMAGE_RECLAIM_SECONDS
            while time.monotonic() < reclaim_deadline:
                if AuditEntry.objects.filter(action="images.image.reclaim").exists():
                    break
                time.sleep(0.2)
            else:
                continue
            break
        reclaimed_after = time.monotonic() - killed
        assert AuditEntry.objects.filter(action="images.image.reclaim").count() == 1
        batch = _wait_until_finished(batch, timeout=120)
    # Not while its claim and heartbeat were fresh (a beat's leeway for the moments between
    # the claim and the kill), and well within the minute.
    assert stale - 2 * beat <= reclaimed_after < 60
    image.refresh_from_db()
    assert image.status == ImageStatus.DONE and image.attempts == 2
    assert not image.worker.endswith(f" pid {doomed.pid}")
    assert AuditEntry.objects.filter(action="images.image.done").count() == 1
