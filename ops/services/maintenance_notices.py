"""Announcements of maintenance windows: T-72 h, T-24 h, T-1 h (per window), start and end, by
e-mail and the webhook as incident notifications are. Each notice is a unique row claimed
before anything is sent, so two beats or a restart never send it twice; each channel keeps
its own state, and a failed one is retried by the next scan (up to MAX_NOTICE_ATTEMPTS)."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from ops.models.maintenance import (
    LIVE_STATUSES,
    MAX_NOTICE_ATTEMPTS,
    NoticeChannelState,
    OccurrenceStatus,
    WindowNotice,
    WindowOccurrence,
)
from ops.services.incident_notifications import post_webhook
from portal.formatting import duration
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)
# An end notice is not sent for a window that ended longer ago (the scheduler was down).
LATE_END = timedelta(hours=6)
ORPHANED_AFTER = timedelta(minutes=2)


def _due_kinds(row: WindowOccurrence, now: datetime) -> tuple[str | None, list[str]]:
    """(the notice to send now, the earlier announcements it makes unnecessary)."""
    if row.status == OccurrenceStatus.CANCELLED:
        return None, []
    if row.starts_at <= now < row.ends_at and row.status in LIVE_STATUSES:
        return "start", []
    if row.ends_at <= now < row.ends_at + LATE_END and row.status != OccurrenceStatus.CANCELLED:
        return "end", []
    if now >= row.starts_at:
        return None, []
    due = sorted(
        int(hours)
        for hours in row.window.notice_hours or []
        if row.starts_at - timedelta(hours=int(hours)) <= now
    )
    if not due:
        return None, []
    # Scheduled late (or the beat was down): the nearest announcement only, not three at once.
    return f"before:{due[0]}", [f"before:{hours}" for hours in due[1:]]


def _text(notice: WindowNotice) -> tuple[str, str]:
    row = notice.occurrence
    window = row.window
    tz = window.tz
    starts, ends = row.starts_at.astimezone(tz), row.ends_at.astimezone(tz)
    services = ", ".join(service.name for service in window.services.all()) or "none listed"
    prefix = "Emergency maintenance" if window.is_emergency else "Planned maintenance"
    what = {
        "start": "has started",
        "end": "has ended",
    }.get(notice.kind, f"in {notice.kind.split(':', 1)[-1]} hours")
    subject = f"[{prefix}] {window.title} {what}"
    body = (
        f"{window.title}\n"
        f"When: {starts:%a %d %b %Y %H:%M} to {ends:%H:%M %Z} ({window.time_zone}), "
        f"{duration(row.ends_at - row.starts_at)}\n"
        f"Affected services: {services}\n"
        f"Impact: {window.get_impact_display()}\n"
        f"Rollback plan: {window.rollback_plan or '—'}\n"
        f"{window.description}\n"
    )
    return subject, body


def _deliver(notice: WindowNotice) -> None:
    """Send each channel still pending or failed; a channel is claimed by a conditional update
    of its attempt count, so a concurrent retry never sends it twice."""
    subject, body = _text(notice)
    recipients = list(settings.INCIDENT_NOTIFY_EMAILS)
    if notice.email_state in (NoticeChannelState.PENDING, NoticeChannelState.FAILED):
        if not recipients:
            WindowNotice.objects.filter(pk=notice.pk).update(email_state=NoticeChannelState.SKIPPED)
        elif WindowNotice.objects.filter(pk=notice.pk, email_attempts=notice.email_attempts).update(
            email_attempts=F("email_attempts") + 1
        ):
            try:
                send_mail(subject, body, None, recipients)
                fields = {
                    "email_state": NoticeChannelState.SENT,
                    "emailed_to": ", ".join(recipients)[:1000],
                    "email_error": "",
                }
            except Exception as error:  # a mail server down must not stop the webhook
                logger.exception("Maintenance notice e-mail failed (%s)", notice)
                fields = {"email_state": NoticeChannelState.FAILED, "email_error": str(error)[:500]}
            WindowNotice.objects.filter(pk=notice.pk).update(**fields)
    if notice.webhook_state in (NoticeChannelState.PENDING, NoticeChannelState.FAILED):
        if not settings.INCIDENT_WEBHOOK_URL:
            WindowNotice.objects.filter(pk=notice.pk).update(
                webhook_state=NoticeChannelState.SKIPPED
            )
        elif WindowNotice.objects.filter(
            pk=notice.pk, webhook_attempts=notice.webhook_attempts
        ).update(webhook_attempts=F("webhook_attempts") + 1):
            row = notice.occurrence
            outcome = post_webhook(
                settings.INCIDENT_WEBHOOK_URL,
                {
                    "text": f"{subject}\n{body}",
                    "maintenance": {
                        "window": row.window_id,
                        "title": row.window.title,
                        "notice": notice.kind,
                        "starts_at": row.starts_at.isoformat(),
                        "ends_at": row.ends_at.isoformat(),
                        "services": [service.slug for service in row.window.services.all()],
                        "impact": row.window.impact,
                    },
                },
            )
            state = (
                NoticeChannelState.FAILED
                if outcome.startswith("error")
                else NoticeChannelState.SENT
            )
            WindowNotice.objects.filter(pk=notice.pk).update(
                webhook_state=state, webhook_status=outcome[:200]
            )


def maintenance_notices_send(*, now: datetime | None = None) -> list[WindowNotice]:
    """Claim and send the notices due now, then retry the channels that failed."""
    now = now or timezone.now()
    rows = (
        WindowOccurrence.objects.filter(
            ends_at__gt=now - LATE_END,
            starts_at__lte=now + timedelta(days=31),
            window__is_cancelled=False,
        )
        .exclude(status=OccurrenceStatus.CANCELLED)
        .select_related("window")
        .prefetch_related("window__services", "notices")
    )
    sent = []
    for row in rows:
        kind, skipped = _due_kinds(row, now)
        known = {notice.kind for notice in row.notices.all()}
        if kind is None or kind in known:
            continue
        try:
            with transaction.atomic():
                notice = WindowNotice.objects.create(occurrence=row, kind=kind, created_at=now)
                for earlier in skipped:
                    if earlier not in known:
                        WindowNotice.objects.get_or_create(
                            occurrence=row,
                            kind=earlier,
                            defaults={
                                "created_at": now,
                                "email_state": NoticeChannelState.SKIPPED,
                                "webhook_state": NoticeChannelState.SKIPPED,
                            },
                        )
                if kind.startswith("before:") and row.status == OccurrenceStatus.SCHEDULED:
                    WindowOccurrence.objects.filter(
                        pk=row.pk, status=OccurrenceStatus.SCHEDULED
                    ).update(status=OccurrenceStatus.ANNOUNCED)
                audit_record(
                    actor=None,
                    action=f"maintenance.notice.{kind.split(':')[0]}",
                    target=row,
                    summary=notice.label,
                )
        except IntegrityError:
            continue  # another scheduler claimed this notice first
        notice.occurrence = row
        _deliver(notice)
        sent.append(notice)
    # A channel still pending this long after its notice was claimed belongs to a scan that
    # died (the task's hard limit is under a minute): it is sent now rather than lost.
    orphaned = now - ORPHANED_AFTER
    retry = (
        WindowNotice.objects.filter(created_at__gte=now - timedelta(days=1))
        .filter(
            Q(email_state=NoticeChannelState.FAILED, email_attempts__lt=MAX_NOTICE_ATTEMPTS)
            | Q(webhook_state=NoticeChannelState.FAILED, webhook_attempts__lt=MAX_NOTICE_ATTEMPTS)
            | Q(email_state=NoticeChannelState.PENDING, created_at__lt=orphaned)
            | Q(webhook_state=NoticeChannelState.PENDING, created_at__lt=orphaned)
        )
        .exclude(pk__in=[notice.pk for notice in sent])
        .select_related("occurrence__window")
        .prefetch_related("occurrence__window__services")
    )
    for notice in retry:
        _deliver(notice)
    return sent
