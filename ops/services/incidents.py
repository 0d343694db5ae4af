"""Writes for incidents: open, update, acknowledge, change status, close, notes, the response
checklist's ticks on the timeline, postmortems and their action items, overdue notifications.

Every function checks its permission, validates everything before writing anything, runs in
one transaction, adds timeline entries for what changed and records the change in the audit
log. ``now`` is a parameter so the clocks can be tested with a controlled time."""

import json
import logging
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from ops.models import (
    ActionItem,
    ChecklistRun,
    ChecklistTemplate,
    Incident,
    IncidentNotification,
    IncidentStatus,
    NotificationStep,
    Postmortem,
    RunItem,
    Severity,
    TimelineEntry,
    TimelineKind,
)
from ops.models.incidents import OPEN_STATUSES
from ops.services import checklists as checklist_services
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record
from portal.templatetags.portal_tags import duration

logger = logging.getLogger(__name__)

RESPONSE_CHECKLIST_NAME = "Incident response checklist"
MAX_TITLE = 200
MAX_SERVICES = 300
MAX_TEXT = 20_000
MAX_NOTE = 5_000
MAX_ACTION = 500
# Times may be a little ahead of the server's clock (a laptop's clock); beyond that they are
# typing mistakes.
CLOCK_SKEW = timedelta(minutes=5)

