"""Writes for image batches: make one from an upload, process its images (in workers, one image
per call), settle it, retry what failed, delete it.

Processing is idempotent: a worker first claims an image with a conditional update (queued, or
working under a claim whose worker is dead) and stops when that changes no row;
it writes its outputs under names made of the upload's content hash and the preset's
fingerprint, and settles the image only while it still holds the claim. So a task delivered
twice, or a worker that dies half-way, never processes an image twice or leaves half a result.

Who holds a claim is recorded with it (``worker``: the process's identity, under which that
process stamps a heartbeat, portal.health). The heartbeat decides: a claim whose worker stopped
stamping is taken over within a minute (by the periodic reclaim, or by a second delivery of its
message); a live worker's claim is never taken, however slow its image. A claim older than
IMAGE_CLAIM_STALE_SECONDS (more than any task may run) is taken over whatever the heartbeat says,
and while the heartbeats cannot be read only that rule applies.
"""

import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import group
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError

from images import pipeline
from images.models import (
    PENDING,
    Batch,
    BatchImage,
    BatchSource,
    BatchStatus,
    FailureKind,
    ImageStatus,
    Preset,
    Variant,
    claim_stale_after,
    preset_snapshot,
)
from images.selectors import batch_totals
from portal.celery import app
from portal.errors import ActionRefused
from portal.formatting import human_bytes
from portal.health import PROCESS_HEARTBEAT_STALE_SECONDS, process_heartbeat_start, processes_alive
from portal.permissions import require_perm
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)

MAX_NAME = 200
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "AVIF": ".avif"}
OPTIMIZE_TASK = "images.image_optimize"
AVIF_TASK = "images.image_avif"
ORIGINALS = "images/originals"
VARIANTS = "images/variants"


# --- storage --------------------------------------------------------------------------------


def _store(name: str, content: File | bytes, nbytes: int) -> tuple[str, bool]:
    """Save under ``name`` unless the same number of bytes is already there (names are content
    hashes: same name, same bytes). A shorter file at the name is what a process killed
    mid-write leaves: it is replaced. Returns the name used and whether this call wrote it."""
    if default_storage.exists(name):
        if default_storage.size(name) == nbytes:
            return name, False
        default_storage.delete(name)
    if isinstance(content, bytes):
        content = ContentFile(content)
    return default_storage.save(name, content), True


def _delete_unreferenced(paths: set[str]) -> None:
    """Delete the files no row names any more (another batch may share an original or a
    variant: the same upload with the same preset)."""
    if not paths:
        return
    used = set(
        BatchImage.objects.filter(original_path__in=paths).values_list("original_path", flat=True)
    ) | set(Variant.objects.filter(path__in=paths).values_list("path", flat=True))
    for path in sorted(paths - used):
        try:
            default_storage.delete(path)
        except OSError:
            logger.warning("Could not delete %s", path, exc_info=True)


# --- making a batch ---------------------------------------------------------------------------


@dataclass
class _Checked:
    upload: File
    name: str
    digest: str
    info: pipeline.SourceInfo


def _file_name(upload: File) -> str:
    return os.path.basename(upload.name or "unnamed")[:255] or "unnamed"


def _check_uploads(
    uploads: Sequence[File], preset: pipeline.Preset
) -> tuple[list[_Checked], list[dict[str, str]]]:
    """Read each file's header from its first bytes (no pixels decoded, never the whole file
    in memory: a large upload is a temporary file) and hash the good ones in chunks: the
    usable files, and each refused one with its reason ({"name", "reason"})."""
    problems: list[dict[str, str]] = []
    checked: list[_Checked] = []
    for upload in uploads:
        name = _file_name(upload)
        if upload.size is not None and upload.size > preset.max_bytes:
            reason = (
                f"the file is {human_bytes(upload.size)}; the limit is "
                f"{human_bytes(preset.max_bytes)}."
            )
            problems.append({"name": name, "reason": reason})
            continue
        try:
            info = pipeline.probe_file(upload, upload.size or 0, preset)
        except pipeline.ImageRejected as rejected:
            problems.append({"name": name, "reason": rejected.reason})
            continue
        checked.append(_Checked(upload, name, pipeline.content_hash_file(upload), info))
    return checked, problems


