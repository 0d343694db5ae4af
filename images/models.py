"""Image batches: presets (what to make), batches (one upload), their images and variants.

A batch is a long job: a row with a status and timestamps that the page polls. Each image is a
unit of work of its own, claimed by one worker at a time (``status`` + ``claim_token``), so a
batch spreads over every worker that consumes the queue and a worker that dies loses nothing but
the image it held, which another worker takes over once the claim is stale.
"""

import hashlib
import json
from dataclasses import asdict
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from images import pipeline

MAX_SIZES = 8
MAX_BOX = 16_384


def parse_sizes(value: str) -> tuple[int, ...]:
    """ "2048, 1024, 400" -> (2048, 1024, 400), largest first; ValidationError when malformed."""
    parts = [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]
    try:
        sizes = sorted({int(part) for part in parts}, reverse=True)
    except ValueError:
        raise ValidationError(
            f"Sizes are whole numbers of pixels separated by commas, not “{value}”."
        ) from None
    if not sizes:
        raise ValidationError("Give at least one size, e.g. 2048, 1024, 400.")
    if len(sizes) > MAX_SIZES:
        raise ValidationError(f"At most {MAX_SIZES} sizes.")
    if sizes[-1] < 16 or sizes[0] > MAX_BOX:
        raise ValidationError(f"Sizes must be between 16 and {MAX_BOX} pixels.")
    return tuple(sizes)


def _quality(default: int, help_text: str) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        default=default,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=help_text,
    )


class Preset(models.Model):
    """What to make of an upload; maps onto ``images.pipeline.Preset``. A batch keeps a copy of
    its preset's settings, so editing a preset never changes a batch already made."""

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    sizes = models.CharField(
        max_length=100,
        default="2048, 1024, 400",
        help_text="Boxes in pixels: each variant fits within size x size. Never enlarged.",
    )
    make_jpeg = models.BooleanField("JPEG", default=True)
    make_webp = models.BooleanField("WebP", default=True)
    make_avif = models.BooleanField(
        "AVIF", default=False, help_text="Several times slower than JPEG and WebP together."
    )
    jpeg_quality = _quality(82, "1-100; 82 is a good photo default.")
    webp_quality = _quality(80, "1-100; 80 is a good photo default.")
    webp_method = models.PositiveSmallIntegerField(
        default=4,
        validators=[MaxValueValidator(6)],
        help_text="For the largest size: 0 (fast) to 6 (smallest files, slowest).",
    )
    webp_method_smaller = models.PositiveSmallIntegerField(
        "WebP method below the largest size",
        default=2,
        validators=[MaxValueValidator(6)],
        help_text="For the other sizes, a small share of the bytes: 2 is much faster than 4.",
    )
    avif_quality = _quality(60, "1-100.")
    avif_speed = models.PositiveSmallIntegerField(
        default=6, validators=[MaxValueValidator(10)], help_text="0 (slowest) to 10 (fastest)."
    )
    measure_ssim = models.BooleanField(
        "measure SSIM",
        default=False,
        help_text="Score each variant against the original (costs more than the optimization).",
    )
    is_default = models.BooleanField(
        default=False, help_text="Chosen first on the upload page; one preset at most."
    )
    is_active = models.BooleanField(default=True, help_text="Offered on the upload page.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="images_preset_one_default",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(fmt for fmt, on in (("jpeg", self.make_jpeg), ("webp", self.make_webp)) if on)

    def clean(self) -> None:
        errors = {}
        try:
            self.sizes = ", ".join(str(size) for size in parse_sizes(self.sizes))
        except ValidationError as error:
            errors["sizes"] = error.messages
        if not self.formats:
            errors["make_jpeg"] = ["Choose JPEG or WebP (AVIF comes in addition to them)."]
        if errors:
            raise ValidationError(errors)

    def to_pipeline(self) -> pipeline.Preset:
        return pipeline.Preset(
            name=self.name,
            sizes=parse_sizes(self.sizes),
            formats=self.formats,
            avif=self.make_avif,
            jpeg_quality=self.jpeg_quality,
            webp_quality=self.webp_quality,
            webp_method=self.webp_method,
            webp_method_smaller=self.webp_method_smaller,
            avif_quality=self.avif_quality,
            avif_speed=self.avif_speed,
            max_pixels=settings.IMAGE_MAX_PIXELS,
            max_bytes=settings.IMAGE_MAX_UPLOAD_BYTES,
            measure_ssim=self.measure_ssim,
        )


def preset_snapshot(preset: pipeline.Preset) -> dict:
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in asdict(preset).items()
    }


def preset_from_snapshot(snapshot: dict) -> pipeline.Preset:
    return pipeline.Preset(
        **{
            key: tuple(value) if isinstance(value, list) else value
            for key, value in snapshot.items()
        }
    )


class BatchStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"


