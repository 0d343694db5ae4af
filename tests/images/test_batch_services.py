"""Making, processing, retrying and deleting batches through the services: every bad input gets
a clear refusal or a per-image error, and nothing is done twice or left half-done."""

import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db.models import F
from django.utils import timezone

from images import pipeline, services
from images.models import Batch, BatchImage, BatchStatus, ImageStatus, Variant
from images.selectors import batch_totals
from images.services import (
    AVIF_TASK,
    OPTIMIZE_TASK,
    batch_create,
    batch_delete,
    batch_retry_failed,
    image_claim,
    image_claims_reclaim,
    image_process,
)
from images.tasks import image_optimize_task
from portal.errors import ActionRefused
from portal.health import PROCESS_HEARTBEAT_STALE_SECONDS, process_identity
from portal.models import AuditEntry
from tests.conftest import sent_ids
from tests.images import samples
from tests.images.samples import upload

pytestmark = pytest.mark.django_db


def make_batch(user, preset, files, name="Spring catalogue") -> Batch:
    return batch_create(user=user, name=name, preset=preset, files=files)


def process(image: BatchImage, worker: str = "w1") -> BatchImage:
    token = image_claim(image_id=image.pk, worker=worker)
    assert token is not None
    return image_process(image_id=image.pk, token=token)


def media_files(root: Path) -> list[Path]:
    return sorted(path for path in Path(root).rglob("*") if path.is_file())


# --- refusals at upload: the whole batch, nothing kept -----------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.jpg", samples.text(), "not an image in a supported format"),
        ("report.jpg", samples.pdf(), "not an image in a supported format"),
        ("archive.jpg", samples.zip_archive(), "not an image in a supported format"),
        ("empty.jpg", b"", "The file is empty"),
        ("bomb.png", samples.bomb_png(), "possible decompression bomb"),
    ],
    ids=["text", "pdf", "zip", "zero-byte", "bomb"],
)
def test_a_bad_file_refuses_the_upload_and_keeps_nothing(
    image_staff, preset, _media_root, name, data, reason
):
    files = [upload("good.jpg", samples.jpeg()), upload(name, data)]
    with pytest.raises(ActionRefused) as refused:
        make_batch(image_staff, preset, files)
    assert refused.value.message.startswith("This file cannot be used; nothing was uploaded.")
    assert f"{name}: " in refused.value.message and reason in refused.value.message
    assert "good.jpg" not in refused.value.message
    assert not Batch.objects.exists() and not BatchImage.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="images.").exists()
    assert media_files(_media_root) == []


def test_over_the_byte_limit_is_refused_before_reading(image_staff, preset, settings, _media_root):
    settings.IMAGE_MAX_UPLOAD_BYTES = 5_000
    big = samples.jpeg(400, 300)
    assert len(big) > 5_000
    files = [upload("big.jpg", big), upload("notes.jpg", samples.text())]
    with pytest.raises(ActionRefused) as refused:
        make_batch(image_staff, preset, files)
    message = refused.value.message
    assert message.startswith("2 files cannot be used")
    assert "big.jpg: the file is" in message and "the limit is 4.9 KB" in message
    assert "notes.jpg: This is not an image" in message
    assert media_files(_media_root) == [] and not Batch.objects.exists()


def test_no_files_too_many_files_and_no_name(image_staff, preset, settings):
    with pytest.raises(ActionRefused, match="Choose at least one image"):
        make_batch(image_staff, preset, [])
    settings.IMAGE_MAX_FILES_PER_BATCH = 2
    files = [upload(f"{n}.jpg", samples.jpeg(seed=n)) for n in range(3)]
    with pytest.raises(ActionRefused, match="at most 2 images; you chose 3"):
        make_batch(image_staff, preset, files)
    with pytest.raises(ActionRefused, match="Name the batch"):
        make_batch(image_staff, preset, files[:1], name="   ")
    preset.is_active = False
    preset.save()
    with pytest.raises(ActionRefused, match="not in use any more"):
        make_batch(image_staff, preset, files[:1])
    assert not Batch.objects.exists()


def test_only_image_staff_may_upload(operator, outsider, preset):
    for user in (operator, outsider):
        with pytest.raises(PermissionDenied):
            make_batch(user, preset, [upload("a.jpg", samples.jpeg())])
    assert not Batch.objects.exists()


