"""The public status page: components customers understand (made of monitored services,
grouped and ordered), overrides of their derived state for the length of an incident, and
the public updates of an incident (separate from its internal timeline)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from ops.models.alerts import SendStatus


class ComponentState(models.TextChoices):
    # Statuspage's vocabulary, so aggregators read the JSON feed as they read theirs.
    OPERATIONAL = "operational", "Operational"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"
    DEGRADED = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"


# Worst first wins when states combine.
STATE_RANK = {
    ComponentState.OPERATIONAL: 0,
    ComponentState.UNDER_MAINTENANCE: 1,
    ComponentState.DEGRADED: 2,
    ComponentState.PARTIAL_OUTAGE: 3,
    ComponentState.MAJOR_OUTAGE: 4,
}


class ComponentGroup(models.Model):
    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name", "id"]

    def __str__(self) -> str:
        return self.name


class StatusComponent(models.Model):
    """Something a customer understands (Checkout, Image delivery, API), made of services."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=110, unique=True)
    group = models.ForeignKey(
        ComponentGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="components",
    )
    position = models.PositiveSmallIntegerField(default=0)
    description = models.CharField(
        max_length=300, blank=True, help_text="Public: shown to customers on the status page."
    )
    services = models.ManyToManyField(
        "ops.MonitoredService", blank=True, related_name="status_components"
    )
    is_public = models.BooleanField(default=True, help_text="Shown on the status page.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "name", "id"]
        permissions = [("publish_statuscomponent", "Can override component states")]

    def __str__(self) -> str:
        return self.name


class ComponentOverride(models.Model):
    """A person's word on a component's state while an incident is open, recorded: it stops
    counting once the incident is resolved or someone ends it."""

    component = models.ForeignKey(
        StatusComponent, on_delete=models.CASCADE, related_name="overrides"
    )
    incident = models.ForeignKey(
        "ops.Incident", on_delete=models.CASCADE, related_name="component_overrides"
    )
    state = models.CharField(max_length=24, choices=ComponentState)
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.component}: {self.get_state_display()}"


class PublicStatus(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"


class PublicUpdate(models.Model):
    """One public update of an incident: what customers read. The public title is the one of
    the latest update; nothing here comes from the internal timeline."""

    incident = models.ForeignKey(
        "ops.Incident", on_delete=models.CASCADE, related_name="public_updates"
    )
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=PublicStatus)
    message = models.TextField()
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    posted_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-posted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.title}: {self.get_status_display()}"


# Subscribers: e-mail about public updates and maintenance, with double opt-in.


class StatusSubscriber(models.Model):
    """Someone who asked for e-mail about the status page. The address is personal data: a
    GDPR source of the portal's own (exported on access, deleted on erasure), and deleted on
    unsubscribing. Unconfirmed rows are deleted once their confirmation link has expired."""

    email = models.EmailField(max_length=254, unique=True, help_text="Stored in lower case.")
    all_components = models.BooleanField(
        default=True, help_text="Told about every component (else only the chosen ones)."
    )
    components = models.ManyToManyField(StatusComponent, blank=True, related_name="subscribers")
    # In every message's unsubscribe link (random, never shown in a page).
    key = models.CharField(max_length=64, unique=True, editable=False)
    # In the confirmation link; replaced once a link is used, so each link works once.
    confirm_nonce = models.CharField(max_length=32, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        # Not the address: this is what the audit log keeps of a subscriber, for good.
        return f"Subscriber #{self.pk}"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class StatusNotice(models.Model):
    """One thing subscribers are told (a public update, a maintenance announcement). The row
    is the truth: the deliveries are made from it by a task, and a periodic task finds any a
    lost message left undone."""

    key = models.CharField(
        max_length=100, unique=True, help_text="What it tells, e.g. update:12, maintenance:3:start."
    )
    subject = models.CharField(max_length=250)
    body = models.TextField()
    components = models.ManyToManyField(
        StatusComponent,
        blank=True,
        related_name="+",
        help_text="Those it is about; subscribers to every component are told in any case.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    fanned_out_at = models.DateTimeField(
        null=True, blank=True, help_text="When its deliveries were made."
    )
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.subject


class DeliveryKind(models.TextChoices):
    CONFIRM = "confirm", "Confirmation"
    NOTICE = "notice", "Notice"


class StatusDelivery(models.Model):
    """One e-mail to one subscriber (a confirmation or a notice): claimed before it is sent,
    retried with backoff, recorded. Deleted with its subscriber."""

    subscriber = models.ForeignKey(
        StatusSubscriber, on_delete=models.CASCADE, related_name="deliveries"
    )
    notice = models.ForeignKey(
        StatusNotice, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    kind = models.CharField(max_length=8, choices=DeliveryKind, default=DeliveryKind.NOTICE)
    # A confirmation's requested components: a list of ids, or null for all of them.
    payload = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=SendStatus, default=SendStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "status deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["notice", "subscriber"],
                condition=models.Q(notice__isnull=False),
                name="status_delivery_once_per_notice",
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.subscriber_id} ({self.status})"
