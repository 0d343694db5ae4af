"""Alerts: rules evaluated over stored results (as Prometheus' ``for:``, with hysteresis), the
alert lifecycle, escalation through policies, sends through Apprise (recorded, retried with
backoff, never raising in a worker), one-click acknowledgement links, and the critical alert
that opens or joins an incident."""

import bisect
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import apprise
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from ops.models import (
    Alert,
    AlertRule,
    AlertSend,
    AlertSeverity,
    AlertSource,
    AlertStatus,
    ChecklistRun,
    ChecklistTemplate,
    CheckResult,
    CheckState,
    EscalationPolicy,
    EscalationStep,
    Incident,
    Kpi,
    MonitoredService,
    NotificationChannel,
    OnCallSchedule,
    RotationMember,
    SendStatus,
    Severity,
    Silence,
    TimelineKind,
    VendorContact,
)
from ops.models.incidents import OPEN_STATUSES
from ops.selectors.alerts import oncall_user
from ops.selectors.health import kpi_values
from ops.services.checklists import checklist_run_start
from ops.services.incidents import incident_acknowledge, incident_lock, incident_open
from portal.errors import ActionRefused
from portal.models import AuditEntry
from portal.permissions import require_perm
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)

ACK_SALT = "ops.alerts.ack"
SEND_BACKOFF_MINUTES = (1, 2, 4, 8, 16)
SEND_BATCH = 200


# Values


def _p95(latencies: list[float]) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def _result_value(
    rule: AlertRule, rows: list[tuple], times: list[datetime], since: datetime
) -> float | None:
    window = rows[bisect.bisect_right(times, since) :]
    if not window:
        return None
    if rule.source == AlertSource.ERROR_RATE:
        failing = sum(1 for _at, state, _latency in window if state == CheckState.CRITICAL)
        return round(100 * failing / len(window), 3)
    return _p95([latency for _at, _state, latency in window if latency is not None])


def alert_rule_values(
    *, rules: list[AlertRule], now: datetime
) -> dict[int, tuple[float | None, int | None, str]]:
    """Each rule's value now, with the service it is about and where it came from. A fixed
    number of queries whatever the number of rules: one over the results of the longest
    window, one for service states, one per distinct sign-in window, one for KPIs."""
    values: dict[int, tuple[float | None, int | None, str]] = {}
    result_rules = [
        r for r in rules if r.source in {AlertSource.ERROR_RATE, AlertSource.LATENCY_P95}
    ]
    if result_rules:
        longest = max(r.window_minutes for r in result_rules)
        series: dict[int, list[tuple]] = defaultdict(list)
        rows = (
            # By service id first, so the (service, checked_at) index reads the window only.
            CheckResult.objects.filter(
                service_id__in=list(
                    MonitoredService.objects.filter(is_active=True).values_list("pk", flat=True)
                ),
                checked_at__gt=now - timedelta(minutes=longest),
                checked_at__lte=now,
            )
            .order_by("checked_at")
            .values_list("service_id", "checked_at", "state", "latency_ms")
        )
        for service_id, at, state, latency in rows:
            series[service_id].append((at, state, latency))
        times = {pk: [row[0] for row in rows] for pk, rows in series.items()}
        for rule in result_rules:
            since = now - timedelta(minutes=rule.window_minutes)
            ids = [rule.service_id] if rule.service_id else list(series)
            measured = [
                (_result_value(rule, series.get(pk, []), times.get(pk, []), since), pk)
                for pk in ids
            ]
            measured = [(value, pk) for value, pk in measured if value is not None]
            if not measured:
                values[rule.pk] = (None, rule.service_id, "no results in the window")
                continue
            pick = max if rule.comparison == "above" else min
            value, pk = pick(measured, key=lambda item: item[0])
            count = len(series.get(pk, []))
            values[rule.pk] = (value, pk, f"{rule.window_minutes} min of results ({count} read)")
    state_rules = [r for r in rules if r.source == AlertSource.SERVICE_DOWN]
    if state_rules:
        states = dict(MonitoredService.objects.filter(is_active=True).values_list("pk", "state"))
        for rule in state_rules:
            ids = [rule.service_id] if rule.service_id else list(states)
            down = [pk for pk in ids if states.get(pk) == CheckState.CRITICAL]
            service = down[0] if down else rule.service_id
            known = [pk for pk in ids if pk in states]
            values[rule.pk] = (
                (1.0 if down else 0.0) if known else None,
                service,
                "latest check state",
            )
    login_rules = [r for r in rules if r.source == AlertSource.LOGIN_FAILURES]
    for minutes in {r.window_minutes for r in login_rules}:
        count = AuditEntry.objects.filter(
            action="auth.login.failed",
            created_at__gt=now - timedelta(minutes=minutes),
            created_at__lte=now,
        ).count()
        for rule in login_rules:
            if rule.window_minutes == minutes:
                values[rule.pk] = (float(count), None, f"failed sign-ins in {minutes} min (audit)")
    kpi_rules = [r for r in rules if r.source == AlertSource.KPI and r.kpi_id]
    if kpi_rules:
        kpis = {r.kpi_id: r.kpi for r in kpi_rules}
        by_kpi = {v.kpi.pk: v for v in kpi_values(now=now, kpis=list(kpis.values()))}
        for rule in kpi_rules:
            value = by_kpi.get(rule.kpi_id)
            values[rule.pk] = (
                value.value if value else None,
                rule.kpi.service_id,
                f"KPI {rule.kpi.name}: {value.source if value else ''}",
            )
    return values