def _refusal(problems: list[dict[str, str]], *, nothing_kept: bool) -> ActionRefused:
    count = len(problems)
    head = "This file cannot be used" if count == 1 else f"{count} files cannot be used"
    tail = "; nothing was uploaded. " if nothing_kept else ". "
    return ActionRefused(head + tail + " ".join(f"{p['name']}: {p['reason']}" for p in problems))


def batch_create(
    *,
    user,
    name: str,
    preset: Preset,
    files: Sequence[File],
    source: str = BatchSource.UPLOAD,
    enqueue: bool = True,
    keep_usable: bool = False,
) -> Batch:
    """Store the uploads and queue one task per image. Everything is checked first. With
    ``keep_usable`` (the upload page) the usable files make the batch and each refused one is
    listed on it with its reason; without (the API) one unusable file refuses the whole batch,
    with every problem named, and nothing is kept. No usable file refuses it either way."""
    require_perm(user, "images.upload_batch", "You may not upload images.")
    name = name.strip()
    if not name:
        raise ActionRefused("Name the batch, e.g. “Spring catalogue”.")
    if len(name) > MAX_NAME:
        raise ActionRefused(f"The name is too long ({len(name)} characters; at most {MAX_NAME}).")
    if not files:
        raise ActionRefused("Choose at least one image.")
    limit = settings.IMAGE_MAX_FILES_PER_BATCH
    if len(files) > limit:
        raise ActionRefused(f"A batch holds at most {limit} images; you chose {len(files)}.")
    if not preset.is_active:
        raise ActionRefused(f"The preset “{preset}” is not in use any more; choose another.")
    pipeline_preset = preset.to_pipeline()
    checked, refused = _check_uploads(files, pipeline_preset)
    if refused and (not keep_usable or not checked):
        raise _refusal(refused, nothing_kept=True)
    total = sum(item.info.bytes for item in checked)

    written: list[str] = []
    try:
        paths = []
        for item in checked:
            target = f"{ORIGINALS}/{item.digest[:2]}/{item.digest}{EXTENSIONS[item.info.format]}"
            item.upload.seek(0)
            path, wrote = _store(target, item.upload, item.info.bytes)
            if wrote:
                written.append(path)
            paths.append(path)
        with transaction.atomic():
            batch = Batch.objects.create(
                name=name,
                preset=preset,
                preset_settings=preset_snapshot(pipeline_preset),
                source=source,
                images_total=len(checked),
                created_by=user,
                refused=refused,
            )
            images = BatchImage.objects.bulk_create(
                BatchImage(
                    batch=batch,
                    position=position,
                    original_name=item.name,
                    original_path=path,
                    content_hash=item.digest,
                    format=item.info.format,
                    width=item.info.width,
                    height=item.info.height,
                    bytes=item.info.bytes,
                )
                for position, (item, path) in enumerate(zip(checked, paths, strict=True))
            )
            audit_record(
                actor=user,
                action="images.batch.create",
                target=batch,
                summary=f"{len(images)} image{'s' if len(images) != 1 else ''}, "
                f"{human_bytes(total)}, preset {preset}"
                + (f", {len(refused)} refused" if refused else ""),
                after={
                    "preset": preset.name,
                    "images": len(images),
                    "source": source,
                    "refused": refused,
                },
            )
            if enqueue:
                ids = [image.pk for image in BatchImage.objects.filter(batch=batch)]
                transaction.on_commit(lambda: _enqueue(ids))
    except BaseException:
        _delete_unreferenced(set(written))
        raise
    return batch


# What sending a message raises while the broker does not answer (kombu wraps the transport's
# errors in OperationalError; a refused or reset socket may surface as OSError).
BROKER_ERRORS = (OperationalError, OSError)