def test_upload_stores_originals_by_content_hash_and_queues_one_task_each(
    image_staff, preset, sent_tasks, django_capture_on_commit_callbacks
):
    same = samples.jpeg(seed=2)
    files = [upload("a.jpg", same), upload("b.png", samples.png()), upload("a-copy.jpg", same)]
    with django_capture_on_commit_callbacks(execute=True):
        batch = make_batch(image_staff, preset, files)
    images = list(batch.images.order_by("position"))
    assert [i.original_name for i in images] == ["a.jpg", "b.png", "a-copy.jpg"]
    assert sent_ids(sent_tasks, OPTIMIZE_TASK) == [i.pk for i in images]
    assert all(image.sent_at is not None for image in batch.images.all())
    assert images[0].original_path == images[2].original_path  # stored once
    digest = pipeline.content_hash(same)
    assert images[0].original_path == f"images/originals/{digest[:2]}/{digest}.jpg"
    assert images[1].original_path.endswith(".png") and images[1].format == "PNG"
    assert (images[1].width, images[1].height, images[1].bytes) == (160, 120, len(samples.png()))
    assert batch.status == BatchStatus.QUEUED and batch.images_total == 3
    assert batch.preset_settings["sizes"] == [2048, 1024, 400]
    entry = AuditEntry.objects.get(action="images.batch.create")
    assert entry.actor == image_staff and "3 images" in entry.summary


# --- processing: a correct result or a clear per-image error -------------------------------------


def test_batch_with_good_and_bad_files_completes_with_per_image_errors(image_staff, preset):
    files = [
        upload("good.jpg", samples.jpeg()),
        upload("truncated.jpg", samples.truncated_jpeg()),
        upload("good.png", samples.png()),
    ]
    batch = make_batch(image_staff, preset, files)
    results = [process(image) for image in batch.images.order_by("position")]
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert "truncated or corrupt" in results[1].error
    assert not results[1].variants.exists()
    good = results[0]
    assert good.bytes_after < good.bytes and good.savings_percent > 0
    variants = list(good.variants.order_by("-size", "format"))
    assert [(v.size, v.format) for v in variants] == [
        (2048, "jpeg"),
        (2048, "webp"),
        (1024, "jpeg"),
        (1024, "webp"),
        (400, "jpeg"),
        (400, "webp"),
    ]
    assert min(v.bytes for v in variants if v.size == 2048) == good.bytes_after
    for variant in variants:
        if variant.kept:
            assert default_storage.size(variant.path) == variant.bytes
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED and batch.finished_at and batch.started_at
    actions = list(
        AuditEntry.objects.filter(action__startswith="images.").values_list("action", flat=True)
    )
    assert sorted(actions) == sorted(
        [
            "images.batch.create",
            "images.batch.start",
            "images.image.done",
            "images.image.fail",
            "images.image.done",
            "images.batch.finish",
        ]
    )
    assert "2 done, 1 failed" in AuditEntry.objects.get(action="images.batch.finish").summary


def _stored_behind_the_service(batch: Batch, name: str, data: bytes) -> BatchImage:
    """A row whose stored original is not what was checked at upload (a file replaced in the
    storage, an older version's upload): the worker must still cope."""
    path = default_storage.save(f"images/test/{name}", samples.upload(name, data))
    return BatchImage.objects.create(
        batch=batch,
        position=batch.images.count(),
        original_name=name,
        original_path=path,
        content_hash=pipeline.content_hash(data),
        format="JPEG",
        width=1,
        height=1,
        bytes=len(data),
    )


def test_files_the_upload_check_never_saw_fail_alone(image_staff, preset):
    batch = make_batch(image_staff, preset, [upload("good.jpg", samples.jpeg())])
    bad = {
        "notes.jpg": (samples.text(), "not an image in a supported format"),
        "bomb.png": (samples.bomb_png(), "decompression bomb"),
        "empty.jpg": (b"", "The file is empty"),
    }
    rows = {name: _stored_behind_the_service(batch, name, data) for name, (data, _) in bad.items()}
    for image in batch.images.order_by("position"):
        process(image)
    for name, (_, reason) in bad.items():
        rows[name].refresh_from_db()
        assert rows[name].status == ImageStatus.FAILED and reason in rows[name].error
    assert batch.images.get(original_name="good.jpg").status == ImageStatus.DONE
    batch.refresh_from_db()
    assert batch.is_finished


ODD_BUT_VALID = {
    "cmyk.jpg": (samples.cmyk_jpeg, "CMYK image without an ICC profile"),
    "16-bit.png": (samples.png_16_bit, None),
    "alpha.png": (samples.png_alpha, None),
    "animated.gif": (samples.animated_gif, "only the first frame"),
    "corrupt-icc.jpg": (samples.corrupt_icc_jpeg, "ICC profile is corrupt"),
}