# Evaluation


@dataclass(frozen=True)
class SilenceWindow:
    """A time another feature silences a service for (a maintenance window in progress)."""

    key: str
    service_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str


# Callables (service_ids, now) -> [SilenceWindow]. The maintenance windows (issue 12, built
# in parallel) add theirs with `silence_source_add`: the occurrences live now whose window
# lists the service. Each window is recorded as a Silence row (its key) the first time it
# silences an alert, so the alerts page shows why.
SILENCE_SOURCES: list = []


def silence_source_add(source) -> None:
    if source not in SILENCE_SOURCES:
        SILENCE_SOURCES.append(source)


def _silence_from_sources(service_ids: set[int], now: datetime) -> Silence | None:
    for source in SILENCE_SOURCES:
        for window in source(service_ids, now):
            silence, _created = Silence.objects.get_or_create(
                key=window.key,
                service_id=window.service_id,
                defaults={
                    "starts_at": window.starts_at,
                    "ends_at": window.ends_at,
                    "reason": window.reason[:200],
                },
            )
            return silence
    return None


def _silence_for(rule: AlertRule, service_id: int | None, now: datetime) -> Silence | None:
    services = {pk for pk in (service_id, rule.service_id) if pk}
    if services and (silence := _silence_from_sources(services, now)):
        return silence
    candidates = Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).filter(
        Q(rule__isnull=True) | Q(rule=rule)
    )
    for silence in candidates:
        if silence.service_id is None or silence.service_id in {service_id, rule.service_id}:
            return silence
    return None


def _steps(policy: EscalationPolicy | None) -> list[EscalationStep]:
    if policy is None:
        return []
    return list(
        policy.steps.select_related("schedule", "user", "channel").order_by(
            "after_minutes", "position", "id"
        )
    )


def _alert_fire(
    rule: AlertRule, value: float | None, service_id: int | None, source: str, now: datetime
) -> Alert | None:
    silence = _silence_for(rule, service_id, now)
    steps = _steps(rule.policy) if silence is None else []
    evidence = {
        "rule": rule.name,
        "condition": rule.condition_text,
        "value": value,
        "source": source,
        "pending_since": rule.pending_since.isoformat(),
        "action": rule.action,
    }
    if service_id:
        recent = list(
            CheckResult.objects.filter(service_id=service_id, checked_at__lte=now)
            .order_by("-checked_at")[:10]
            .values_list("checked_at", "state", "latency_ms", "detail")
        )
        evidence["recent_results"] = [
            {"at": at.isoformat(), "state": state, "latency_ms": latency, "detail": detail}
            for at, state, latency, detail in recent
        ]
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule,
                service_id=service_id,
                severity=rule.severity,
                fired_value=value,
                last_value=value,
                evidence=evidence,
                pending_since=rule.pending_since,
                fired_at=now,
                silenced=silence,
                policy=rule.policy if steps else None,
                next_step_at=now + timedelta(minutes=steps[0].after_minutes) if steps else None,
            )
    except IntegrityError:
        # Another evaluation fired this rule first (alert_one_open_per_rule).
        return None
    audit_record(
        actor=None,
        action="alert.fire",
        target=alert,
        summary=f"{rule.condition_text}: {value}" + (f" (silenced: {silence})" if silence else ""),
    )
    if rule.severity == AlertSeverity.CRITICAL and silence is None:
        try:
            with transaction.atomic():
                alert_incident_open(alert=alert, now=now)
        except Exception:  # the alert stands and escalates without its incident
            logger.exception("alert %s: the incident could not be opened", alert.pk)
    return alert