def _enqueue(image_ids: list[int]) -> bool:
    """One task per image, as a group: every worker on every machine takes its share. The
    finishing step is ``batch_settle``, run by whichever image settles last. Sent by the
    task's name: images.tasks imports this module.

    The rows are the truth and the message a nudge (a transactional outbox): an image is
    marked sent only once the broker took its message. When the broker does not answer,
    nothing is raised: the images stay queued and unsent, and the periodic reclaim sends them
    once it answers again. Returns whether the messages were sent."""
    if not image_ids:
        return True
    try:
        group(app.signature(OPTIMIZE_TASK, args=(pk,)) for pk in image_ids).apply_async()
    except BROKER_ERRORS:
        logger.warning(
            "The broker did not take %d image tasks; the reclaim sends them later",
            len(image_ids),
            exc_info=True,
        )
        return False
    BatchImage.objects.filter(pk__in=image_ids).update(sent_at=timezone.now())
    return True


# --- processing one image -----------------------------------------------------------------------


def _claims_of_dead_workers(images: Sequence[BatchImage], now: datetime) -> set[int]:
    """Of these working images, those whose claim its worker no longer holds: older than any
    task may run, or (past the heartbeat's own grace) made by a worker whose heartbeat is gone.
    While the heartbeats cannot be read, only the first rule applies."""
    judged = [
        image
        for image in images
        if image.claimed_at is not None
        and image.claimed_at < now - timedelta(seconds=PROCESS_HEARTBEAT_STALE_SECONDS)
    ]
    alive = processes_alive(image.worker for image in judged) if judged else {}
    too_old = now - claim_stale_after()
    return {
        image.pk
        for image in judged
        if image.claimed_at < too_old or (alive is not None and not alive.get(image.worker, False))
    }


def image_claim(
    *, image_id: int, worker: str | None = None, now: datetime | None = None
) -> str | None:
    """Take an image for processing: returns the claim token, or None when it is done, failed,
    gone, or held by a worker that is alive. The claim records ``worker``: by default this
    process's identity, whose heartbeat is started here (naming another worker, as a test does
    to play a dead one, starts none)."""
    now = now or timezone.now()
    if worker is None:
        worker = process_heartbeat_start()
    token = uuid.uuid4().hex
    claim = {
        "status": ImageStatus.WORKING,
        "claim_token": token,
        "claimed_at": now,
        "worker": worker[:200],
        "attempts": F("attempts") + 1,
    }
    in_pending_batch = Q(batch__status__in=[BatchStatus.QUEUED, BatchStatus.RUNNING])
    claimed = BatchImage.objects.filter(
        in_pending_batch, pk=image_id, status=ImageStatus.QUEUED
    ).update(**claim)
    if not claimed:
        # Held: taken over only from a worker that is dead (the heartbeat decides).
        held = BatchImage.objects.filter(
            in_pending_batch, pk=image_id, status=ImageStatus.WORKING
        ).first()
        if held is not None and _claims_of_dead_workers([held], now):
            claimed = BatchImage.objects.filter(
                pk=image_id, status=ImageStatus.WORKING, claim_token=held.claim_token
            ).update(**claim)
    if not claimed:
        return None
    batch_id = BatchImage.objects.filter(pk=image_id).values_list("batch_id", flat=True).get()
    with transaction.atomic():
        # The first claim of a run (the upload's, or a retry's) starts the batch's clock.
        if Batch.objects.filter(pk=batch_id, status=BatchStatus.QUEUED).update(
            status=BatchStatus.RUNNING, run_started_at=now, started_at=Coalesce("started_at", now)
        ):
            audit_record(
                actor=None,
                action="images.batch.start",
                target=Batch.objects.get(pk=batch_id),
                summary=f"First image taken by {worker or 'a worker'}",
            )
    return token