@pytest.mark.parametrize("name", list(ODD_BUT_VALID))
def test_odd_but_valid_images_are_optimized_with_their_warnings(image_staff, preset, name):
    make, warning = ODD_BUT_VALID[name]
    batch = make_batch(image_staff, preset, [upload(name, make())])
    image = process(batch.images.get())
    assert image.status == ImageStatus.DONE, image.error
    assert image.variants.filter(kept=True).exists()
    if warning:
        assert any(warning in text for text in image.warnings), image.warnings
    else:
        assert image.warnings == []


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(image_staff, preset, orientation):
    batch = make_batch(image_staff, preset, [upload("o.jpg", samples.oriented_jpeg(orientation))])
    image = batch.images.get()
    expected = (80, 120) if orientation >= 5 else (120, 80)
    assert (image.width, image.height) == expected
    image = process(image)
    assert image.status == ImageStatus.DONE
    variant = image.variants.get(size=400, format="jpeg")
    assert (variant.width, variant.height) == expected


def test_soft_time_limit_and_unexpected_errors_fail_the_image_with_a_reason(
    image_staff, preset, monkeypatch
):
    batch = make_batch(
        image_staff,
        preset,
        [upload("a.jpg", samples.jpeg()), upload("b.jpg", samples.jpeg(seed=2))],
    )
    first, second = batch.images.order_by("position")

    def too_slow(data, preset):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(pipeline, "optimize", too_slow)
    assert "took longer than the 120 s limit" in process(first).error

    def out_of_memory(data, preset):
        raise MemoryError()

    monkeypatch.setattr(pipeline, "optimize", out_of_memory)
    assert process(second).error == "The worker ran out of memory on this image."
    batch.refresh_from_db()
    assert batch.is_finished


def test_a_failure_while_writing_leaves_no_files(image_staff, preset, settings, _media_root):
    batch = make_batch(image_staff, preset, [upload("a.jpg", samples.jpeg())])
    originals = media_files(_media_root)
    # The disk fills up at the third variant written.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "tests.images.storages.FullDiskStorage",
            "OPTIONS": {"fail_on_save": 3},
        },
    }
    image = process(batch.images.get())
    assert image.status == ImageStatus.FAILED and "OSError" in image.error
    assert media_files(_media_root) == originals  # the two variants written were removed
    assert not Variant.objects.exists()


def test_a_partial_file_left_by_a_killed_worker_is_replaced(image_staff, preset):
    batch = make_batch(image_staff, preset, [upload("a.jpg", samples.jpeg())])
    image = batch.images.get()
    folder = f"images/variants/{image.content_hash[:2]}/{image.content_hash}/{batch.fingerprint}"
    default_storage.save(f"{folder}/2048.jpg", samples.upload("x", b"half a jp"))
    image = process(image)
    variant = image.variants.get(size=2048, format="jpeg")
    assert variant.path == f"{folder}/2048.jpg"
    assert default_storage.size(variant.path) == variant.bytes > 9


# --- memory: an upload is checked from its first bytes and streamed, never read whole ------------

LARGE = 24 * 1024 * 1024


def _temporary_upload(name: str, head: bytes, size: int) -> TemporaryUploadedFile:
    """What Django hands a view for a large upload: a temporary file on disk."""
    upload = TemporaryUploadedFile(name, "image/jpeg", size, None)
    upload.write(head)
    block = bytes(range(256)) * 4096
    while upload.tell() < size:
        upload.write(block[: size - upload.tell()])
    upload.seek(0)
    return upload


