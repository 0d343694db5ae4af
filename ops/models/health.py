"""Monitored services, their check results (raw and hourly roll-ups) and KPIs."""

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from portal.secrets import UnresolvedSecret, env_reference, resolve_env, url_has_secret

STALE_INTERVALS = 3
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000)


def latency_bucket(latency_ms: float) -> str:
    """The histogram bucket of a latency: the smallest upper bound it fits under."""
    for bound in LATENCY_BUCKETS_MS:
        if latency_ms <= bound:
            return str(bound)
    return "inf"


class ServiceKind(models.TextChoices):
    HTTP = "http", "HTTP(S) endpoint"
    TLS = "tls", "TLS certificate"
    TCP = "tcp", "TCP port"
    POSTGRES = "postgres", "PostgreSQL"
    REDIS = "redis", "Redis"
    CELERY = "celery", "Celery workers and queues"
    DO_APP = "do_app", "DigitalOcean App Platform app"


class CheckState(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"
    UNKNOWN = "unknown", "Unknown"


# Worst first: a roll-up or a panel shows the worst state it has seen.
STATE_RANK = {
    CheckState.CRITICAL: 3,
    CheckState.WARNING: 2,
    CheckState.UNKNOWN: 1,
    CheckState.OK: 0,
}

TARGET_HELP = (
    "HTTP: the URL. TLS and TCP: host:port. PostgreSQL: a connection URL "
    "(postgres://user@host:5432/db). Redis: redis://host:6379/0. Celery: the queue names to "
    "measure, comma-separated (empty: the default queue). DigitalOcean: the app id. "
    "A target with a password or token is given as env:NAME, the environment variable that "
    "holds it (env:DATABASE_URL), read when the check runs."
)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValidationError("Give host:port, e.g. example.com:443.")
    try:
        number = int(port)
    except ValueError:
        raise ValidationError(f"The port “{port}” is not a number.") from None
    if not 1 <= number <= 65535:
        raise ValidationError(f"The port {number} is out of range (1-65535).")
    host = host.strip("[]")
    if not host:
        raise ValidationError("The host is missing.")
    return host, number


class MonitoredService(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=110, unique=True)
    kind = models.CharField(max_length=16, choices=ServiceKind)
    target = models.CharField(max_length=500, blank=True, help_text=TARGET_HELP)
    is_active = models.BooleanField(default=True)
    interval_seconds = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(5), MaxValueValidator(86_400)]
    )
    timeout_seconds = models.FloatField(
        default=5.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(60)],
        help_text="A check that takes longer is critical: “timed out”.",
    )
    latency_warning_ms = models.PositiveIntegerField(default=1000)
    latency_critical_ms = models.PositiveIntegerField(default=2000)
    expected_status = models.PositiveSmallIntegerField(
        default=200, validators=[MinValueValidator(100), MaxValueValidator(599)]
    )
    body_contains = models.CharField(max_length=200, blank=True)
    json_field = models.CharField(
        max_length=100, blank=True, help_text="Dotted path in a JSON answer, e.g. status."
    )
    json_value = models.CharField(max_length=200, blank=True)
    days_warning = models.PositiveIntegerField(
        default=21, help_text="TLS: warn when the certificate expires within this many days."
    )
    days_critical = models.PositiveIntegerField(default=7)
    queue_warning = models.PositiveIntegerField(default=50, help_text="Celery: queued tasks.")
    queue_critical = models.PositiveIntegerField(default=100)
    # The latest result, kept here so a panel of 50 tiles reads one row a service.
    state = models.CharField(max_length=16, choices=CheckState, default=CheckState.UNKNOWN)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_detail = models.CharField(max_length=500, blank=True)
    last_metrics = models.JSONField(default=dict, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        permissions = [
            ("view_health", "Can see health panels and KPIs"),
            ("pause_monitoredservice", "Can pause and resume monitored services"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.target = self.target.strip()
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("ops:service_detail", args=[self.slug])

    def clean(self):
        errors: dict[str, list[str]] = {}

        def add(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        target = self.target.strip()
        if env_reference(target) is not None:
            # Checked with the value the workers will read (the portal's one environment).
            try:
                target = resolve_env(target)
            except UnresolvedSecret as error:
                add("target", f"{str(error)[0].upper()}{str(error)[1:]}.")
                raise ValidationError(errors) from None
        elif url_has_secret(target):
            add(
                "target",
                "Keep passwords and tokens out of the target: put this URL in an environment "
                "variable and enter env:NAME (for example env:DATABASE_URL).",
            )
        if self.kind == ServiceKind.HTTP:
            parts = urlsplit(target)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                add("target", "Enter a full http:// or https:// URL.")
            else:
                try:
                    parts.port  # noqa: B018 - raises on a malformed port
                except ValueError:
                    add("target", "The URL's port is out of range or not a number.")
        elif self.kind in {ServiceKind.TLS, ServiceKind.TCP}:
            try:
                _host_port(target)
            except ValidationError as error:
                add("target", error.messages[0])
        elif self.kind in {ServiceKind.POSTGRES, ServiceKind.REDIS}:
            schemes = (
                {"postgres", "postgresql"}
                if self.kind == ServiceKind.POSTGRES
                else {
                    "redis",
                    "rediss",
                }
            )
            parts = urlsplit(target)
            if parts.scheme not in schemes or not parts.hostname:
                add("target", f"Enter a URL starting with {sorted(schemes)[0]}://.")
        elif self.kind == ServiceKind.DO_APP and not target:
            add("target", "Enter the app's id.")
        if self.latency_warning_ms >= self.latency_critical_ms:
            add("latency_warning_ms", "The warning latency must be below the critical one.")
        if self.days_warning <= self.days_critical:
            add("days_warning", "Warn earlier (more days left) than the critical level.")
        if self.queue_warning >= self.queue_critical:
            add("queue_warning", "The warning queue length must be below the critical one.")
        if (
            self.timeout_seconds is not None
            and self.interval_seconds is not None
            and self.timeout_seconds >= self.interval_seconds
        ):
            add("timeout_seconds", "The timeout must be shorter than the interval.")
        if self.json_value and not self.json_field:
            add("json_field", "Name the JSON field the value is compared with.")
        if errors:
            raise ValidationError(errors)

    @property
    def host_port(self) -> tuple[str, int]:
        return _host_port(self.target)

    def is_stale(self, now: datetime | None = None) -> bool:
        """No result for three intervals: beat or the workers are down. Never shown green."""
        if self.last_checked_at is None:
            return True
        age = (now or timezone.now()) - self.last_checked_at
        return age > timedelta(seconds=STALE_INTERVALS * self.interval_seconds)

    def shown_state(self, now: datetime | None = None) -> str:
        return "stale" if self.is_active and self.is_stale(now) else self.state


class CheckResult(models.Model):
    service = models.ForeignKey(MonitoredService, on_delete=models.CASCADE, related_name="results")
    checked_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=CheckState)
    latency_ms = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["service", "checked_at"])]

    def __str__(self) -> str:
        return f"{self.service_id} {self.state} at {self.checked_at:%H:%M:%S}"


class CheckRollup(models.Model):
    """One hour of a service's results. Written as results arrive, so uptime over 24 hours,
    7 days and 30 days reads at most 720 rows a service; raw results are pruned after two days."""

    service = models.ForeignKey(MonitoredService, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField()
    checks = models.PositiveIntegerField(default=0)
    up = models.PositiveIntegerField(default=0, help_text="Results that were ok or warning.")
    critical = models.PositiveIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0)
    latency_count = models.PositiveIntegerField(default=0)
    latency_max_ms = models.FloatField(null=True, blank=True)
    # Counts per latency bucket ("le" upper bound in ms, as Prometheus histograms do), so a P95
    # over any window adds up roll-ups instead of reading every raw result.
    latency_buckets = models.JSONField(default=dict, blank=True)
    worst_state = models.CharField(max_length=16, choices=CheckState, default=CheckState.OK)

    class Meta:
        ordering = ["service", "hour"]
        constraints = [
            models.UniqueConstraint(fields=["service", "hour"], name="check_rollup_one_per_hour")
        ]

    def __str__(self) -> str:
        return f"{self.service_id} {self.hour:%Y-%m-%d %H}:00"


class KpiMetric(models.TextChoices):
    AVAILABILITY = "availability", "Availability (%)"
    LATENCY_P95 = "latency_p95", "P95 response time (ms)"
    ERROR_RATE = "error_rate", "Error rate (% of checks failing)"
    IMAGE_SUCCESS = "image_success", "Image processing success (%)"
    CACHE_HIT_RATE = "cache_hit_rate", "Cache hit rate (%)"
    QUEUE_SIZE = "queue_size", "Queue size (tasks)"
    CPU = "cpu", "CPU use (%)"
    MEMORY = "memory", "Memory use (%)"
    DISK = "disk", "Disk use (%)"
    BACKUP_AGE = "backup_age", "Hours since the newest good backup (worst database)"
    BACKUP_VERIFIED_AGE = "backup_verified_age", "Hours since the newest verified backup"
    RESTORE_TEST_AGE = "restore_test_age", "Days since the last restore test on staging"


HIGHER_IS_BETTER = {KpiMetric.AVAILABILITY, KpiMetric.IMAGE_SUCCESS, KpiMetric.CACHE_HIT_RATE}


class Kpi(models.Model):
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=32, choices=KpiMetric)
    service = models.ForeignKey(
        MonitoredService,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="kpis",
        help_text="The service it is measured on; empty: all services that report it.",
    )
    target = models.FloatField()
    warning = models.FloatField()
    critical = models.FloatField()
    window_hours = models.PositiveIntegerField(
        default=24, validators=[MinValueValidator(1), MaxValueValidator(24 * 30)]
    )
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = "KPI"

    def __str__(self) -> str:
        return self.name

    @property
    def higher_is_better(self) -> bool:
        return self.metric in HIGHER_IS_BETTER

    def clean(self):
        if None in (self.target, self.warning, self.critical):
            return
        if self.higher_is_better:
            if not self.critical <= self.warning <= self.target:
                raise ValidationError(
                    "Higher is better here: critical ≤ warning ≤ target "
                    f"(now {self.critical} / {self.warning} / {self.target})."
                )
        elif not self.target <= self.warning <= self.critical:
            raise ValidationError(
                "Lower is better here: target ≤ warning ≤ critical "
                f"(now {self.target} / {self.warning} / {self.critical})."
            )

    def state_of(self, value: float | None) -> str:
        if value is None:
            return CheckState.UNKNOWN
        if self.higher_is_better:
            if value < self.critical:
                return CheckState.CRITICAL
            return CheckState.WARNING if value < self.warning else CheckState.OK
        if value > self.critical:
            return CheckState.CRITICAL
        return CheckState.WARNING if value > self.warning else CheckState.OK