def _failure_reason(exc: BaseException) -> tuple[str, FailureKind]:
    """The reason a person reads, and whether retrying may help: a file the pipeline rejects
    (corrupt, unsupported) fails the same way again; time, memory and errors may not."""
    if isinstance(exc, pipeline.ImageRejected):
        return exc.reason, FailureKind.REJECTED
    if isinstance(exc, SoftTimeLimitExceeded):
        return (
            f"Processing took longer than the {settings.IMAGE_TASK_SOFT_TIME_LIMIT} s limit; the "
            "image is too large or too complex for this preset."
        ), FailureKind.TRANSIENT
    if isinstance(exc, MemoryError):
        return "The worker ran out of memory on this image.", FailureKind.TRANSIENT
    return (
        f"Unexpected error while processing ({type(exc).__name__}); see the worker's log.",
        FailureKind.TRANSIENT,
    )


def _store_variants(
    image: BatchImage, variants: list[pipeline.Variant], written: list[str]
) -> list[Variant]:
    """Write the kept variants under names keyed by content hash and preset, appending the
    paths written to ``written`` (removed again if the image fails), and return their rows."""
    folder = f"{VARIANTS}/{image.content_hash[:2]}/{image.content_hash}/{image.batch.fingerprint}"
    rows = []
    for variant in variants:
        path = ""
        if variant.kept:
            extension = "jpg" if variant.format == "jpeg" else variant.format
            path, wrote = _store(
                f"{folder}/{variant.size}.{extension}", variant.data, variant.bytes
            )
            if wrote:
                written.append(path)
        rows.append(
            Variant(
                image=image,
                size=variant.size,
                format=variant.format,
                width=variant.width,
                height=variant.height,
                bytes=variant.bytes,
                path=path,
                kept=variant.kept,
                note=variant.note[:300],
                seconds=variant.seconds,
                ssim=variant.ssim,
            )
        )
    return rows


def image_process(*, image_id: int, token: str) -> BatchImage:
    """Optimize a claimed image and settle it (done, or failed with the reason a person reads).
    Never raises for a bad image: the rest of the batch and the worker go on."""
    image = BatchImage.objects.select_related("batch").get(pk=image_id)
    batch = image.batch
    started = timezone.now()
    written: list[str] = []
    try:
        with default_storage.open(image.original_path, "rb") as stored:
            data = stored.read()
        if len(data) != image.bytes:
            raise pipeline.ImageRejected(
                f"The stored original has {len(data)} bytes instead of {image.bytes}; upload "
                "it again."
            )
        preset = batch.pipeline_preset
        result = pipeline.optimize(data, preset)
        del data
        rows = _store_variants(image, result.variants, written)
    except Exception as exc:
        if not isinstance(exc, pipeline.ImageRejected):
            logger.exception("Image %s (%s) failed", image.pk, image.original_name)
        _delete_unreferenced(set(written))
        reason, kind = _failure_reason(exc)
        return image_fail(image_id=image_id, token=token, reason=reason, kind=kind)

    now = timezone.now()
    best = pipeline.best_of(result.variants)
    with transaction.atomic():
        settled = BatchImage.objects.filter(
            pk=image_id, status=ImageStatus.WORKING, claim_token=token
        ).update(
            status=ImageStatus.DONE,
            finished_at=now,
            seconds=round((now - started).total_seconds(), 3),
            bytes_after=best.bytes if best else image.bytes,
            warnings=result.warnings,
            error="",
            failure="",
            avif_status=ImageStatus.QUEUED if batch.pipeline_preset.avif else "",
            avif_error="",
            sent_at=None,  # the AVIF work, when asked, needs a message of its own
        )
        if settled:
            Variant.objects.filter(image_id=image_id).delete()
            Variant.objects.bulk_create(rows)
            if batch.pipeline_preset.avif:
                transaction.on_commit(lambda: _send_avif(image_id))
            image.refresh_from_db()
            audit_record(
                actor=None,
                action="images.image.done",
                target=image,
                summary=f"{human_bytes(image.bytes)} → {human_bytes(image.bytes_after)} "
                f"({image.savings_percent}% saved), {len(rows)} variants",
            )
    if not settled:
        # Another worker took the image over (ours looked dead); its outputs have the same
        # names and bytes, so ours are simply not recorded a second time.
        logger.warning("Lost the claim on image %s; its result is not recorded twice", image_id)
    batch_settle(batch_id=batch.pk)
    image.refresh_from_db()
    return image


