"""Environments, the deploy jobs that ship a version to one of them (and roll it back), and the
database backups with their verifications. Every job is a row (status, timestamps, progress,
log, error) the pages poll; the Celery tasks claim rows by conditional update."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

ENV_NAME = RegexValidator(
    r"^[A-Z_][A-Z0-9_]*$",
    "The name of an environment variable (capitals, digits and _), not the secret itself.",
)


class Colour(models.TextChoices):
    BLUE = "blue", "Blue"
    GREEN = "green", "Green"


class Environment(models.Model):
    """Somewhere a version runs: a DigitalOcean App Platform app, its health URLs and the
    variable that holds its API token (never the token)."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    app_id = models.CharField("DigitalOcean app id", max_length=100)
    health_urls = models.TextField(
        blank=True, help_text="One URL per line, checked after a deploy (e.g. /api/health)."
    )
    token_variable = models.CharField(
        max_length=100,
        default="DIGITALOCEAN_TOKEN",
        validators=[ENV_NAME],
        help_text="The environment variable holding the DigitalOcean token.",
    )
    promotion_order = models.PositiveSmallIntegerField(
        default=0, help_text="Staging 0, production 1: a version goes up this order."
    )
    requires_manager = models.BooleanField(
        default=False, help_text="Production: only a Manager deploys (or approves) here."
    )
    validate_seconds = models.PositiveIntegerField(
        default=300, help_text="How long health is watched after a deploy before it counts."
    )
    green_app_id = models.CharField(
        "Blue-green: green app id",
        max_length=100,
        blank=True,
        help_text="Blue-green: the second App Platform app (the app id above is blue). A deploy "
        "goes to the idle colour and traffic switches once it is healthy.",
    )
    router_app_id = models.CharField(
        "Blue-green: router app id",
        max_length=100,
        blank=True,
        help_text="The app holding the domain; its spec's ingress rule names the live colour "
        "(switched with apps.update).",
    )
    live_colour = models.CharField(
        max_length=5, choices=Colour.choices, default=Colour.BLUE, editable=False
    )
    services = models.ManyToManyField(
        "ops.MonitoredService",
        blank=True,
        related_name="environments",
        help_text="Checked at the deploy's faster cadence while a deploy is validated; a "
        "critical check, or a KPI of theirs turning critical, rolls it back.",
    )

    class Meta:
        ordering = ["promotion_order", "name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("ops:environment_detail", args=[self.slug])

    def clean(self):
        bad = [url for url in self.health_url_list() if not url.startswith(("http://", "https://"))]
        if bad:
            raise ValidationError(
                {"health_urls": f"Each line is one http:// or https:// URL; not {bad[0]!r}."}
            )
        if self.validate_seconds > 3600:
            raise ValidationError(
                {"validate_seconds": "Watch health for at most an hour (3600 seconds)."}
            )
        if bool(self.green_app_id) != bool(self.router_app_id):
            raise ValidationError(
                {"router_app_id": "Blue-green needs both the green app and the router app."}
            )
        if self.green_app_id and self.green_app_id in (self.app_id, self.router_app_id):
            raise ValidationError(
                {"green_app_id": "Green is a third app: not the blue app, not the router."}
            )

    @property
    def is_blue_green(self) -> bool:
        return bool(self.green_app_id and self.router_app_id)

    def colour_app_id(self, colour: str) -> str:
        return self.green_app_id if colour == Colour.GREEN else self.app_id

    @property
    def idle_colour(self) -> str:
        return Colour.BLUE if self.live_colour == Colour.GREEN else Colour.GREEN

    @property
    def live_app_id(self) -> str:
        """The app serving traffic: blue-green's live colour, or the one app."""
        return self.colour_app_id(self.live_colour) if self.is_blue_green else self.app_id

    def health_url_list(self) -> list[str]:
        return [line.strip() for line in self.health_urls.splitlines() if line.strip()]


class DeployStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting a Manager's approval"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    VALIDATING = "validating", "Validating health"
    ROLLING_BACK = "rolling_back", "Rolling back"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    ROLLED_BACK = "rolled_back", "Rolled back"


# Followed by a worker (a heartbeat says it still is).
RUNNING_DEPLOY = (DeployStatus.RUNNING, DeployStatus.VALIDATING, DeployStatus.ROLLING_BACK)
LIVE_DEPLOY = (
    DeployStatus.AWAITING_APPROVAL,
    DeployStatus.QUEUED,
    DeployStatus.RUNNING,
    DeployStatus.VALIDATING,
    DeployStatus.ROLLING_BACK,
)
DONE_DEPLOY = (
    DeployStatus.SUCCEEDED,
    DeployStatus.FAILED,
    DeployStatus.CANCELED,
    DeployStatus.ROLLED_BACK,
)


class DeployKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    ROLLBACK = "rollback", "Rollback"


class Deploy(models.Model):
    """One deploy (or chosen rollback) of one environment. At most one is live per environment
    (a unique constraint, so two clicks or two operators make one job)."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deploys")
    kind = models.CharField(max_length=10, choices=DeployKind.choices, default=DeployKind.DEPLOY)
    version = models.CharField(max_length=100)
    force_build = models.BooleanField(default=False)
    rollback_to = models.CharField(
        max_length=100, blank=True, help_text="The DigitalOcean deployment rolled back to."
    )
    app_id = models.CharField(
        max_length=100, blank=True, help_text="The app deployed (blue-green: the idle colour's)."
    )
    colour = models.CharField(max_length=5, choices=Colour.choices, blank=True)
    traffic_switched_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=DeployStatus.choices, default=DeployStatus.QUEUED, db_index=True
    )
    phase = models.CharField(max_length=20, blank=True)
    do_deployment_id = models.CharField(max_length=100, blank=True, db_index=True)
    rollback_deployment_id = models.CharField(max_length=100, blank=True)
    previous_deployment_id = models.CharField(
        max_length=100, blank=True, help_text="ACTIVE before this deploy: where a rollback goes."
    )
    pinned = models.BooleanField(default=False, help_text="A rollback pins the app until commit.")
    simulated = models.BooleanField(default=False)
    steps = models.JSONField(default=list, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    gates = models.JSONField(default=list, blank=True)
    override_reason = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    incident = models.ForeignKey(
        "ops.Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="deploys"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    active_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment"],
                condition=Q(
                    status__in=[
                        "awaiting_approval",
                        "queued",
                        "running",
                        "validating",
                        "rolling_back",
                    ]
                ),
                name="one_live_deploy_per_environment",
            )
        ]
        permissions = [
            ("start_deploy", "Can deploy to environments that do not need a Manager"),
            ("deploy_production", "Can deploy to production and override its gates"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.version} to {self.environment}"

    def get_absolute_url(self) -> str:
        return reverse("ops:deploy_detail", args=[self.pk])

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_DEPLOY

    @property
    def target_app_id(self) -> str:
        return self.app_id or self.environment.app_id

    @property
    def elapsed_seconds(self) -> float | None:
        if not self.started_at:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()

    def log_lines(self) -> list[str]:
        return self.log.splitlines()


class BackupTarget(models.Model):
    """A PostgreSQL database to back up, reached through the URL in an environment variable."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    url_variable = models.CharField(
        max_length=100,
        validators=[ENV_NAME],
        help_text="The environment variable holding the postgres:// URL.",
    )
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="backup_targets"
    )
    managed_database_id = models.CharField(
        "DigitalOcean managed database id",
        max_length=100,
        blank=True,
        help_text="When the database is a DigitalOcean managed one: its own backups are listed "
        "beside the portal's (the token of the environment above, or DIGITALOCEAN_TOKEN).",
    )
    keep_daily = models.PositiveSmallIntegerField(default=7)
    keep_weekly = models.PositiveSmallIntegerField(default=4)
    keep_monthly = models.PositiveSmallIntegerField(default=6)
    max_age_hours = models.PositiveSmallIntegerField(
        default=26, help_text="A newer backup than this is expected (Today warns otherwise)."
    )
    restore_test_target = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Restore test: the staging database this target's latest verified backup is "
        "restored into (it is overwritten).",
    )
    restore_test_days = models.PositiveSmallIntegerField(
        default=91, help_text="A restore test is due this many days after the last (quarterly)."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("ops:backup_target_detail", args=[self.slug])

    def clean(self):
        destination = self.restore_test_target
        if destination is None:
            return
        if destination.pk == self.pk or destination.url_variable == self.url_variable:
            raise ValidationError(
                {"restore_test_target": "A restore test never overwrites the database it tests."}
            )
        if destination.environment_id and destination.environment.requires_manager:
            raise ValidationError(
                {
                    "restore_test_target": f"{destination} belongs to {destination.environment}, "
                    "which needs a Manager to deploy: restore tests go to staging."
                }
            )


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Backup(models.Model):
    target = models.ForeignKey(BackupTarget, on_delete=models.PROTECT, related_name="backups")
    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    file_name = models.CharField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    server_version = models.CharField(max_length=100, blank=True)
    table_counts = models.JSONField(default=dict, blank=True)
    table_checksums = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["target"],
                condition=Q(status__in=["queued", "running"]),
                name="one_live_backup_per_target",
            )
        ]
        permissions = [("start_backup", "Can take and verify backups")]

    def __str__(self) -> str:
        return f"backup of {self.target} at {self.created_at:%Y-%m-%d %H:%M}"

    def get_absolute_url(self) -> str:
        return reverse("ops:backup_detail", args=[self.pk])

    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class BackupVerification(models.Model):
    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="verifications")
    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    scratch_database = models.CharField(max_length=100, blank=True)
    restore_seconds = models.FloatField(null=True, blank=True)
    differences = models.JSONField(default=list, blank=True)
    erasures_replayed = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="GDPR erasures replayed on the restored copy (None: no data source of the "
        "GDPR register is this database).",
    )
    erasure_rows = models.JSONField(
        default=dict, blank=True, help_text="Rows erased again per source/table."
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"verification of {self.backup}"

    @property
    def erasure_rows_total(self) -> int:
        return sum(self.erasure_rows.values())


RECOVERY_TARGET_MINUTES = (15, 30)  # the runbook's "Database rollback (15–30 minutes)"


class RestoreTest(models.Model):
    """A backup of one target restored into another (staging) database, which it overwrites:
    the runbook's quarterly "Test restore procedure (on staging)", with the recovery time."""

    source = models.ForeignKey(BackupTarget, on_delete=models.PROTECT, related_name="restore_tests")
    destination = models.ForeignKey(BackupTarget, on_delete=models.PROTECT, related_name="+")
    backup = models.ForeignKey(Backup, on_delete=models.PROTECT, related_name="restore_tests")
    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    restore_seconds = models.FloatField(
        null=True, blank=True, help_text="Recovery time: drop, create, restore, check."
    )
    table_counts = models.JSONField(default=dict, blank=True)
    differences = models.JSONField(default=list, blank=True)
    erasures_replayed = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["destination"],
                condition=Q(status__in=["queued", "running"]),
                name="one_live_restore_per_destination",
            )
        ]

    def __str__(self) -> str:
        return f"restore test of {self.source} into {self.destination}"

    @property
    def within_target(self) -> bool | None:
        if self.restore_seconds is None:
            return None
        return self.restore_seconds <= RECOVERY_TARGET_MINUTES[1] * 60
