"""Reads for alerts: who is on call (rotations with overrides, in the schedule's zone), the
alerts page's lists and the Today block."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch, Q
from django.utils import timezone

from ops.models import (
    Alert,
    AlertRule,
    AlertSend,
    AlertStatus,
    OnCallOverride,
    OnCallSchedule,
    RotationMember,
    Silence,
    VendorContact,
)

RECENT = timedelta(days=7)


def oncall_user(*, schedule: OnCallSchedule, at: datetime):
    """The person holding ``schedule`` at ``at``: an override covering it, else the rotation's
    turn (None when the rotation is empty)."""
    override = schedule.overrides.filter(starts_at__lte=at, ends_at__gt=at).select_related("user")
    for row in override[:1]:
        return row.user
    members = [m.user for m in schedule.members.select_related("user").order_by("position", "id")]
    if not members:
        return None
    turn, _start, _end = schedule.turn_at(at)
    return members[turn % len(members)]


@dataclass
class Shift:
    user: object
    starts_at: datetime
    ends_at: datetime
    override: bool = False


def oncall_timeline(*, schedule: OnCallSchedule, at: datetime, turns: int = 4) -> list[Shift]:
    """Now and the next hand-offs (overrides shown as their own shifts)."""
    members = [m.user for m in schedule.members.select_related("user").order_by("position", "id")]
    overrides = list(
        schedule.overrides.filter(ends_at__gt=at).select_related("user").order_by("starts_at")
    )
    shifts = []
    turn, _start, _end = schedule.turn_at(at)
    for index in range(turns):
        if members:
            number = turn + index
            shifts.append(
                Shift(
                    user=members[number % len(members)],
                    starts_at=schedule.handoff_at(number),
                    ends_at=schedule.handoff_at(number + 1),
                )
            )
    shifts += [Shift(o.user, o.starts_at, o.ends_at, override=True) for o in overrides]
    return sorted(shifts, key=lambda shift: (shift.starts_at, not shift.override))


def oncall_shifts(*, start: datetime, end: datetime) -> list[tuple[OnCallSchedule, Shift]]:
    """Every rotation's shifts that overlap [start, end), overrides as their own shifts (for
    the calendar and its feed). Two queries whatever the number of shifts."""
    schedules = list(
        OnCallSchedule.objects.prefetch_related(
            Prefetch("members", queryset=RotationMember.objects.select_related("user")),
            Prefetch(
                "overrides",
                queryset=OnCallOverride.objects.filter(ends_at__gt=start, starts_at__lt=end)
                .select_related("user")
                .order_by("starts_at"),
            ),
        ).order_by("name")
    )
    found = []
    for schedule in schedules:
        members = [m.user for m in sorted(schedule.members.all(), key=lambda m: (m.position, m.pk))]
        if members:
            turn, _start, _end = schedule.turn_at(start)
            while (begins := schedule.handoff_at(turn)) < end:
                person = members[turn % len(members)]
                found.append((schedule, Shift(person, begins, schedule.handoff_at(turn + 1))))
                turn += 1
        found += [
            (schedule, Shift(o.user, o.starts_at, o.ends_at, override=True))
            for o in schedule.overrides.all()
        ]
    return found


@dataclass
class AlertLists:
    firing: list
    acknowledged: list
    silenced: list
    recent: list
    silences: list


def alerts_page(*, now: datetime | None = None) -> AlertLists:
    now = now or timezone.now()
    rows = list(
        Alert.objects.filter(
            ~Q(status=AlertStatus.RESOLVED) | Q(resolved_at__gte=now - RECENT)
        ).select_related("rule", "service", "acknowledged_by", "incident", "silenced")[:300]
    )
    open_rows = [a for a in rows if a.status != AlertStatus.RESOLVED]
    return AlertLists(
        firing=[a for a in open_rows if a.status == AlertStatus.FIRING and not a.silenced_id],
        acknowledged=[a for a in open_rows if a.status == AlertStatus.ACKNOWLEDGED],
        silenced=[a for a in open_rows if a.status == AlertStatus.FIRING and a.silenced_id],
        recent=[a for a in rows if a.status == AlertStatus.RESOLVED],
        silences=list(Silence.objects.filter(ends_at__gt=now).select_related("service", "rule")),
    )


def alerts_open_with_holders(*, now: datetime) -> list[tuple[Alert, str]]:
    """What is firing or acknowledged, and who holds it: who acknowledged it, else the last
    person it was sent to."""
    alerts = list(
        Alert.objects.exclude(status=AlertStatus.RESOLVED)
        .filter(silenced__isnull=True)
        .select_related("rule", "service", "acknowledged_by")
        .order_by("status", "-fired_at")
    )
    last_sent = {}
    for send in (
        AlertSend.objects.filter(alert__in=alerts, recipient__isnull=False)
        .select_related("recipient")
        .order_by("created_at", "id")
    ):
        last_sent[send.alert_id] = send.recipient.get_username()
    held = []
    for alert in alerts:
        if alert.acknowledged_by_id:
            holder = alert.acknowledged_by.get_username()
        else:
            holder = last_sent.get(alert.pk, "nobody yet")
        held.append((alert, holder))
    return held


def alert_rules_all() -> list[AlertRule]:
    return list(AlertRule.objects.select_related("kpi", "service", "playbook", "policy"))


def incident_vendor_contacts(*, incident) -> list[VendorContact]:
    """The escalation matrix rows for the services an incident affects."""
    return list(
        VendorContact.objects.filter(services__incidents=incident).distinct().order_by("area")
    )


def incident_alerts(*, incident) -> list[Alert]:
    return list(incident.alerts.select_related("rule", "acknowledged_by").order_by("fired_at"))


def oncall_now(*, at: datetime) -> list[tuple[OnCallSchedule, object]]:
    """Every schedule with who holds it at ``at``: three queries whatever their number."""
    schedules = OnCallSchedule.objects.prefetch_related(
        Prefetch("members", queryset=RotationMember.objects.select_related("user")),
        Prefetch(
            "overrides",
            queryset=OnCallOverride.objects.filter(starts_at__lte=at, ends_at__gt=at)
            .select_related("user")
            .order_by("starts_at"),
            to_attr="live_overrides",
        ),
    )
    held = []
    for schedule in schedules:
        if schedule.live_overrides:
            held.append((schedule, schedule.live_overrides[0].user))
            continue
        members = [member.user for member in schedule.members.all()]
        turn = schedule.turn_at(at)[0]
        held.append((schedule, members[turn % len(members)] if members else None))
    return held