AVIF_PRIORITY = 9  # the lowest: JPEG and WebP work of every batch goes first (Redis)


def _send_avif(image_id: int) -> bool:
    """The AVIF task of a done image; marked sent as ``_enqueue`` does, and left for the
    reclaim to send when the broker does not answer."""
    try:
        app.send_task(AVIF_TASK, args=(image_id,), priority=AVIF_PRIORITY)
    except BROKER_ERRORS:
        logger.warning("The broker did not take the AVIF task of image %s", image_id, exc_info=True)
        return False
    BatchImage.objects.filter(pk=image_id).update(sent_at=timezone.now())
    return True


def image_avif_process(*, image_id: int, now: datetime | None = None) -> BatchImage | None:
    """Make the AVIF variants of a done image, as separate, lower-priority work. Claimed by a
    conditional update (queued, or working under a stale claim), so a second delivery does
    nothing; a failure is recorded on the image and leaves its JPEG and WebP variants alone."""
    now = now or timezone.now()
    claimable = Q(avif_status=ImageStatus.QUEUED) | Q(
        avif_status=ImageStatus.WORKING, avif_claimed_at__lt=now - claim_stale_after()
    )
    claimed = BatchImage.objects.filter(claimable, pk=image_id, status=ImageStatus.DONE).update(
        avif_status=ImageStatus.WORKING, avif_claimed_at=now
    )
    if not claimed:
        return None
    image = BatchImage.objects.select_related("batch").get(pk=image_id)
    written: list[str] = []
    try:
        with default_storage.open(image.original_path, "rb") as stored:
            data = stored.read()
        variants = pipeline.optimize_avif(data, image.batch.pipeline_preset)
        rows = _store_variants(image, variants, written)
    except Exception as exc:
        logger.exception("AVIF of image %s (%s) failed", image.pk, image.original_name)
        _delete_unreferenced(set(written))
        BatchImage.objects.filter(pk=image_id, avif_status=ImageStatus.WORKING).update(
            avif_status=ImageStatus.FAILED, avif_error=_failure_reason(exc)[0][:500]
        )
        image.refresh_from_db()
        audit_record(
            actor=None, action="images.image.avif_fail", target=image, summary=image.avif_error
        )
        return image
    with transaction.atomic():
        if BatchImage.objects.filter(pk=image_id, avif_status=ImageStatus.WORKING).update(
            avif_status=ImageStatus.DONE, avif_error=""
        ):
            Variant.objects.filter(image_id=image_id, format="avif").delete()
            Variant.objects.bulk_create(rows)
            image.refresh_from_db()
            audit_record(
                actor=None,
                action="images.image.avif_done",
                target=image,
                summary=f"{sum(1 for row in rows if row.kept)} AVIF variants kept",
            )
    return image


def image_fail(
    *, image_id: int, token: str, reason: str, kind: FailureKind = FailureKind.TRANSIENT
) -> BatchImage:
    """Settle a claimed image as failed, with a reason a person can act on and whether a
    retry is offered (``kind``)."""
    with transaction.atomic():
        settled = BatchImage.objects.filter(
            pk=image_id, status=ImageStatus.WORKING, claim_token=token
        ).update(status=ImageStatus.FAILED, finished_at=timezone.now(), error=reason, failure=kind)
        image = BatchImage.objects.get(pk=image_id)
        if settled:
            Variant.objects.filter(image_id=image_id).delete()
            audit_record(actor=None, action="images.image.fail", target=image, summary=reason)
    batch_settle(batch_id=image.batch_id)
    return image


