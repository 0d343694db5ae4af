"""Overdue notifications: each step (response time, escalation time) an unacknowledged open
incident passes is notified once, by e-mail and an optional webhook."""

import json
import logging
import urllib.error
import urllib.request
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ops.models import Incident, IncidentNotification, NotificationStep, TimelineKind
from ops.models.incidents import OPEN_STATUSES
from ops.services.incident_rules import person_name
from portal.formatting import duration
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)


def _notification_text(incident: Incident, step: str, now: datetime) -> tuple[str, str]:
    label = NotificationStep(step).label
    due = (
        incident.response_due_at
        if step == NotificationStep.RESPONSE
        else incident.escalation_due_at
    )
    subject = f"[{incident.severity.code}] {incident.reference} unacknowledged: {label.lower()}"
    body = (
        f"{incident.reference} {incident.title}\n"
        f"Severity: {incident.severity}\n"
        f"Status: {incident.get_status_display()}\n"
        f"Detected: {timezone.localtime(incident.detected_at):%Y-%m-%d %H:%M %Z}\n"
        f"{label} at {timezone.localtime(due):%Y-%m-%d %H:%M %Z}; nobody has acknowledged it "
        f"{duration(now - incident.detected_at)} after detection.\n"
        f"Commander: {person_name(incident.commander) if incident.commander else 'none'}\n"
        f"Affected services: {incident.affected_services or '—'}\n"
    )
    return subject, body


def post_webhook(url: str, payload: dict) -> str:
    """POST JSON; returns a short outcome ("200", "error: ..."), never raises."""
    data = json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 (scheme checked in settings)
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.INCIDENT_WEBHOOK_TIMEOUT) as answer:  # noqa: S310
            return str(answer.status)
    except urllib.error.HTTPError as error:
        return f"error: HTTP {error.code}"
    except (OSError, ValueError) as error:
        return f"error: {error}"[:200]


def _send(notification: IncidentNotification, incident: Incident, now: datetime) -> None:
    subject, body = _notification_text(incident, notification.step, now)
    recipients = list(settings.INCIDENT_NOTIFY_EMAILS)
    if recipients:
        try:
            send_mail(subject, body, None, recipients)
            notification.emailed_to = ", ".join(recipients)
        except Exception as error:  # a mail server down must not stop the webhook
            logger.exception("Incident notification e-mail failed for %s", incident.reference)
            notification.email_error = str(error)[:500]
    if settings.INCIDENT_WEBHOOK_URL:
        notification.webhook_status = post_webhook(
            settings.INCIDENT_WEBHOOK_URL,
            {
                "text": f"{subject}\n{body}",
                "incident": {
                    "id": incident.pk,
                    "reference": incident.reference,
                    "title": incident.title,
                    "severity": incident.severity.code,
                    "status": incident.status,
                    "step": notification.step,
                    "detected_at": incident.detected_at.isoformat(),
                },
            },
        )
    notification.save(update_fields=["emailed_to", "email_error", "webhook_status"])


def notification_channels() -> list[str]:
    """The channels an overdue incident is notified by, as the pages name them; empty when
    none is configured (then nobody is told)."""
    channels = []
    if settings.INCIDENT_NOTIFY_EMAILS:
        channels.append(f"e-mail to {', '.join(settings.INCIDENT_NOTIFY_EMAILS)}")
    if settings.INCIDENT_WEBHOOK_URL:
        channels.append("the webhook")
    return channels


NO_CHANNEL = "no channel configured: nobody was notified"


def _outcome(notification: IncidentNotification) -> str:
    """What was done, as the timeline says it: who was told, and what failed."""
    told, failed = [], []
    if notification.emailed_to:
        told.append(f"e-mailed {notification.emailed_to}")
    if notification.email_error:
        failed.append(f"e-mail failed ({notification.email_error[:200]})")
    if notification.webhook_status.startswith("error"):
        failed.append(f"webhook failed ({notification.webhook_status})")
    elif notification.webhook_status:
        told.append(f"webhook answered {notification.webhook_status}")
    if not told:
        return "; ".join(["nobody was notified", *failed])
    return "; ".join([*told, *failed])


def incident_notifications_send(*, now: datetime | None = None) -> list[IncidentNotification]:
    """Notify each step (response time, escalation time) an unacknowledged open incident has
    passed, once: the unique (incident, step) row is claimed before anything is sent, so two
    schedulers or a retry never send a step twice."""
    now = now or timezone.now()
    candidates = (
        Incident.objects.filter(status__in=OPEN_STATUSES, acknowledged_at__isnull=True)
        .filter(Q(response_due_at__lte=now) | Q(escalation_due_at__lte=now))
        .select_related("severity", "commander")
        .prefetch_related("notifications")
        .order_by("response_due_at", "id")
    )
    sent = []
    for incident in candidates:
        done = {notification.step for notification in incident.notifications.all()}
        steps = [
            step
            for step, due in (
                (NotificationStep.RESPONSE, incident.response_due_at),
                (NotificationStep.ESCALATION, incident.escalation_due_at),
            )
            if due <= now and step not in done
        ]
        for step in steps:
            label = NotificationStep(step).label
            channels = notification_channels()
            try:
                with transaction.atomic():
                    notification = IncidentNotification.objects.create(
                        incident=incident, step=step, created_at=now
                    )
                    if not channels:
                        incident.add_entry(
                            kind=TimelineKind.NOTIFICATION,
                            text=f"{label} unacknowledged: {NO_CHANNEL}.",
                            now=now,
                        )
                    audit_record(
                        actor=None,
                        action=f"incident.notify.{step}",
                        target=incident,
                        summary="; ".join(channels) or NO_CHANNEL,
                    )
            except IntegrityError:
                continue  # another scheduler claimed this step first
            if channels:
                _send(notification, incident, now)
                # The timeline says what was done, once it is known.
                incident.add_entry(
                    kind=TimelineKind.NOTIFICATION,
                    text=f"{label} unacknowledged: {_outcome(notification)}.",
                    now=now,
                )
            sent.append(notification)
    return sent
