"""Alerts: rules over stored results and KPIs, the alerts they raise, the channels that carry
them (Apprise URLs), on-call schedules, escalation policies, every send, silences and the
vendors to call (the runbooks' escalation matrix)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from ops.models.health import KpiMetric

MAX_FOR_MINUTES = 24 * 60


class AlertSource(models.TextChoices):
    ERROR_RATE = "error_rate", "Error rate of checks (%)"
    LATENCY_P95 = "latency_p95", "P95 response time (ms)"
    SERVICE_DOWN = "service_down", "Service critical (1) or not (0)"
    LOGIN_FAILURES = "login_failures", "Failed sign-ins in the window"
    KPI = "kpi", "A KPI's current value"


PERCENT_METRICS = {
    KpiMetric.AVAILABILITY,
    KpiMetric.ERROR_RATE,
    KpiMetric.IMAGE_SUCCESS,
    KpiMetric.CACHE_HIT_RATE,
    KpiMetric.CPU,
    KpiMetric.MEMORY,
    KpiMetric.DISK,
}
# What a value of each source can be; a threshold outside it could never be crossed.
SOURCE_RANGES: dict[str, tuple[float, float, str]] = {
    AlertSource.ERROR_RATE: (0, 100, "%"),
    AlertSource.LATENCY_P95: (0, 600_000, "ms"),
    AlertSource.SERVICE_DOWN: (0, 1, ""),
    AlertSource.LOGIN_FAILURES: (0, 1_000_000, "sign-ins"),
}


def value_range(source: str, kpi_metric: str | None) -> tuple[float, float, str]:
    if source == AlertSource.KPI:
        if kpi_metric in PERCENT_METRICS:
            return (0, 100, "%")
        if kpi_metric == KpiMetric.LATENCY_P95:
            return SOURCE_RANGES[AlertSource.LATENCY_P95]
        return (0, 10_000_000, "")
    return SOURCE_RANGES[source]


class Comparison(models.TextChoices):
    ABOVE = "above", "above"
    BELOW = "below", "below"


class AlertSeverity(models.TextChoices):
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class NotificationChannel(models.Model):
    """Where a message goes, as an Apprise URL: by the name of the environment variable that
    holds it, or stored in ``url_secret`` (never shown back). A channel with an owner is that
    person's own (used when a step notifies them)."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_channels",
    )
    url_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="The environment variable that holds the Apprise URL (e.g. ALERTS_SLACK_URL).",
    )
    url_secret = models.CharField(max_length=1000, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def where(self) -> str:
        """What a page may show: the variable's name, never a stored URL."""
        return f"${self.url_env}" if self.url_env else "stored URL (hidden)"


class OnCallSchedule(models.Model):
    class Handoff(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    name = models.CharField(max_length=100, unique=True)
    role = models.CharField(max_length=100, blank=True, help_text="e.g. Operations engineer.")
    time_zone = models.CharField(max_length=64, default="UTC")
    handoff = models.CharField(max_length=8, choices=Handoff, default=Handoff.WEEKLY)
    handoff_time = models.TimeField(default=time(9, 0))
    handoff_weekday = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(6)], help_text="0 Monday … 6 Sunday (weekly)."
    )
    starts_on = models.DateField(help_text="The first hand-off: the first person's turn.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"time_zone": f"Unknown time zone “{self.time_zone}”."}) from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def _period(self) -> int:
        return 7 if self.handoff == self.Handoff.WEEKLY else 1

    def _first_day(self) -> date:
        if self.handoff == self.Handoff.DAILY:
            return self.starts_on
        return self.starts_on + timedelta(
            days=(self.handoff_weekday - self.starts_on.weekday()) % 7
        )

    def turn_at(self, when: datetime) -> tuple[int, datetime, datetime]:
        """The turn number at ``when`` with its start and end. Counted in the schedule's local
        calendar (days, not hours), so a hand-off stays at its local time across DST."""
        local = when.astimezone(self.zone)
        first = self._first_day()
        day = local.date()
        if local.time().replace(tzinfo=None) < self.handoff_time:
            day -= timedelta(days=1)
        turn = (day - first).days // self._period()
        return turn, self.handoff_at(turn), self.handoff_at(turn + 1)

    def handoff_at(self, turn: int) -> datetime:
        day = self._first_day() + timedelta(days=turn * self._period())
        return datetime.combine(day, self.handoff_time, tzinfo=self.zone)


class RotationMember(models.Model):
    schedule = models.ForeignKey(OnCallSchedule, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["schedule", "position", "id"]

    def __str__(self) -> str:
        return f"{self.schedule}: {self.user}"


class OnCallOverride(models.Model):
    """Someone else holds the schedule from ``starts_at`` to ``ends_at`` (a swap, a holiday)."""

    schedule = models.ForeignKey(OnCallSchedule, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["starts_at"]

    def __str__(self) -> str:
        return f"{self.schedule}: {self.user} from {self.starts_at:%Y-%m-%d %H:%M}"

    def clean(self):
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The override must end after it starts."})


class EscalationPolicy(models.Model):
    """Ordered steps, each ``after_minutes`` from the start of a round; rounds restart every
    ``repeat_every_minutes`` up to ``repeat_times`` more times, until acknowledged."""

    name = models.CharField(max_length=100, unique=True)
    repeat_every_minutes = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_FOR_MINUTES)],
        help_text="A new round starts this many minutes after the previous one.",
    )
    repeat_times = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(10)], help_text="Extra rounds (0: one round)."
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"

    def __str__(self) -> str:
        return self.name


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=0)
    after_minutes = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(MAX_FOR_MINUTES)]
    )
    label = models.CharField(max_length=100, blank=True, help_text="e.g. Engineering lead.")
    schedule = models.ForeignKey(
        OnCallSchedule, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    channel = models.ForeignKey(
        NotificationChannel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["policy", "after_minutes", "position", "id"]

    def __str__(self) -> str:
        return f"+{self.after_minutes} min: {self.label or self.target_text}"

    @property
    def target_text(self) -> str:
        if self.schedule_id:
            return f"on-call of {self.schedule}"
        if self.user_id:
            return self.user.get_username()
        return str(self.channel) if self.channel_id else "nobody"


class AlertRule(models.Model):
    name = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=AlertSource)
    kpi = models.ForeignKey(
        "ops.Kpi", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )
    service = models.ForeignKey(
        "ops.MonitoredService",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="Empty: the worst of all active services.",
    )
    comparison = models.CharField(max_length=8, choices=Comparison, default=Comparison.ABOVE)
    threshold = models.FloatField()
    window_minutes = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_FOR_MINUTES)],
        help_text="The value is measured over the results of this many minutes.",
    )
    for_minutes = models.PositiveIntegerField(
        default=0,
        help_text="Fires once the condition has held this long; resolves once it has not.",
    )
    severity = models.CharField(max_length=8, choices=AlertSeverity)
    action = models.CharField(max_length=200, blank=True, help_text="e.g. Scale up.")
    playbook = models.ForeignKey(
        "ops.ChecklistTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    policy = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="rules"
    )
    is_active = models.BooleanField(default=True)
    # Evaluation state, written by the evaluation task only.
    pending_since = models.DateTimeField(null=True, blank=True)
    clear_since = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-severity", "name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def condition_text(self) -> str:
        unit = value_range(self.source, self.kpi.metric if self.kpi_id else None)[2]
        unit = unit if unit in {"%", "ms", ""} else f" {unit}"
        held = f" for {self.for_minutes} min" if self.for_minutes else ""
        what = self.kpi.name if self.kpi_id else self.get_source_display()
        return f"{what} {self.comparison} {self.threshold:g}{unit}{held}"

    def breached(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.comparison == Comparison.ABOVE:
            return value > self.threshold
        return value < self.threshold

    def clean(self):
        errors: dict[str, str] = {}
        if self.source == AlertSource.KPI and not self.kpi_id:
            errors["kpi"] = "Choose the KPI this rule watches."
        if self.for_minutes is not None and self.for_minutes > MAX_FOR_MINUTES:
            errors["for_minutes"] = (
                f"At most 24 hours ({MAX_FOR_MINUTES} minutes): results are kept for two days."
            )
        if self.threshold is not None and self.source and "kpi" not in errors:
            metric = self.kpi.metric if self.kpi_id else None
            low, high, unit = value_range(self.source, metric)
            if not low <= self.threshold <= high:
                errors["threshold"] = (
                    f"Out of range: this value is between {low:g} and {high:g}{unit}."
                )
        if errors:
            raise ValidationError(errors)


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """What a rule raised, or (no rule) an incident being escalated by its severity's policy."""

    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    title = models.CharField(max_length=250, blank=True, help_text="Without a rule.")
    service = models.ForeignKey(
        "ops.MonitoredService", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    severity = models.CharField(max_length=8, choices=AlertSeverity)
    status = models.CharField(max_length=16, choices=AlertStatus, default=AlertStatus.FIRING)
    fired_value = models.FloatField(null=True)
    last_value = models.FloatField(null=True)
    evidence = models.JSONField(default=dict, blank=True)
    pending_since = models.DateTimeField()
    fired_at = models.DateTimeField(db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    silenced = models.ForeignKey(
        "ops.Silence", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    incident = models.ForeignKey(
        "ops.Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    # Escalation: the next step to notify (index into the policy's steps) and the round.
    policy = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    next_step = models.PositiveIntegerField(default=0)
    round = models.PositiveIntegerField(default=0)
    next_step_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"],
                condition=~Q(status="resolved"),
                name="alert_one_open_per_rule",
            )
        ]
        permissions = [("acknowledge_alert", "Can acknowledge alerts")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("ops:alert_list") + f"#alert-{self.pk}"

    @property
    def name(self) -> str:
        return self.rule.name if self.rule_id else self.title

    @property
    def condition(self) -> str:
        return self.rule.condition_text if self.rule_id else "incident not acknowledged"


class SendStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AlertSend(models.Model):
    """One message to one channel: recorded, retried with backoff, never blocking another."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="sends")
    channel = models.ForeignKey(
        NotificationChannel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sends",
        help_text="Empty: an e-mail to the recipient through the portal's mail server.",
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    step_label = models.CharField(max_length=150, blank=True)
    title = models.CharField(max_length=250)
    body = models.TextField()
    status = models.CharField(max_length=8, choices=SendStatus, default=SendStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    link_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.title} → {self.channel or self.recipient} ({self.status})"


class Silence(models.Model):
    """No notification for a service (or a rule, or everything) from ``starts_at`` to
    ``ends_at``: alerts still show, under Silenced."""

    service = models.ForeignKey(
        "ops.MonitoredService", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200)
    key = models.CharField(
        max_length=100,
        blank=True,
        db_index=True,
        help_text="Set when another feature made it, e.g. maintenance:42 for a window.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return self.reason

    def clean(self):
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The silence must end after it starts."})

    def covers(self, rule: AlertRule, at: datetime) -> bool:
        if not self.starts_at <= at < self.ends_at:
            return False
        if self.rule_id and self.rule_id != rule.pk:
            return False
        return not (self.service_id and self.service_id != rule.service_id)


class VendorContact(models.Model):
    """A row of the escalation matrix: who to call about a part of the stack."""

    area = models.CharField(max_length=100, help_text="e.g. Database, Hosting, Payments, AI.")
    vendor = models.CharField(max_length=100)
    contact = models.CharField(max_length=200, help_text="An address, a URL or “Dashboard”.")
    method = models.CharField(max_length=100, blank=True)
    plan = models.CharField(max_length=100, blank=True, help_text="Support plan, e.g. Pro plan.")
    services = models.ManyToManyField(
        "ops.MonitoredService", blank=True, related_name="vendor_contacts"
    )

    class Meta:
        ordering = ["area", "vendor"]

    def __str__(self) -> str:
        return f"{self.area}: {self.vendor}"