def _alert_resolve(alert: Alert, now: datetime) -> None:
    changed = (
        Alert.objects.filter(pk=alert.pk)
        .exclude(status=AlertStatus.RESOLVED)
        .update(status=AlertStatus.RESOLVED, resolved_at=now, next_step_at=None)
    )
    if changed:
        audit_record(actor=None, action="alert.resolve", target=alert, summary="condition cleared")
        if alert.incident_id:
            incident = Incident.objects.get(pk=alert.incident_id)
            if incident.status in OPEN_STATUSES:
                incident.add_entry(
                    kind=TimelineKind.NOTE,
                    text=f"Alert resolved by itself: {alert.name}.",
                    user=None,
                    now=now,
                )


def alerts_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    """One beat tick: every active rule's value from stored results, its ``for:`` clock, and
    the alerts that fire or resolve. Rules are claimed row by row (locked, skipping those a
    concurrent tick holds); an alert is at most one open per rule (a constraint)."""
    now = now or timezone.now()
    fired = resolved = 0
    with transaction.atomic():
        rules = list(
            AlertRule.objects.filter(is_active=True)
            .select_related("kpi", "policy")
            .select_for_update(skip_locked=True, of=("self",))
        )
        values = alert_rule_values(rules=rules, now=now)
        open_alerts = {
            alert.rule_id: alert
            for alert in Alert.objects.filter(rule__in=rules).exclude(status=AlertStatus.RESOLVED)
        }
        changed = []
        for rule in rules:
            value, service_id, source = values.get(rule.pk, (None, None, "no value"))
            held = timedelta(minutes=rule.for_minutes)
            alert = open_alerts.get(rule.pk)
            before = (rule.pending_since, rule.clear_since, rule.last_value)
            rule.last_value = value
            if rule.breached(value):
                rule.clear_since = None
                rule.pending_since = rule.pending_since or now
                if alert is None and now - rule.pending_since >= held:
                    if _alert_fire(rule, value, service_id, source, now):
                        fired += 1
                elif alert is not None and alert.last_value != value:
                    Alert.objects.filter(pk=alert.pk).update(last_value=value)
            else:
                rule.pending_since = None
                if alert is not None:
                    rule.clear_since = rule.clear_since or now
                    if now - rule.clear_since >= held:
                        _alert_resolve(alert, now)
                        rule.clear_since = None
                        resolved += 1
                else:
                    rule.clear_since = None
            if (rule.pending_since, rule.clear_since, rule.last_value) != before:
                changed.append(rule)
        # Written back only where something changed: a bulk update of 500 rows is the
        # costliest part of a tick (benchmarked), most rules are quiet most of the time.
        AlertRule.objects.filter(pk__in=[rule.pk for rule in rules]).update(last_evaluated_at=now)
        AlertRule.objects.bulk_update(
            changed, ["pending_since", "clear_since", "last_value"], batch_size=100
        )
    incident_escalations_sync(now=now)
    escalated = alerts_escalate(now=now)
    return {"rules": len(rules), "fired": fired, "resolved": resolved, "escalated": escalated}


# Escalation


def _message(alert: Alert, label: str) -> tuple[str, str]:
    title = f"[{alert.get_severity_display().upper()}] {alert.name}"
    if alert.rule_id:
        lines = [f"{alert.condition}: now {alert.last_value}."]
    else:
        lines = [f"Not acknowledged: {settings.PORTAL_BASE_URL}{alert.incident.get_absolute_url()}"]
    lines.append(f"Fired {timezone.localtime(alert.fired_at):%Y-%m-%d %H:%M %Z}.")
    if alert.rule_id and alert.rule.action:
        lines.append(f"Action: {alert.rule.action}.")
    if label:
        lines.append(f"Escalation: {label}.")
    return title, "\n".join(lines)


def _targets(step: EscalationStep, at: datetime) -> list[tuple]:
    """(channel or None, recipient or None) for a step: a schedule's on-call (their own
    channels, else an e-mail), a person (the same), or a channel."""
    if step.channel_id:
        return [(step.channel, None)] if step.channel.is_active else []
    person = oncall_user(schedule=step.schedule, at=at) if step.schedule_id else step.user
    if person is None:
        return []
    own = [c for c in person.alert_channels.all() if c.is_active]
    return [(channel, person) for channel in own] or [(None, person)]