def batch_settle(*, batch_id: int) -> bool:
    """The finishing step: close the batch once no image is queued or working, adding this
    run's time (first claim to now) to the batch's. Called after every image settles; the
    row lock and the conditional filter let exactly one caller close it."""
    pending = BatchImage.objects.filter(batch_id=OuterRef("pk"), status__in=PENDING)
    now = timezone.now()
    with transaction.atomic():
        batch = (
            Batch.objects.select_for_update()
            .filter(pk=batch_id, status__in=[BatchStatus.QUEUED, BatchStatus.RUNNING])
            .exclude(Exists(pending))
            .first()
        )
        closed = batch is not None
        if closed:
            run = (now - batch.run_started_at).total_seconds() if batch.run_started_at else 0.0
            batch.status = BatchStatus.FINISHED
            batch.finished_at = now
            batch.processing_seconds = round(batch.processing_seconds + max(0.0, run), 3)
            batch.run_started_at = None
            batch.save(
                update_fields=["status", "finished_at", "processing_seconds", "run_started_at"]
            )
            totals = batch_totals(batch=batch)
            audit_record(
                actor=None,
                action="images.batch.finish",
                target=batch,
                summary=f"{totals.done} done, {totals.failed} failed; "
                f"{human_bytes(totals.bytes_before)} → {human_bytes(totals.bytes_after)}",
                after={"done": totals.done, "failed": totals.failed},
            )
    return bool(closed)


def image_claims_reclaim(*, now: datetime | None = None) -> list[int]:
    """Images held by a worker that died (its heartbeat is gone, or its claim is older than any
    task may run): queue them again, or fail them once they have killed IMAGE_MAX_ATTEMPTS
    workers. A live worker's claim is left alone, however long its image takes."""
    now = now or timezone.now()
    working = list(
        BatchImage.objects.filter(
            status=ImageStatus.WORKING,
            claimed_at__lt=now - timedelta(seconds=PROCESS_HEARTBEAT_STALE_SECONDS),
        ).select_related("batch")
    )
    dead = _claims_of_dead_workers(working, now)
    requeued: list[int] = []
    for image in (image for image in working if image.pk in dead):
        with transaction.atomic():
            if image.attempts >= settings.IMAGE_MAX_ATTEMPTS:
                reason = (
                    f"The worker stopped while processing this image {image.attempts} times "
                    "(out of time or memory); it was not tried again."
                )
                if BatchImage.objects.filter(pk=image.pk, claim_token=image.claim_token).update(
                    status=ImageStatus.FAILED,
                    finished_at=now,
                    error=reason,
                    failure=FailureKind.TRANSIENT,
                ):
                    audit_record(
                        actor=None, action="images.image.fail", target=image, summary=reason
                    )
                    transaction.on_commit(lambda pk=image.batch_id: batch_settle(batch_id=pk))
                continue
            if BatchImage.objects.filter(pk=image.pk, claim_token=image.claim_token).update(
                status=ImageStatus.QUEUED, claim_token="", worker="", sent_at=None
            ):
                audit_record(
                    actor=None,
                    action="images.image.reclaim",
                    target=image,
                    summary=f"{image.worker or 'Its worker'} stopped (no heartbeat); queued again",
                )
                requeued.append(image.pk)
    if requeued:
        _enqueue(requeued)
    # AVIF work whose worker died: sent again; the task takes over the stale claim.
    stale_avif = BatchImage.objects.filter(
        avif_status=ImageStatus.WORKING, avif_claimed_at__lt=now - claim_stale_after()
    ).values_list("pk", flat=True)
    for pk in stale_avif:
        transaction.on_commit(lambda pk=pk: _send_avif(pk))
    return requeued


