"""The public status page: components customers understand (made of monitored services,
grouped and ordered), overrides of their derived state for the length of an incident, and
the public updates of an incident (separate from its internal timeline)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


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