def _queue_sends(alert: Alert, step: EscalationStep, now: datetime) -> list[AlertSend]:
    label = step.label or step.target_text
    title, body = _message(alert, label)
    sends = [
        AlertSend(
            alert=alert,
            channel=channel,
            recipient=recipient,
            step_label=label,
            title=title,
            body=body,
            next_attempt_at=now,
            created_at=now,
        )
        for channel, recipient in _targets(step, now)
    ]
    return AlertSend.objects.bulk_create(sends)


def incident_escalations_sync(*, now: datetime | None = None) -> int:
    """The incidents' response and escalation clocks on the same machinery: an open,
    unacknowledged incident whose severity has an escalation policy is escalated as an alert
    (no rule) from its detection, at step 1 of the policy; once the incident is acknowledged
    (on its page or from a message) or resolved, its escalation stops."""
    now = now or timezone.now()
    Alert.objects.filter(
        rule__isnull=True, status=AlertStatus.FIRING, incident__acknowledged_at__isnull=False
    ).update(status=AlertStatus.ACKNOWLEDGED, acknowledged_at=now, next_step_at=None)
    Alert.objects.filter(rule__isnull=True).exclude(status=AlertStatus.RESOLVED).exclude(
        incident__status__in=OPEN_STATUSES
    ).update(status=AlertStatus.RESOLVED, resolved_at=now, next_step_at=None)
    waiting = (
        Incident.objects.filter(
            status__in=OPEN_STATUSES,
            acknowledged_at__isnull=True,
            severity__escalation_policy__isnull=False,
            detected_at__lte=now,
        )
        # Escalated already: an alert with no rule ("no alerts at all" must not match).
        .exclude(
            pk__in=Alert.objects.filter(rule__isnull=True, incident__isnull=False).values(
                "incident_id"
            )
        )
        .select_related("severity__escalation_policy")
    )
    started = 0
    for incident in waiting:
        policy = incident.severity.escalation_policy
        steps = _steps(policy)
        if not steps:
            continue
        alert = Alert.objects.create(
            title=f"{incident.reference} {incident.title}"[:250],
            severity=AlertSeverity.CRITICAL,
            incident=incident,
            pending_since=incident.detected_at,
            fired_at=incident.detected_at,
            policy=policy,
            next_step_at=incident.detected_at + timedelta(minutes=steps[0].after_minutes),
        )
        audit_record(
            actor=None, action="alert.incident_escalation", target=alert, summary=str(policy)
        )
        started += 1
    return started


def alerts_escalate(*, now: datetime | None = None) -> int:
    """Notify each due step of the alerts still firing (not acknowledged, not resolved). A
    step is claimed by moving the alert to the next one with a conditional update, so two
    ticks never send it twice."""
    now = now or timezone.now()
    due = Alert.objects.filter(
        status=AlertStatus.FIRING, next_step_at__lte=now, policy__isnull=False
    ).select_related("rule", "policy", "incident")
    done = 0
    for alert in due:
        steps = _steps(alert.policy)
        if alert.next_step >= len(steps):
            Alert.objects.filter(pk=alert.pk).update(next_step_at=None)
            continue
        step = steps[alert.next_step]
        following, next_round = alert.next_step + 1, alert.round
        round_start = alert.fired_at + timedelta(
            minutes=alert.round * alert.policy.repeat_every_minutes
        )
        if following >= len(steps):
            following, next_round = 0, alert.round + 1
            round_start += timedelta(minutes=alert.policy.repeat_every_minutes)
        if next_round > alert.policy.repeat_times:
            next_at = None
        else:
            next_at = round_start + timedelta(minutes=steps[following].after_minutes)
        with transaction.atomic():
            claimed = Alert.objects.filter(
                pk=alert.pk,
                status=AlertStatus.FIRING,
                next_step=alert.next_step,
                round=alert.round,
            ).update(next_step=following, round=next_round, next_step_at=next_at)
            if not claimed:
                continue
            sends = _queue_sends(alert, step, now)
            audit_record(
                actor=None,
                action="alert.escalate",
                target=alert,
                summary=f"round {alert.round + 1}, {step}: {len(sends)} message(s)",
            )
        done += 1
    return done


# Acknowledgement