class BatchSource(models.TextChoices):
    UPLOAD = "upload", "Upload page"
    API = "api", "API"


class Batch(models.Model):
    """One upload: a long job the page polls.

    ``processing_seconds`` plus the current run's time (from ``run_started_at``) is its time."""

    name = models.CharField(max_length=200)
    preset = models.ForeignKey(Preset, on_delete=models.PROTECT, related_name="batches")
    preset_settings = models.JSONField(
        help_text="The preset's settings when the batch was made (pipeline.Preset fields)."
    )
    source = models.CharField(max_length=10, choices=BatchSource, default=BatchSource.UPLOAD)
    status = models.CharField(max_length=10, choices=BatchStatus, default=BatchStatus.QUEUED)
    images_total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="First image claimed.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Last image settled.")
    refused = models.JSONField(
        default=list,
        blank=True,
        help_text="Files of the upload that were left out: [{name, reason}].",
    )
    # A retry is a new run: the batch's time is the sum of its runs (first claim to last
    # image settled, each), never the wall time since the upload.
    run_started_at = models.DateTimeField(
        null=True, blank=True, help_text="First image claimed in the current run."
    )
    processing_seconds = models.FloatField(
        default=0, help_text="Time of the runs already settled (first claim to last image)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        permissions = [("upload_batch", "Can upload image batches and use the image API")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("images:batch_detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status == BatchStatus.FINISHED

    @property
    def pipeline_preset(self) -> pipeline.Preset:
        return preset_from_snapshot(self.preset_settings)

    @property
    def fingerprint(self) -> str:
        """Short digest of the settings: outputs are keyed by content hash and this."""
        encoded = json.dumps(self.preset_settings, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]


class ImageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    WORKING = "working", "Working"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class FailureKind(models.TextChoices):
    """Why an image failed, which decides whether a retry is offered."""

    REJECTED = "rejected", "The file cannot be used"  # corrupt, unsupported: retrying fails again
    TRANSIENT = "transient", "Processing failed"  # out of time or memory, a lost worker, storage


PENDING = (ImageStatus.QUEUED, ImageStatus.WORKING)
SETTLED = (ImageStatus.DONE, ImageStatus.FAILED)


class BatchImage(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveIntegerField()
    original_name = models.CharField(max_length=255)
    original_path = models.CharField(max_length=300, help_text="In the default storage.")
    content_hash = models.CharField(max_length=64, db_index=True, help_text="SHA-256.")
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField(help_text="As displayed (EXIF orientation applied).")
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    status = models.CharField(
        max_length=10, choices=ImageStatus, default=ImageStatus.QUEUED, db_index=True
    )
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="Who holds or held it.")
    attempts = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Processing time.")
    bytes_after = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The best variant of the largest size."
    )
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    failure = models.CharField(
        max_length=10, choices=FailureKind, blank=True, help_text="Set when it failed."
    )
    # Transactional outbox: the row is the truth, the message a nudge. Set when a message for
    # the queued image reached the broker; the periodic reclaim sends the queued images that
    # have none (the broker was down when the batch was made or retried).
    sent_at = models.DateTimeField(null=True, blank=True, help_text="Its task reached the broker.")
    # AVIF is slow: when the preset asks for it, it is made by a separate task sent at a lower
    # priority once the JPEG and WebP variants are done, so it never holds a batch up.
    avif_status = models.CharField(
        max_length=10, choices=ImageStatus, blank=True, help_text="Empty: no AVIF asked."
    )
    avif_claimed_at = models.DateTimeField(null=True, blank=True)
    avif_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["batch", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="images_image_position")
        ]

    def __str__(self) -> str:
        return self.original_name

    def get_absolute_url(self) -> str:
        return reverse("images:batch_detail", args=[self.batch_id]) + f"#image-{self.pk}"

    def claim_is_stale(self, now) -> bool:
        return self.claimed_at is not None and self.claimed_at < now - claim_stale_after()

    @property
    def savings_percent(self) -> float | None:
        if self.bytes_after is None or not self.bytes:
            return None
        return round(100 * (1 - self.bytes_after / self.bytes), 1)


def claim_stale_after() -> timedelta:
    return timedelta(seconds=settings.IMAGE_CLAIM_STALE_SECONDS)


class Variant(models.Model):
    image = models.ForeignKey(BatchImage, on_delete=models.CASCADE, related_name="variants")
    size = models.PositiveIntegerField(help_text="The preset's box.")
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    path = models.CharField(max_length=300, blank=True, help_text="Empty when not kept.")
    kept = models.BooleanField(default=True)
    note = models.CharField(max_length=300, blank=True)
    seconds = models.FloatField(default=0)
    ssim = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["image", "-size", "format"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "size", "format"], name="images_variant_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.image} {self.size} px {self.format}"

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg"}.get(self.format, self.format)

    @property
    def content_type(self) -> str:
        return f"image/{self.format}"