def _peak_allocated(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_upload_is_checked_and_stored_with_flat_memory(image_staff, preset, _media_root):
    """A 24 MB file that is not an image is refused from its first bytes; a 24 MB one that is
    (a JPEG with data after its end) is hashed and stored in chunks. Neither is read whole."""
    junk = _temporary_upload("junk.jpg", b"%PDF-1.7\n", LARGE)

    def refused():
        with pytest.raises(ActionRefused, match="not an image in a supported format"):
            make_batch(image_staff, preset, [junk])

    assert _peak_allocated(refused) < LARGE / 8
    junk.close()
    jpeg = samples.jpeg()
    padded = _temporary_upload("padded.jpg", jpeg, LARGE)
    made = []
    peak = _peak_allocated(lambda: made.append(make_batch(image_staff, preset, [padded])))
    padded.close()
    assert peak < LARGE / 8
    image = made[0].images.get()
    assert image.bytes == LARGE and default_storage.size(image.original_path) == LARGE
    with default_storage.open(image.original_path, "rb") as stored:
        assert stored.read(len(jpeg)) == jpeg


# --- idempotency: claims ----------------------------------------------------------------------


def test_calling_the_task_twice_processes_the_image_once(image_staff, preset):
    batch = make_batch(image_staff, preset, [upload("a.jpg", samples.jpeg())])
    image = batch.images.get()
    assert image_optimize_task.apply(args=[image.pk]).get() == "done"
    first_variants = list(Variant.objects.values_list("pk", flat=True))
    assert image_optimize_task.apply(args=[image.pk]).get() == "skipped"
    image.refresh_from_db()
    assert image.attempts == 1 and image.status == ImageStatus.DONE
    assert list(Variant.objects.values_list("pk", flat=True)) == first_variants
    assert AuditEntry.objects.filter(action="images.image.done").count() == 1
    assert AuditEntry.objects.filter(action="images.batch.finish").count() == 1


def test_a_live_workers_claim_is_never_taken_however_slow(
    image_staff, preset, django_capture_on_commit_callbacks
):
    """This process claims the image (its heartbeat runs) and is still at it two minutes
    later: a second delivery of the message and the reclaim both leave it alone."""
    batch = make_batch(image_staff, preset, [upload("a.jpg", samples.jpeg())])
    image = batch.images.get()
    assert image_claim(image_id=image.pk)
    image.refresh_from_db()
    assert image.worker == process_identity()
    BatchImage.objects.filter(pk=image.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=120)
    )
    assert image_optimize_task.apply(args=[image.pk]).get() == "skipped"
    with django_capture_on_commit_callbacks(execute=True):
        assert image_claims_reclaim() == []
    image.refresh_from_db()
    assert image.status == ImageStatus.WORKING and image.attempts == 1
    assert image.worker == process_identity()


def test_a_claim_whose_worker_has_no_heartbeat_is_taken_over_by_a_second_delivery(
    image_staff, preset
):
    batch = make_batch(image_staff, preset, [upload("a.jpg", samples.jpeg())])
    image = batch.images.get()
    assert image_claim(image_id=image.pk, worker="killed-machine pid 7")
    # Within the heartbeat's grace the claim stands: the worker may have just started.
    assert image_optimize_task.apply(args=[image.pk]).get() == "skipped"
    BatchImage.objects.filter(pk=image.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=PROCESS_HEARTBEAT_STALE_SECONDS + 1)
    )
    assert image_optimize_task.apply(args=[image.pk]).get() == "done"
    image.refresh_from_db()
    assert image.attempts == 2 and image.worker == process_identity()


def test_a_stale_claim_of_a_dead_worker_is_taken_over_once(image_staff, preset):
    batch = make_batch(image_staff, preset, [upload("a.jpg", samples.jpeg())])
    image = batch.images.get()
    dead_token = image_claim(image_id=image.pk, worker="dead")
    BatchImage.objects.filter(pk=image.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=301)
    )
    # The broker delivers the message again (acks_late): another worker takes the image over.
    assert image_optimize_task.apply(args=[image.pk]).get() == "done"
    image.refresh_from_db()
    assert image.attempts == 2 and image.status == ImageStatus.DONE
    variants = list(Variant.objects.values_list("pk", flat=True))
    # The dead worker was only slow after all: its late result is not recorded a second time.
    late = image_process(image_id=image.pk, token=dead_token)
    assert late.status == ImageStatus.DONE
    assert list(Variant.objects.values_list("pk", flat=True)) == variants
    assert AuditEntry.objects.filter(action="images.image.done").count() == 1


def test_reclaim_queues_dead_workers_images_and_fails_them_after_the_last_attempt(
    image_staff, preset, settings, sent_tasks, django_capture_on_commit_callbacks
):
    batch = make_batch(
        image_staff,
        preset,
        [upload("a.jpg", samples.jpeg()), upload("b.jpg", samples.jpeg(seed=2))],
    )
    first, second = batch.images.order_by("position")
    for image in (first, second):
        image_claim(image_id=image.pk, worker="dead")
    old = timezone.now() - timedelta(seconds=400)
    BatchImage.objects.filter(pk=first.pk).update(claimed_at=old)
    BatchImage.objects.filter(pk=second.pk).update(claimed_at=old, attempts=3)
    with django_capture_on_commit_callbacks(execute=True):
        assert image_claims_reclaim() == [first.pk]
    assert sent_ids(sent_tasks, OPTIMIZE_TASK) == [first.pk]
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == ImageStatus.QUEUED and first.claim_token == ""
    assert second.status == ImageStatus.FAILED and "3 times" in second.error
    assert image_claims_reclaim() == []  # nothing stale is left
    assert process(first).status == ImageStatus.DONE
    batch.refresh_from_db()
    assert batch.is_finished