def _acknowledge(alert: Alert, *, user, now: datetime, how: str) -> Alert:
    changed = Alert.objects.filter(pk=alert.pk, status=AlertStatus.FIRING).update(
        status=AlertStatus.ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_by=user,
        next_step_at=None,
    )
    if not changed:
        alert.refresh_from_db()
        raise ActionRefused(
            f"This alert is already {alert.get_status_display().lower()}.", status=409
        )
    alert.refresh_from_db()
    audit_record(actor=user, action="alert.acknowledge", target=alert, summary=how)
    if alert.incident_id and not alert.rule_id and user is not None:
        # An incident's own escalation: acknowledging it from the message acknowledges the
        # incident (its clocks stop), in the recipient's name and role.
        incident = incident_lock(alert.incident)
        if incident.acknowledged_at is None and not incident.is_closed:
            incident_acknowledge(incident=incident, user=user, now=now)
    elif alert.incident_id:
        incident = incident_lock(alert.incident)
        if incident.status in OPEN_STATUSES:
            who = user.get_username() if user else "someone"
            incident.add_entry(
                kind=TimelineKind.NOTE,
                text=f"Alert “{alert.name}” acknowledged by {who} ({how}).",
                user=user,
                now=now,
            )
    return alert


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user, now: datetime | None = None) -> Alert:
    require_perm(user, "ops.acknowledge_alert", "You may not acknowledge alerts.")
    return _acknowledge(alert, user=user, now=now or timezone.now(), how="on the alerts page")


def alert_ack_token(*, send: AlertSend) -> str:
    return signing.dumps({"send": send.pk, "alert": send.alert_id}, salt=ACK_SALT, compress=True)


def alert_ack_url(*, send: AlertSend) -> str:
    path = reverse("ops:alert_ack_link", args=[alert_ack_token(send=send)])
    return f"{settings.PORTAL_BASE_URL.rstrip('/')}{path}"