def image_messages_send(*, now: datetime | None = None) -> list[int]:
    """The outbox's relay, run by the periodic reclaim: send the messages of queued work that
    has none (the broker was down when its batch was made, retried or reclaimed, or it lost
    them), and again those sent so long ago (IMAGE_RESEND_SECONDS) that the message may be
    lost. A second message for the same image does nothing: the claim decides. Returns the
    images sent; none while the broker still does not answer."""
    now = now or timezone.now()
    unsent = Q(sent_at__isnull=True) | Q(
        sent_at__lt=now - timedelta(seconds=settings.IMAGE_RESEND_SECONDS)
    )
    pending_batch = Q(batch__status__in=[BatchStatus.QUEUED, BatchStatus.RUNNING])
    queued = list(
        BatchImage.objects.filter(unsent, pending_batch, status=ImageStatus.QUEUED)
        .order_by("batch_id", "position")
        .values_list("pk", flat=True)
    )
    if queued and not _enqueue(queued):
        return []
    avif = list(
        BatchImage.objects.filter(
            unsent, status=ImageStatus.DONE, avif_status=ImageStatus.QUEUED
        ).values_list("pk", flat=True)
    )
    sent_avif = [pk for pk in avif if _send_avif(pk)]
    if queued or sent_avif:
        logger.info("Sent %d image and %d AVIF tasks again", len(queued), len(sent_avif))
    return queued + sent_avif


# --- people's actions on a batch ------------------------------------------------------------------


@transaction.atomic
def batch_retry_failed(*, batch: Batch, user) -> int:
    """Queue again the images of a finished batch that failed for a reason retrying may fix
    (out of time or memory, a lost worker); a file rejected as corrupt or unsupported would
    fail the same way and is not retried. Returns how many. The retry is a new run of the
    batch: its time is added to the batch's, the wait in between is not."""
    require_perm(user, "images.upload_batch", "You may not retry image batches.")
    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    if batch.status != BatchStatus.FINISHED:
        raise ActionRefused(
            "This batch is still being processed; retry once it has finished.", status=409
        )
    failed = batch.images.filter(status=ImageStatus.FAILED)
    retryable = list(failed.exclude(failure=FailureKind.REJECTED).values_list("pk", flat=True))
    if not retryable:
        rejected = failed.count()
        if rejected:
            raise ActionRefused(
                f"The {rejected} failed image{'s' if rejected != 1 else ''} of this batch "
                f"cannot be used (corrupt or unsupported): a retry would fail again. Upload "
                "a repaired file in a new batch.",
                status=409,
            )
        raise ActionRefused("No image of this batch failed: there is nothing to retry.", status=409)
    BatchImage.objects.filter(pk__in=retryable).update(
        status=ImageStatus.QUEUED,
        error="",
        failure="",
        claim_token="",
        worker="",
        finished_at=None,
        sent_at=None,
    )
    Batch.objects.filter(pk=batch.pk).update(
        status=BatchStatus.QUEUED, finished_at=None, run_started_at=None
    )
    failed = retryable
    audit_record(
        actor=user,
        action="images.batch.retry",
        target=batch,
        summary=f"{len(failed)} failed images queued again",
    )
    transaction.on_commit(lambda: _enqueue(failed))
    return len(failed)


def batch_delete(*, batch: Batch, user) -> None:
    """Delete a settled batch, its rows and the files no other batch uses."""
    require_perm(user, "images.delete_batch", "You may not delete image batches.")
    paths: set[str] = set()
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.images.filter(status__in=PENDING).exists():
            raise ActionRefused(
                "This batch is still being processed; delete it once it has finished.",
                status=409,
            )
        paths |= set(batch.images.values_list("original_path", flat=True))
        paths |= set(
            Variant.objects.filter(image__batch=batch)
            .exclude(path="")
            .values_list("path", flat=True)
        )
        audit_record(
            actor=user,
            action="images.batch.delete",
            target=batch,
            summary=f"{batch.images_total} images and their variants",
        )
        batch.delete()
        transaction.on_commit(lambda: _delete_unreferenced(paths))