# --- people's actions ----------------------------------------------------------------------------


def _out_of_memory_once(monkeypatch, name: str) -> None:
    """The pipeline runs out of memory on the image named ``name``, the first time only: a
    transient failure, which a retry may fix."""
    real = pipeline.optimize
    failed = []

    def optimize(data, preset):
        if not failed and data == samples.jpeg(seed=7):
            failed.append(name)
            raise MemoryError
        return real(data, preset)

    monkeypatch.setattr(pipeline, "optimize", optimize)


def test_retry_queues_the_images_that_failed_for_a_transient_reason(
    image_staff, operator, preset, monkeypatch, sent_tasks, django_capture_on_commit_callbacks
):
    _out_of_memory_once(monkeypatch, "big.jpg")
    batch = make_batch(
        image_staff,
        preset,
        [
            upload("a.jpg", samples.jpeg()),
            upload("big.jpg", samples.jpeg(seed=7)),
            upload("t.jpg", samples.truncated_jpeg()),
        ],
    )
    for image in batch.images.all():
        process(image)
    big = batch.images.get(original_name="big.jpg")
    assert big.status == ImageStatus.FAILED and "out of memory" in big.error
    with pytest.raises(PermissionDenied):
        batch_retry_failed(batch=batch, user=operator)
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_retry_failed(batch=batch, user=image_staff) == 1
    assert sent_ids(sent_tasks, OPTIMIZE_TASK) == [big.pk]
    big.refresh_from_db()
    assert big.status == ImageStatus.QUEUED and big.error == ""
    # The corrupt file is left failed: retrying it would fail the same way.
    truncated = batch.images.get(original_name="t.jpg")
    assert truncated.status == ImageStatus.FAILED and "truncated" in truncated.error
    batch.refresh_from_db()
    assert batch.status == BatchStatus.QUEUED and batch.finished_at is None
    assert process(big).status == ImageStatus.DONE
    batch.refresh_from_db()
    assert batch.is_finished
    assert AuditEntry.objects.filter(action="images.batch.retry", actor=image_staff).exists()
    # Only the corrupt file is left failed: nothing a retry could fix.
    with pytest.raises(ActionRefused, match="cannot be used") as refused:
        batch_retry_failed(batch=batch, user=image_staff)
    assert refused.value.status == 409 and "1 failed image of this batch" in refused.value.message