TIME_FIELDS = ("started_at", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at")
TIME_LABELS = {
    "started_at": "Started",
    "detected_at": "Detected",
    "acknowledged_at": "Acknowledged",
    "mitigated_at": "Mitigated",
    "resolved_at": "Resolved",
}
TEXT_FIELDS = {
    "title": ("Title", MAX_TITLE),
    "affected_services": ("Affected services", MAX_SERVICES),
    "summary": ("Summary", MAX_TEXT),
    "customer_impact": ("Customer impact", MAX_TEXT),
    "chat_url": ("Chat channel", 500),
    "status_page_url": ("Status page", 500),
    "ticket_urls": ("Tickets", MAX_TEXT),
}
URL_FIELDS = ("chat_url", "status_page_url")
EDITABLE = (*TEXT_FIELDS, *TIME_FIELDS, "personal_data", "severity", "commander")
POSTMORTEM_FIELDS = ("summary", "impact", "timeline", "root_cause", "went_well", "went_badly")


def _name(user) -> str:
    return user.get_username() if user is not None else "system"


def _add_entry(
    incident: Incident,
    *,
    kind: str,
    text: str,
    user=None,
    now: datetime,
    corrects: TimelineEntry | None = None,
) -> TimelineEntry:
    return TimelineEntry.objects.create(
        incident=incident,
        kind=kind,
        text=text,
        author=user,
        author_name=_name(user),
        created_at=now,
        corrects=corrects,
    )


def _touch(incident: Incident, now: datetime) -> None:
    incident.version += 1
    incident.updated_at = now


def _locked(incident: Incident) -> Incident:
    return (
        # Lock the incident row only: the commander is the nullable side of an outer join.
        Incident.objects.select_for_update(of=("self",))
        .select_related("severity", "commander")
        .get(pk=incident.pk)
    )


def _severity(code: str) -> Severity:
    code = (code or "").strip()
    if not code:
        raise ActionRefused("Choose a severity.")
    severity = Severity.objects.filter(code__iexact=code).first()
    if severity is None:
        known = ", ".join(Severity.objects.filter(is_active=True).values_list("code", flat=True))
        raise ActionRefused(f"There is no severity “{code}”; choose one of {known}.")
    return severity


def _commander(value) -> Any:
    """A user, a username, or empty for none; it must be someone who may update incidents."""
    if value in (None, ""):
        return None
    user = value
    if not hasattr(value, "pk"):
        user = get_user_model().objects.filter(username=value, is_active=True).first()
        if user is None:
            raise ActionRefused(f"There is no active user “{value}” to be the commander.")
    if not user.has_perm("ops.update_incident"):
        raise ActionRefused(
            f"{user.get_username()} may not update incidents, so cannot command one."
        )
    return user


def _clean_text(field: str, value: str | None) -> str:
    label, limit = TEXT_FIELDS[field]
    value = (value or "").strip()
    if field == "title" and not value:
        raise ActionRefused("Give the incident a title.")
    if len(value) > limit:
        raise ActionRefused(f"{label} is too long ({len(value)} characters; at most {limit}).")
    if field in URL_FIELDS and value:
        _check_url(label, value)
    if field == "ticket_urls":
        for line in value.splitlines():
            if line.strip():
                _check_url(label, line.strip())
    return value


def _check_url(label: str, value: str) -> None:
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise ActionRefused(f"{label}: “{value}” is not an http(s) link.") from None


def _check_times(values: dict[str, datetime | None], now: datetime) -> None:
    """The order the clocks must follow; the first broken rule is the message."""
    for field in TIME_FIELDS:
        moment = values.get(field)
        if moment is not None and timezone.is_naive(moment):
            raise ActionRefused(f"{TIME_LABELS[field]} needs a time zone.")
        if moment is not None and moment > now + CLOCK_SKEW:
            raise ActionRefused(f"{TIME_LABELS[field]} is in the future.")
    if values.get("started_at") is None or values.get("detected_at") is None:
        raise ActionRefused("Say when the incident started and when it was detected.")
    rules = [
        ("detected_at", "started_at", "Detected cannot be before started."),
        ("acknowledged_at", "detected_at", "Acknowledged cannot be before detected."),
        ("mitigated_at", "started_at", "Mitigated cannot be before started."),
        ("resolved_at", "started_at", "Resolved cannot be before started."),
        ("resolved_at", "mitigated_at", "Resolved cannot be before mitigated."),
    ]
    for later, earlier, message in rules:
        if values.get(later) and values.get(earlier) and values[later] < values[earlier]:
            raise ActionRefused(message)


def _snapshot(incident: Incident) -> dict:
    return {
        "status": incident.status,
        "severity": incident.severity.code,
        "commander": incident.commander.get_username() if incident.commander else None,
        **{
            field: getattr(incident, field) and getattr(incident, field).isoformat()
            for field in TIME_FIELDS
        },
    }


def _monitored_services(slugs) -> list:
    """The monitored services named by slug; an unknown one is refused by name."""
    from ops.models import MonitoredService

    wanted = list(dict.fromkeys(str(slug).strip() for slug in slugs if str(slug).strip()))
    found = {service.slug: service for service in MonitoredService.objects.filter(slug__in=wanted)}
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise ActionRefused(f"No monitored service “{missing[0]}”.")
    return [found[slug] for slug in wanted]


def _services_entry(incident: Incident, services: list, *, user, now: datetime) -> None:
    names = ", ".join(service.name for service in services) or "none"
    _add_entry(
        incident,
        kind=TimelineKind.EDIT,
        text=f"Affected monitored services: {names}.",
        user=user,
        now=now,
    )


def _response_template(severity: Severity) -> ChecklistTemplate | None:
    if severity.response_template_id and severity.response_template.is_active:
        return severity.response_template
    return (
        ChecklistTemplate.objects.filter(name__iexact=RESPONSE_CHECKLIST_NAME, is_active=True)
        .order_by("id")
        .first()
    )


@transaction.atomic
def incident_open(
    *,
    user,
    title: str,
    severity: str,
    started_at: datetime | None = None,
    detected_at: datetime | None = None,
    commander=None,
    affected_services: str = "",
    summary: str = "",
    customer_impact: str = "",
    chat_url: str = "",
    status_page_url: str = "",
    ticket_urls: str = "",
    personal_data: bool = False,
    services: list[str] | tuple[str, ...] = (),
    now: datetime | None = None,
) -> Incident:
    """Record a new incident and start its severity's response checklist."""
    require_perm(user, "ops.open_incident", "You may not open incidents.")
    now = now or timezone.now()
    level = _severity(severity)
    monitored = _monitored_services(services)
    if not level.is_active:
        raise ActionRefused(f"Severity {level.code} is no longer offered for new incidents.")
    texts = {
        "title": title,
        "affected_services": affected_services,
        "summary": summary,
        "customer_impact": customer_impact,
        "chat_url": chat_url,
        "status_page_url": status_page_url,
        "ticket_urls": ticket_urls,
    }
    texts = {field: _clean_text(field, value) for field, value in texts.items()}
    detected_at = detected_at or now
    started_at = started_at or detected_at
    _check_times({"started_at": started_at, "detected_at": detected_at}, now)
    incident = Incident(
        severity=level,
        commander=_commander(commander),
        started_at=started_at,
        detected_at=detected_at,
        personal_data=bool(personal_data),
        opened_by=user,
        created_at=now,
        updated_at=now,
        **texts,
    )
    incident.stamp_clocks()
    incident.save()
    detected = timezone.localtime(detected_at)
    _add_entry(
        incident,
        kind=TimelineKind.OPENED,
        text=f"Opened as {level} by {_name(user)}; detected {detected:%Y-%m-%d %H:%M}.",
        user=user,
        now=now,
    )
    if incident.commander:
        _add_entry(
            incident,
            kind=TimelineKind.COMMANDER,
            text=f"Commander: {incident.commander.get_username()}.",
            user=user,
            now=now,
        )
    if monitored:
        incident.services.set(monitored)
        _services_entry(incident, monitored, user=user, now=now)
    template = _response_template(level)
    if template is not None:
        run = checklist_services.checklist_run_start(
            template=template, user=user, label=incident.reference
        )
        ChecklistRun.objects.filter(pk=run.pk).update(incident=incident)
        _add_entry(
            incident,
            kind=TimelineKind.CHECKLIST,
            text=f"Response checklist started: {template.name} ({run.items_total} items).",
            user=user,
            now=now,
        )
    audit_record(
        actor=user,
        action="incident.open",
        target=incident,
        summary=f"{level.code}: {incident.title}",
        after=_snapshot(incident),
    )
    return incident


@transaction.atomic
def incident_update(
    *, incident: Incident, user, now: datetime | None = None, **changes: Any
) -> Incident:
    """Change details, times, severity or commander. Validates the whole result first; each
    change becomes a timeline entry. Changing severity or detection moves the clocks."""
    require_perm(user, "ops.update_incident", "You may not update incidents.")
    unknown = set(changes) - {*EDITABLE, "services"}
    if unknown:
        raise ActionRefused(f"Unknown fields: {', '.join(sorted(unknown))}.")
    now = now or timezone.now()
    incident = _locked(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is closed: it can no longer be changed.", status=409)
    before = _snapshot(incident)
    if "services" in changes:
        monitored = _monitored_services(changes.pop("services"))
        if {s.pk for s in monitored} != set(incident.services.values_list("pk", flat=True)):
            incident.services.set(monitored)
            _services_entry(incident, monitored, user=user, now=now)
            if not changes:
                _touch(incident, now)
                incident.save()
                audit_record(
                    actor=user,
                    action="incident.update",
                    target=incident,
                    summary="services",
                    before=before,
                    after=_snapshot(incident),
                )
                return incident
    new: dict[str, Any] = {}
    for field, value in changes.items():
        if field in TEXT_FIELDS:
            new[field] = _clean_text(field, value)
        elif field == "severity":
            new[field] = _severity(value if isinstance(value, str) else value.code)
        elif field == "commander":
            new[field] = _commander(value)
        elif field == "personal_data":
            new[field] = bool(value)
        else:
            new[field] = value
    times = {field: new.get(field, getattr(incident, field)) for field in TIME_FIELDS}
    _check_times(times, now)
    if times["acknowledged_at"] is None and incident.acknowledged_at is not None:
        raise ActionRefused("An acknowledgement cannot be removed; correct its time instead.")
    if times["resolved_at"] is not None and incident.status in OPEN_STATUSES:
        raise ActionRefused("Set the status to resolved to resolve the incident.")
    if times["resolved_at"] is None and incident.status == IncidentStatus.RESOLVED:
        raise ActionRefused("A resolved incident keeps its resolution time; reopen it instead.")

    changed = {field: value for field, value in new.items() if getattr(incident, field) != value}
    if not changed:
        return incident
    for field, value in changed.items():
        setattr(incident, field, value)
    if "acknowledged_at" in changed and incident.acknowledged_by is None:
        incident.acknowledged_by = user
    if "severity" in changed or "detected_at" in changed:
        incident.stamp_clocks()
    _touch(incident, now)
    incident.save()

    details = []
    for field, value in changed.items():
        if field == "severity":
            _add_entry(
                incident,
                kind=TimelineKind.SEVERITY,
                text=f"Severity changed from {before['severity']} to {value.code}.",
                user=user,
                now=now,
            )
        elif field == "commander":
            text = f"Commander: {value.get_username()}." if value else "No commander."
            _add_entry(incident, kind=TimelineKind.COMMANDER, text=text, user=user, now=now)
        elif field == "acknowledged_at":
            _add_entry(
                incident,
                kind=TimelineKind.ACKNOWLEDGED,
                text=f"Acknowledgement time set to {timezone.localtime(value):%Y-%m-%d %H:%M}.",
                user=user,
                now=now,
            )
        elif field in TIME_FIELDS:
            details.append(f"{TIME_LABELS[field]} {timezone.localtime(value):%Y-%m-%d %H:%M}")
        elif field == "personal_data":
            details.append("personal data involved" if value else "no personal data involved")
        else:
            details.append(f"{TEXT_FIELDS[field][0].lower()} edited")
    if details:
        text = "; ".join(details)
        _add_entry(
            incident,
            kind=TimelineKind.EDIT,
            text=f"{text[0].upper()}{text[1:]}.",
            user=user,
            now=now,
        )
    audit_record(
        actor=user,
        action="incident.update",
        target=incident,
        summary=", ".join(sorted(changed)),
        before=before,
        after=_snapshot(incident),
    )
    return incident


def _stamp_acknowledgement(incident: Incident, *, user, at: datetime, now: datetime, text: str):
    incident.acknowledged_at = at
    incident.acknowledged_by = user
    _add_entry(incident, kind=TimelineKind.ACKNOWLEDGED, text=text, user=user, now=now)


@transaction.atomic
def incident_acknowledge(
    *, incident: Incident, user, at: datetime | None = None, now: datetime | None = None
) -> Incident:
    """Someone has it: stops the response and escalation clocks."""
    require_perm(user, "ops.update_incident", "You may not acknowledge incidents.")
    now = now or timezone.now()
    at = at or now
    incident = _locked(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is closed: it can no longer be changed.", status=409)
    if incident.acknowledged_at is not None:
        raise ActionRefused(
            f"Already acknowledged by {_name(incident.acknowledged_by)} at "
            f"{timezone.localtime(incident.acknowledged_at):%H:%M}.",
            status=409,
        )
    _check_times(
        {
            "started_at": incident.started_at,
            "detected_at": incident.detected_at,
            "acknowledged_at": at,
        },
        now,
    )
    late = at > incident.response_due_at
    _stamp_acknowledgement(
        incident,
        user=user,
        at=at,
        now=now,
        text=f"Acknowledged by {_name(user)}, {duration(at - incident.detected_at)} after detection"
        + (" (past the response time)." if late else " (within the response time)."),
    )
    _touch(incident, now)
    incident.save()
    audit_record(
        actor=user, action="incident.acknowledge", target=incident, after=_snapshot(incident)
    )
    return incident


@transaction.atomic
def incident_set_status(
    *, incident: Incident, user, status: str, now: datetime | None = None
) -> Incident:
    """Move between investigating, identified, monitoring and resolved (closing is
    incident_close). Monitoring stamps the mitigation, resolved the resolution; resolving an
    unacknowledged incident stamps the acknowledgement too, and says so."""
    require_perm(user, "ops.update_incident", "You may not change the status of incidents.")
    if status == IncidentStatus.CLOSED:
        return incident_close(incident=incident, user=user, now=now)
    if status not in IncidentStatus.values:
        raise ActionRefused(f"Unknown status “{status}”.")
    now = now or timezone.now()
    incident = _locked(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is closed: it can no longer be changed.", status=409)
    if incident.status == status:
        raise ActionRefused(
            f"The incident is already {incident.get_status_display().lower()}.", status=409
        )
    before = _snapshot(incident)
    previous = incident.get_status_display()
    incident.status = status
    if status in (IncidentStatus.MONITORING, IncidentStatus.RESOLVED) and not incident.mitigated_at:
        incident.mitigated_at = now
    if status == IncidentStatus.RESOLVED:
        incident.resolved_at = now
        if incident.acknowledged_at is None:
            _stamp_acknowledgement(
                incident,
                user=user,
                at=now,
                now=now,
                text="Acknowledged on resolution: nobody had acknowledged it before.",
            )
    elif incident.resolved_at is not None:
        incident.resolved_at = None  # reopened
    _touch(incident, now)
    incident.save()
    _add_entry(
        incident,
        kind=TimelineKind.STATUS,
        text=f"Status changed from {previous} to {incident.get_status_display()}.",
        user=user,
        now=now,
    )
    audit_record(
        actor=user,
        action="incident.status",
        target=incident,
        summary=f"{before['status']} → {status}",
        before=before,
        after=_snapshot(incident),
    )
    return incident


def incident_resolve(*, incident: Incident, user, now: datetime | None = None) -> Incident:
    return incident_set_status(
        incident=incident, user=user, status=IncidentStatus.RESOLVED, now=now
    )


@transaction.atomic
def incident_close(*, incident: Incident, user, now: datetime | None = None) -> Incident:
    """A manager closes a resolved incident; a severity that requires a postmortem needs one
    with its summary, impact and root cause written."""
    require_perm(user, "ops.close_incident", "You may not close incidents.")
    now = now or timezone.now()
    incident = _locked(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is already closed.", status=409)
    if incident.status != IncidentStatus.RESOLVED:
        raise ActionRefused("Resolve the incident before closing it.", status=409)
    if incident.severity.postmortem_required:
        postmortem = Postmortem.objects.filter(incident=incident).first()
        if postmortem is None:
            raise ActionRefused(
                f"{incident.severity.code} incidents need a postmortem before they close; "
                "none has been written.",
                status=409,
            )
        missing = postmortem.missing_fields()
        if missing:
            raise ActionRefused(
                f"{incident.severity.code} incidents need a postmortem before they close; "
                f"it lacks: {', '.join(missing)}.",
                status=409,
            )
    before = _snapshot(incident)
    incident.status = IncidentStatus.CLOSED
    incident.closed_at = now
    incident.closed_by = user
    _touch(incident, now)
    incident.save()
    _add_entry(
        incident, kind=TimelineKind.STATUS, text=f"Closed by {_name(user)}.", user=user, now=now
    )
    audit_record(
        actor=user,
        action="incident.close",
        target=incident,
        before=before,
        after=_snapshot(incident),
    )
    return incident


@transaction.atomic
def incident_note_add(
    *,
    incident: Incident,
    user,
    text: str,
    corrects: int | None = None,
    now: datetime | None = None,
) -> TimelineEntry:
    """An operator's note; ``corrects`` names an earlier entry this one corrects (entries are
    never edited)."""
    require_perm(user, "ops.update_incident", "You may not add notes to incidents.")
    now = now or timezone.now()
    text = (text or "").strip()
    if not text:
        raise ActionRefused("Write the note first.")
    if len(text) > MAX_NOTE:
        raise ActionRefused(f"The note is too long ({len(text)} characters; at most {MAX_NOTE}).")
    incident = _locked(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is closed: it can no longer be changed.", status=409)
    corrected = None
    if corrects:
        corrected = incident.timeline.filter(pk=corrects).first()
        if corrected is None:
            raise ActionRefused("The entry to correct is not on this incident's timeline.")
    entry = _add_entry(
        incident, kind=TimelineKind.NOTE, text=text, user=user, now=now, corrects=corrected
    )
    _touch(incident, now)
    incident.save(update_fields=["version", "updated_at"])
    audit_record(
        actor=user,
        action="incident.note",
        target=incident,
        summary=text[:500],
        after={"corrects": corrected.pk if corrected else None},
    )
    return entry


def incident_timeline_add_checklist_tick(
    *, run: ChecklistRun, item: RunItem, user, now: datetime | None = None
) -> TimelineEntry | None:
    """Called by the checklist services after an item of an incident's response checklist
    changed state, inside their transaction (so the permission was checked there)."""
    if run.incident_id is None:
        return None
    now = now or timezone.now()
    incident = Incident.objects.select_for_update().get(pk=run.incident_id)
    verb = {"done": "Ticked", "open": "Unticked", "skipped": "Skipped"}[item.state]
    text = f"{verb}: {item.text_plain}"
    if item.state == "skipped" and item.skip_reason:
        text += f" (reason: {item.skip_reason})"
    if run.is_complete:
        text += ". Response checklist complete."
    entry = _add_entry(incident, kind=TimelineKind.CHECKLIST, text=text, user=user, now=now)
    _touch(incident, now)
    incident.save(update_fields=["version", "updated_at"])
    return entry


def postmortem_draft_timeline(*, incident: Incident) -> str:
    lines = []
    for entry in incident.timeline.order_by("created_at", "id"):
        when = timezone.localtime(entry.created_at)
        lines.append(f"{when:%Y-%m-%d %H:%M} {entry.author_name}: {entry.text}")
    return "\n".join(lines)


@transaction.atomic
def postmortem_save(
    *, incident: Incident, user, now: datetime | None = None, **fields: str
) -> Postmortem:
    """Create or edit the postmortem. A new one's timeline is pre-filled from the entries
    when it is not given."""
    require_perm(user, "ops.edit_postmortem", "You may not write postmortems.")
    unknown = set(fields) - set(POSTMORTEM_FIELDS)
    if unknown:
        raise ActionRefused(f"Unknown fields: {', '.join(sorted(unknown))}.")
    now = now or timezone.now()
    incident = _locked(incident)
    if incident.is_open:
        raise ActionRefused("Write the postmortem once the incident is resolved.", status=409)
    cleaned = {}
    for name, value in fields.items():
        value = (value or "").strip()
        if len(value) > MAX_TEXT:
            label = Postmortem._meta.get_field(name).verbose_name
            raise ActionRefused(
                f"{label} is too long ({len(value)} characters; at most {MAX_TEXT})."
            )
        cleaned[name] = value
    postmortem = Postmortem.objects.select_for_update().filter(incident=incident).first()
    created = postmortem is None
    if created:
        postmortem = Postmortem(incident=incident, created_at=now)
        if not cleaned.get("timeline"):
            cleaned["timeline"] = postmortem_draft_timeline(incident=incident)
    before = {name: getattr(postmortem, name) for name in POSTMORTEM_FIELDS}
    for name, value in cleaned.items():
        setattr(postmortem, name, value)
    postmortem.updated_at = now
    postmortem.updated_by = user
    postmortem.save()
    if not incident.is_closed:
        _add_entry(
            incident,
            kind=TimelineKind.POSTMORTEM,
            text="Postmortem started." if created else "Postmortem edited.",
            user=user,
            now=now,
        )
    _touch(incident, now)
    incident.save(update_fields=["version", "updated_at"])
    audit_record(
        actor=user,
        action="incident.postmortem." + ("create" if created else "edit"),
        target=postmortem,
        before=None if created else before,
        after={name: getattr(postmortem, name)[:200] for name in POSTMORTEM_FIELDS},
    )
    return postmortem


@transaction.atomic
def action_item_add(
    *, postmortem: Postmortem, user, text: str, owner, due_date: date | None
) -> ActionItem:
    require_perm(user, "ops.edit_postmortem", "You may not add action items.")
    text = (text or "").strip()
    if not text:
        raise ActionRefused("Say what has to be done.")
    if len(text) > MAX_ACTION:
        raise ActionRefused(
            f"The action is too long ({len(text)} characters; at most {MAX_ACTION})."
        )
    if owner in (None, ""):
        raise ActionRefused("Every action item needs an owner.")
    if not hasattr(owner, "pk"):
        owner = get_user_model().objects.filter(username=owner, is_active=True).first()
        if owner is None:
            raise ActionRefused("The owner must be an active user.")
    if due_date is None:
        raise ActionRefused("Every action item needs a due date.")
    item = ActionItem.objects.create(
        postmortem=postmortem, text=text, owner=owner, due_date=due_date
    )
    audit_record(
        actor=user,
        action="incident.action.add",
        target=item,
        summary=f"{owner.get_username()} by {due_date:%Y-%m-%d}: {text}"[:500],
    )
    return item


@transaction.atomic
def action_item_set_done(
    *, item: ActionItem, user, done: bool, now: datetime | None = None
) -> ActionItem:
    """Its owner, or anyone who may write postmortems, marks it done (or not done again)."""
    if user is not None and item.owner_id == user.pk:
        require_perm(user, "ops.update_incident", "You may not mark action items done.")
    else:
        require_perm(user, "ops.edit_postmortem", "Only its owner or a manager may mark this done.")
    item = ActionItem.objects.select_for_update().select_related("owner").get(pk=item.pk)
    if done == item.is_done:
        raise ActionRefused("Already done." if done else "It is not done.", status=409)
    item.done_at = (now or timezone.now()) if done else None
    item.done_by = user if done else None
    item.save(update_fields=["done_at", "done_by"])
    audit_record(
        actor=user, action="incident.action." + ("done" if done else "reopen"), target=item
    )
    return item


# Notifications


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
        f"Commander: {_name(incident.commander) if incident.commander else 'none'}\n"
        f"Affected services: {incident.affected_services or '—'}\n"
    )
    return subject, body


def _post_webhook(url: str, payload: dict) -> str:
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
        notification.webhook_status = _post_webhook(
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
            try:
                with transaction.atomic():
                    notification = IncidentNotification.objects.create(
                        incident=incident, step=step, created_at=now
                    )
                    _add_entry(
                        incident,
                        kind=TimelineKind.NOTIFICATION,
                        text=f"{NotificationStep(step).label} unacknowledged: notified.",
                        now=now,
                    )
                    Incident.objects.filter(pk=incident.pk).update(version=F("version") + 1)
                    audit_record(actor=None, action=f"incident.notify.{step}", target=incident)
            except IntegrityError:
                continue  # another scheduler claimed this step first
            _send(notification, incident, now)
            sent.append(notification)
    return sent