def alert_ack_link_read(*, token: str) -> AlertSend:
    """The send a link was made for, or a refusal that says why (expired, forged, used)."""
    try:
        data = signing.loads(token, salt=ACK_SALT, max_age=settings.ALERT_ACK_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise ActionRefused(
            "This link has expired: acknowledge from the alerts page.", status=410
        ) from None
    except signing.BadSignature:
        raise ActionRefused("This link is not valid.", status=400) from None
    send = (
        AlertSend.objects.select_related("alert__rule", "recipient")
        .filter(pk=data["send"], alert_id=data["alert"])
        .first()
    )
    if send is None:
        raise ActionRefused("This link is not valid.", status=400)
    if send.link_used_at is not None:
        raise ActionRefused("This link was already used.", status=409)
    return send


@transaction.atomic
def alert_ack_by_link(*, token: str, now: datetime | None = None) -> Alert:
    """One click from the message: single use (claimed on the send row), expiring (signed
    with a timestamp), acknowledged in the name of the person it was sent to."""
    now = now or timezone.now()
    send = alert_ack_link_read(token=token)
    if not AlertSend.objects.filter(pk=send.pk, link_used_at__isnull=True).update(link_used_at=now):
        raise ActionRefused("This link was already used.", status=409)
    return _acknowledge(send.alert, user=send.recipient, now=now, how="from the message's link")


# Sends


def channel_url(channel: NotificationChannel) -> str:
    if channel.url_env:
        return os.environ.get(channel.url_env, "")
    return channel.url_secret


def _email_url(recipient) -> str:
    query = urlencode(
        {"from": settings.DEFAULT_FROM_EMAIL, "to": recipient.email, "mode": "insecure"}
    )
    return f"mailto://{settings.EMAIL_HOST}:{settings.EMAIL_PORT}?{query}"


def _deliver(send: AlertSend) -> str:
    """Send one message; the error text, or "" when it went out. Never raises."""
    if send.channel_id:
        url = channel_url(send.channel)
        if not url:
            return f"${send.channel.url_env} is not set"
    elif send.recipient is not None and send.recipient.email:
        url = _email_url(send.recipient)
    else:
        return "the recipient has no channel and no e-mail address"
    body = f"{send.body}\n\nAcknowledge: {alert_ack_url(send=send)}"
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return "Apprise cannot read this channel's URL"
    try:
        with apprise.LogCapture(level=logging.WARNING) as log:
            ok = bool(notifier.notify(title=send.title, body=body))
    except Exception as error:  # a plugin's failure is recorded, never raised
        return f"{type(error).__name__}: {error}"[:500]
    if ok:
        return ""
    return (log.getvalue().strip().splitlines() or ["the channel refused the message"])[-1][:500]


def alert_sends_deliver(*, now: datetime | None = None) -> dict[str, int]:
    """Deliver due sends: each claimed (queued → sending) by a conditional update, then sent;
    a failure is recorded and retried after 1, 2, 4, 8, 16 minutes, then left failed. One
    failing channel never stops the others."""
    now = now or timezone.now()
    due = list(
        AlertSend.objects.filter(status=SendStatus.QUEUED, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:SEND_BATCH]
    )
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for pk in due:
        if not AlertSend.objects.filter(pk=pk, status=SendStatus.QUEUED).update(
            status=SendStatus.SENDING
        ):
            continue
        send = AlertSend.objects.select_related("channel", "recipient", "alert").get(pk=pk)
        try:
            error = _deliver(send)
        except Exception as unexpected:  # recorded; the worker goes on
            logger.exception("alert send %s", pk)
            error = f"{type(unexpected).__name__}: {unexpected}"[:500]
        attempts = send.attempts + 1
        if not error:
            AlertSend.objects.filter(pk=pk).update(
                status=SendStatus.SENT, attempts=attempts, sent_at=now, error=""
            )
            counts["sent"] += 1
        elif attempts <= len(SEND_BACKOFF_MINUTES):
            AlertSend.objects.filter(pk=pk).update(
                status=SendStatus.QUEUED,
                attempts=attempts,
                error=error,
                next_attempt_at=now + timedelta(minutes=SEND_BACKOFF_MINUTES[attempts - 1]),
            )
            counts["retry"] += 1
        else:
            AlertSend.objects.filter(pk=pk).update(
                status=SendStatus.FAILED, attempts=attempts, error=error
            )
            counts["failed"] += 1
    return counts


def alert_sends_reclaim(*, now: datetime | None = None) -> int:
    """A worker killed while sending leaves a send "sending": requeued after ten minutes."""
    now = now or timezone.now()
    return AlertSend.objects.filter(
        status=SendStatus.SENDING, next_attempt_at__lt=now - timedelta(minutes=10)
    ).update(status=SendStatus.QUEUED)


# Alert → incident


def _incident_severity() -> Severity | None:
    code = settings.ALERT_INCIDENT_SEVERITY
    return (
        Severity.objects.filter(code=code, is_active=True).first()
        or Severity.objects.filter(is_active=True).order_by("rank").first()
    )


def alert_incident_open(*, alert: Alert, now: datetime, user=None) -> Incident | None:
    """A critical alert opens an incident with the evidence and the rule's playbook run, or
    joins the open incident of its service. ``user``: a person promoting a warning."""
    rule = alert.rule
    joined = None
    if alert.service_id:
        joined = (
            Incident.objects.filter(services=alert.service_id, status__in=OPEN_STATUSES)
            .order_by("-started_at")
            .first()
        )
    evidence = alert.evidence
    chart = reverse("ops:service_detail", args=[alert.service.slug]) if alert.service_id else ""
    text = (
        f"Alert “{rule.name}” ({alert.get_severity_display()}): {rule.condition_text}; "
        f"value {alert.fired_value} ({evidence.get('source', '')})."
        + (f" Action: {rule.action}." if rule.action else "")
        + (f" Chart: {chart}" if chart else "")
    )
    if joined is not None:
        incident = incident_lock(joined)
        incident.add_entry(kind=TimelineKind.NOTE, text=f"Joined: {text}", user=user, now=now)
    else:
        severity = _incident_severity()
        if severity is None:
            logger.warning("no active severity: alert %s opens no incident", alert.pk)
            return None
        recent = evidence.get("recent_results") or []
        summary = "\n".join(
            [text, "Recent results:"]
            + [f"- {r['at']} {r['state']} {r['latency_ms']} ms {r['detail']}" for r in recent]
        )
        incident = incident_open(
            user=user,
            by_system=user is None,
            title=f"Alert: {rule.name}"[:200],
            severity=severity.code,
            detected_at=alert.fired_at,
            started_at=alert.pending_since,
            summary=summary[:4000],
            services=[alert.service.slug] if alert.service_id else [],
            now=now,
        )
    Alert.objects.filter(pk=alert.pk).update(incident=incident)
    alert.incident = incident
    if rule.playbook_id and rule.playbook.is_active:
        run = checklist_run_start(
            template=rule.playbook,
            user=user,
            label=f"{incident.reference} playbook",
            by_system=user is None,
        )
        ChecklistRun.objects.filter(pk=run.pk).update(incident=incident)
        incident.add_entry(
            kind=TimelineKind.CHECKLIST,
            text=f"Playbook started: {rule.playbook.name} ({run.items_total} items).",
            user=user,
            now=now,
        )
    return incident


@transaction.atomic
def alert_promote(*, alert: Alert, user, now: datetime | None = None) -> Incident:
    """A person turns a warning into an incident."""
    require_perm(user, "ops.open_incident", "You may not open incidents.")
    if alert.incident_id:
        raise ActionRefused("This alert already has an incident.", status=409)
    incident = alert_incident_open(alert=alert, now=now or timezone.now(), user=user)
    if incident is None:
        raise ActionRefused("No severity is offered for new incidents.", status=409)
    return incident


def alerts_firing_count() -> int:
    return Alert.objects.filter(status=AlertStatus.FIRING).aggregate(n=Count("id"))["n"]


# Configuration (forms have validated the values; these check the role, save and audit)


@transaction.atomic
def alert_rule_create(*, user, rule: AlertRule) -> AlertRule:
    require_perm(user, "ops.add_alertrule", "You may not add alert rules.")
    rule.full_clean()
    rule.save()
    audit_record(actor=user, action="alert.rule.create", target=rule, summary=rule.condition_text)
    return rule


@transaction.atomic
def channel_create(*, user, channel: NotificationChannel, personal: bool) -> NotificationChannel:
    """A shared channel (managers) or the user's own (anyone who may add channels)."""
    require_perm(user, "ops.add_notificationchannel", "You may not add channels.")
    if not personal:
        require_perm(user, "ops.change_notificationchannel", "You may add your own channels only.")
    channel.owner = user if personal else None
    channel.save()
    # The stored URL is a secret: the audit names the channel and where its URL lives only.
    audit_record(actor=user, action="alert.channel.create", target=channel, summary=channel.where)
    return channel


@transaction.atomic
def silence_create(*, user, silence: Silence) -> Silence:
    require_perm(user, "ops.add_silence", "You may not add silences.")
    silence.full_clean()
    silence.created_by = user
    silence.save()
    Alert.objects.filter(
        status=AlertStatus.FIRING, silenced__isnull=True, fired_at__gte=silence.starts_at
    ).filter(Q(service=silence.service) if silence.service_id else Q()).filter(
        Q(rule=silence.rule) if silence.rule_id else Q()
    ).update(silenced=silence, next_step_at=None)
    audit_record(
        actor=user,
        action="alert.silence.create",
        target=silence,
        summary=f"{silence.starts_at:%Y-%m-%d %H:%M} to {silence.ends_at:%Y-%m-%d %H:%M}: "
        f"{silence.reason}",
    )
    return silence


# Defaults from the runbooks (setup_portal)

DEFAULT_SCHEDULES = [
    # name, role, the role group whose members rotate
    ("Primary", "Operations engineer", "Operator"),
    ("Secondary", "Platform engineer", "Manager"),
    ("Escalation", "Engineering manager", "Admin"),
]
# The escalation timeline: immediately the on-call engineer, then the lead, the manager, the
# CTO, and after an hour the CEO and stakeholders.
DEFAULT_STEPS = [
    (0, "On-call engineer", "schedule", "Primary"),
    (5, "Engineering lead", "schedule", "Secondary"),
    (15, "Engineering manager", "schedule", "Escalation"),
    (30, "CTO", "channel", "Leadership"),
    (60, "CEO and stakeholders", "channel", "Leadership"),
]
DEFAULT_POLICY = "Runbook escalation timeline"
# name, source, KPI metric, threshold, window, for, severity, action, playbook
DEFAULT_RULES = [
    (
        "Error rate over 5 % for 5 minutes",
        "error_rate",
        None,
        5,
        5,
        5,
        "critical",
        "Investigate, roll back",
        "High error rates",
    ),
    (
        "P95 response time over 5 s",
        "latency_p95",
        None,
        5000,
        5,
        5,
        "critical",
        "Scale up",
        "High response times",
    ),
    (
        "Failed sign-ins over 10 in 5 minutes",
        "login_failures",
        None,
        10,
        5,
        0,
        "critical",
        "Check the audit log for the addresses and block them",
        "",
    ),
    (
        "Error rate over 1 % for 10 minutes",
        "error_rate",
        None,
        1,
        10,
        10,
        "warning",
        "Investigate, roll back",
        "High error rates",
    ),
    (
        "P95 response time over 2 s",
        "latency_p95",
        None,
        2000,
        5,
        5,
        "warning",
        "Scale up",
        "High response times",
    ),
    (
        "Disk use over 80 %",
        "kpi",
        "disk",
        80,
        5,
        5,
        "warning",
        "Clean up or expand",
        "Resource exhaustion",
    ),
    (
        "Memory use over 85 %",
        "kpi",
        "memory",
        85,
        5,
        5,
        "warning",
        "Scale up",
        "Resource exhaustion",
    ),
    (
        "Queue over 100 tasks",
        "kpi",
        "queue_size",
        100,
        5,
        5,
        "warning",
        "Scale workers",
        "Resource exhaustion",
    ),
]
DEFAULT_VENDORS = [
    ("Database", "Supabase Support", "support@supabase.io", "E-mail", "Enterprise SLA"),
    ("Hosting", "Netlify Support", "support@netlify.com", "E-mail", "Pro plan"),
    ("Payments", "Stripe Support", "Dashboard", "Dashboard", "Priority support"),
    ("AI", "OpenAI Support", "Dashboard", "Dashboard", "Standard"),
    ("Hosting", "DigitalOcean Support", "support@digitalocean.com", "E-mail", ""),
]


@transaction.atomic
def alert_defaults_load(*, today) -> str:
    """Idempotent: the runbooks' rotations, escalation timeline, rules and vendor matrix,
    each created when missing (by name), never overwritten."""
    users = get_user_model()
    monday = today - timedelta(days=today.weekday())
    schedules = {}
    for name, role, group in DEFAULT_SCHEDULES:
        schedule, created = OnCallSchedule.objects.get_or_create(
            name=name,
            defaults={"role": role, "time_zone": settings.TIME_ZONE, "starts_on": monday},
        )
        if created:
            people = list(
                users.objects.filter(groups__name=group, is_active=True).order_by("username")
            )
            people = people or list(users.objects.filter(is_superuser=True).order_by("username"))
            RotationMember.objects.bulk_create(
                RotationMember(schedule=schedule, user=person, position=index)
                for index, person in enumerate(people)
            )
        schedules[name] = schedule
    leadership, _ = NotificationChannel.objects.get_or_create(
        name="Leadership", owner=None, defaults={"url_env": "ALERTS_LEADERSHIP_URL"}
    )
    policy, created = EscalationPolicy.objects.get_or_create(
        name=DEFAULT_POLICY, defaults={"repeat_every_minutes": 90}
    )
    if created:
        # A P0 is escalated from its detection on the runbook's timeline (003).
        Severity.objects.filter(code="P0", escalation_policy__isnull=True).update(
            escalation_policy=policy
        )
        EscalationStep.objects.bulk_create(
            EscalationStep(
                policy=policy,
                position=index,
                after_minutes=minutes,
                label=label,
                schedule=schedules[target] if kind == "schedule" else None,
                channel=leadership if kind == "channel" else None,
            )
            for index, (minutes, label, kind, target) in enumerate(DEFAULT_STEPS)
        )
    playbooks = {t.name: t for t in ChecklistTemplate.objects.filter(is_active=True)}
    added = 0
    for name, source, metric, threshold, window, held, severity, action, playbook in DEFAULT_RULES:
        kpi = None
        if metric:
            kpi = Kpi.objects.filter(metric=metric).order_by("service_id", "id").first()
            if kpi is None:
                continue
        _rule, created = AlertRule.objects.get_or_create(
            name=name,
            defaults={
                "source": source,
                "kpi": kpi,
                "threshold": threshold,
                "window_minutes": window,
                "for_minutes": held,
                "severity": severity,
                "action": action,
                "playbook": playbooks.get(playbook),
                "policy": policy,
            },
        )
        added += created
    database = MonitoredService.objects.filter(kind="postgres").order_by("id").first()
    if database is not None:
        _rule, created = AlertRule.objects.get_or_create(
            name="Database unreachable (connection pool exhausted)",
            defaults={
                "source": AlertSource.SERVICE_DOWN,
                "service": database,
                "threshold": 0.5,
                "window_minutes": 1,
                "for_minutes": 1,
                "severity": AlertSeverity.CRITICAL,
                "action": "Check connections; restart the pool; scale the database",
                "policy": policy,
            },
        )
        added += created
    kinds = {"Database": ["postgres"], "Hosting": ["do_app", "http"]}
    for area, vendor, contact, method, plan in DEFAULT_VENDORS:
        row, created = VendorContact.objects.get_or_create(
            area=area, vendor=vendor, defaults={"contact": contact, "method": method, "plan": plan}
        )
        if created and area in kinds:
            row.services.set(MonitoredService.objects.filter(kind__in=kinds[area]))
    if added:
        audit_record(actor=None, action="alert.defaults.load", summary=f"{added} rules")
    return f"Alert rules from the runbooks: {added} added; escalation policy “{policy}”."