def test_retry_keeps_the_batch_time_as_the_sum_of_processing(
    image_staff, preset, monkeypatch, sent_tasks, django_capture_on_commit_callbacks
):
    """The batch ran, failed one image for lack of memory, and was retried an hour later: its
    time is its two runs, not the hour since the upload, and its images/s stay honest."""
    _out_of_memory_once(monkeypatch, "big.jpg")
    batch = make_batch(
        image_staff,
        preset,
        [upload("a.jpg", samples.jpeg()), upload("big.jpg", samples.jpeg(seed=7))],
    )
    for image in batch.images.all():
        process(image)
    batch.refresh_from_db()
    first_run = batch_totals(batch=batch).seconds
    assert batch.is_finished and 0 < first_run < 30
    hour = timedelta(hours=1)
    Batch.objects.filter(pk=batch.pk).update(
        created_at=F("created_at") - hour,
        started_at=F("started_at") - hour,
        finished_at=F("finished_at") - hour,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_retry_failed(batch=batch, user=image_staff) == 1
    batch.refresh_from_db()
    assert batch_totals(batch=batch).seconds == pytest.approx(first_run)  # waiting is not work
    process(batch.images.get(original_name="big.jpg"))
    batch.refresh_from_db()
    totals = batch_totals(batch=batch)
    assert batch.is_finished and (totals.done, totals.failed) == (2, 0)
    assert first_run < totals.seconds < first_run + 30
    assert totals.images_per_second == round(2 / totals.seconds, 2) > 2 / 60


def test_retry_without_failures_is_refused(image_staff, preset):
    batch = make_batch(image_staff, preset, [upload("a.jpg", samples.jpeg())])
    process(batch.images.get())
    with pytest.raises(ActionRefused, match="nothing to retry") as refused:
        batch_retry_failed(batch=batch, user=image_staff)
    assert refused.value.status == 409


def test_delete_removes_the_files_no_other_batch_uses(
    image_staff, operator, preset, _media_root, django_capture_on_commit_callbacks
):
    shared = samples.jpeg(seed=9)
    keep = make_batch(image_staff, preset, [upload("shared.jpg", shared)], name="Keep")
    gone = make_batch(
        image_staff,
        preset,
        [upload("shared.jpg", shared), upload("own.png", samples.png())],
        name="Gone",
    )
    for image in BatchImage.objects.all():
        process(image)
    kept_files = {
        Path(_media_root) / path
        for path in [
            keep.images.get().original_path,
            *Variant.objects.filter(image__batch=keep, kept=True).values_list("path", flat=True),
        ]
    }
    with pytest.raises(PermissionDenied):
        batch_delete(batch=gone, user=operator)
    with django_capture_on_commit_callbacks(execute=True):
        batch_delete(batch=gone, user=image_staff)
    assert not Batch.objects.filter(pk=gone.pk).exists()
    assert set(media_files(_media_root)) == kept_files
    assert AuditEntry.objects.filter(action="images.batch.delete", actor=image_staff).exists()


def test_a_batch_still_running_cannot_be_deleted(image_staff, preset):
    batch = make_batch(image_staff, preset, [upload("a.jpg", samples.jpeg())])
    with pytest.raises(ActionRefused, match="still being processed") as refused:
        batch_delete(batch=batch, user=image_staff)
    assert refused.value.status == 409 and Batch.objects.filter(pk=batch.pk).exists()


# --- AVIF: separate, lower-priority work ---------------------------------------------------------


@pytest.fixture
def avif_preset(preset):
    preset.make_avif = True
    preset.sizes = "400"
    preset.save()
    return preset


def test_avif_is_separate_work_after_the_image_is_done(
    image_staff, avif_preset, sent_tasks, django_capture_on_commit_callbacks
):
    batch = make_batch(image_staff, avif_preset, [upload("a.jpg", samples.jpeg())])
    image = batch.images.get()
    with django_capture_on_commit_callbacks(execute=True):
        image = process(image)
    # The image and the batch are done with JPEG and WebP; AVIF is queued as its own task.
    assert image.status == "done" and image.avif_status == "queued"
    assert sent_ids(sent_tasks, AVIF_TASK) == [image.pk]
    assert not image.variants.filter(format="avif").exists()
    batch.refresh_from_db()
    assert batch.status == BatchStatus.FINISHED

    done = services.image_avif_process(image_id=image.pk)
    assert done.avif_status == "done"
    assert done.variants.filter(format="avif").count() == 1
    assert services.image_avif_process(image_id=image.pk) is None  # a second delivery: nothing
    assert done.variants.filter(format="avif").count() == 1
    assert {v.format for v in done.variants.all()} == {"jpeg", "webp", "avif"}


def test_an_avif_failure_leaves_the_image_done(image_staff, avif_preset, monkeypatch):
    batch = make_batch(image_staff, avif_preset, [upload("a.jpg", samples.jpeg())])
    image = process(batch.images.get())

    def broken(data, preset):
        raise MemoryError

    monkeypatch.setattr(pipeline, "optimize_avif", broken)
    image = services.image_avif_process(image_id=image.pk)
    assert image.status == "done" and image.avif_status == "failed"
    assert image.avif_error == "The worker ran out of memory on this image."
    assert image.variants.filter(format="jpeg").exists()
    assert AuditEntry.objects.filter(action="images.image.avif_fail").exists()


def test_a_stale_avif_claim_is_sent_again(
    image_staff, avif_preset, sent_tasks, django_capture_on_commit_callbacks
):
    batch = make_batch(image_staff, avif_preset, [upload("a.jpg", samples.jpeg())])
    image = process(batch.images.get())
    BatchImage.objects.filter(pk=image.pk).update(
        avif_status="working", avif_claimed_at=timezone.now() - timedelta(hours=1)
    )
    sent_tasks.clear()
    with django_capture_on_commit_callbacks(execute=True):
        image_claims_reclaim()
    assert sent_ids(sent_tasks, AVIF_TASK) == [image.pk]
    assert services.image_avif_process(image_id=image.pk).avif_status == "done"
