"""Writes for an incident's life: open, update, acknowledge, change status, close, notes, and
the response checklist's ticks on its timeline (postmortems and notifications have their own
modules).

Every function checks its permission, validates everything before writing anything, runs in
one transaction, adds timeline entries for what changed and records the change in the audit
log. ``now`` is a parameter so the clocks can be tested with a controlled time."""

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ops.models import (
    ChecklistRun,
    ChecklistTemplate,
    Incident,
    IncidentStatus,
    Postmortem,
    RunItem,
    Severity,
    TimelineEntry,
    TimelineKind,
)
from ops.models.checklists import RunStatus
from ops.models.incidents import OPEN_STATUSES
from ops.services.checklists import checklist_run_cancel, checklist_run_start
from ops.services.gdpr_breach import breach_response_open
from ops.services.incident_rules import (
    EDITABLE,
    MAX_NOTE,
    TEXT_FIELDS,
    TIME_FIELDS,
    TIME_LABELS,
    commander_checked,
    conflicts_checked,
    incident_snapshot,
    monitored_services_named,
    person_name,
    severity_named,
    text_cleaned,
    times_checked,
)
from ops.services.status_cache import status_cache_bump
from portal.errors import ActionRefused
from portal.formatting import duration
from portal.permissions import require_perm
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)

RESPONSE_CHECKLIST_NAME = "Incident response checklist"


def incident_lock(incident: Incident) -> Incident:
    """The incident row, locked for this transaction, with what its rules read."""
    return (
        # Lock the incident row only: the commander is the nullable side of an outer join.
        Incident.objects.select_for_update(of=("self",))
        .select_related("severity", "commander")
        .get(pk=incident.pk)
    )


def _services_entry(incident: Incident, services: list, *, user, now: datetime) -> None:
    names = ", ".join(service.name for service in services) or "none"
    incident.add_entry(
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
    by_system: bool = False,
) -> Incident:
    """Record a new incident and start its severity's response checklist. ``by_system`` (with
    no user): the portal opens it itself, e.g. for a critical alert."""
    if not (by_system and user is None):
        require_perm(user, "ops.open_incident", "You may not open incidents.")
    now = now or timezone.now()
    level = severity_named(severity)
    monitored = monitored_services_named(services)
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
    texts = {field: text_cleaned(field, value) for field, value in texts.items()}
    detected_at = detected_at or now
    started_at = started_at or detected_at
    times_checked({"started_at": started_at, "detected_at": detected_at}, now)
    incident = Incident(
        severity=level,
        commander=commander_checked(commander),
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
    incident.add_entry(
        kind=TimelineKind.OPENED,
        text=f"Opened as {level} by {person_name(user)}; detected {detected:%Y-%m-%d %H:%M}.",
        user=user,
        now=now,
    )
    if incident.commander:
        incident.add_entry(
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
        run = checklist_run_start(
            template=template, user=user, label=incident.reference, by_system=by_system
        )
        ChecklistRun.objects.filter(pk=run.pk).update(incident=incident)
        incident.add_entry(
            kind=TimelineKind.CHECKLIST,
            text=f"Response checklist started: {template.name} ({run.items_total} items).",
            user=user,
            now=now,
        )
    if incident.personal_data:
        breach_response_open(incident=incident, user=user, now=now)
    audit_record(
        actor=user,
        action="incident.open",
        target=incident,
        summary=f"{level.code}: {incident.title}",
        after=incident_snapshot(incident),
    )
    return incident


@transaction.atomic
def incident_update(
    *,
    incident: Incident,
    user,
    now: datetime | None = None,
    version: int | None = None,
    opened: dict | None = None,
    **changes: Any,
) -> Incident:
    """Change details, times, severity or commander: only the fields in ``changes``. Validates
    the whole result first; each change becomes a timeline entry. Changing severity or
    detection moves the clocks. ``version`` (and ``opened``, the values the form showed) is
    what the form was opened at: see _check_conflicts."""
    require_perm(user, "ops.update_incident", "You may not update incidents.")
    unknown = set(changes) - {*EDITABLE, "services"}
    if unknown:
        raise ActionRefused(f"Unknown fields: {', '.join(sorted(unknown))}.")
    now = now or timezone.now()
    incident = incident_lock(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is closed: it can no longer be changed.", status=409)
    conflicts_checked(incident, version=version, opened=opened, changes=changes)
    before = incident_snapshot(incident)
    if "services" in changes:
        monitored = monitored_services_named(changes.pop("services"))
        if {s.pk for s in monitored} != set(incident.services.values_list("pk", flat=True)):
            incident.services.set(monitored)
            _services_entry(incident, monitored, user=user, now=now)
            if not changes:
                audit_record(
                    actor=user,
                    action="incident.update",
                    target=incident,
                    summary="services",
                    before=before,
                    after=incident_snapshot(incident),
                )
                return incident
    new: dict[str, Any] = {}
    for field, value in changes.items():
        if field in TEXT_FIELDS:
            new[field] = text_cleaned(field, value)
        elif field == "severity":
            new[field] = severity_named(value if isinstance(value, str) else value.code)
        elif field == "commander":
            new[field] = commander_checked(value)
        elif field == "personal_data":
            new[field] = bool(value)
        else:
            new[field] = value
    # A back-dated resolution moves a later mitigation back with it (never after resolution).
    resolved = new.get("resolved_at")
    mitigated, started = incident.mitigated_at, new.get("started_at", incident.started_at)
    if resolved and "mitigated_at" not in new and mitigated and started <= resolved < mitigated:
        new["mitigated_at"] = resolved
    times = {field: new.get(field, getattr(incident, field)) for field in TIME_FIELDS}
    times_checked(times, now)
    if times["acknowledged_at"] is None and incident.acknowledged_at is not None:
        raise ActionRefused(
            "An acknowledgement cannot be removed; correct its time instead.",
            field="acknowledged_at",
        )
    if times["resolved_at"] is not None and incident.status in OPEN_STATUSES:
        raise ActionRefused(
            "Set the status to resolved to resolve the incident.", field="resolved_at"
        )
    if times["resolved_at"] is None and incident.status == IncidentStatus.RESOLVED:
        raise ActionRefused(
            "A resolved incident keeps its resolution time; reopen it instead.",
            field="resolved_at",
        )

    changed = {field: value for field, value in new.items() if getattr(incident, field) != value}
    if not changed:
        return incident
    before_acknowledged = incident.acknowledged_at
    for field, value in changed.items():
        setattr(incident, field, value)
    if "acknowledged_at" in changed and incident.acknowledged_recorded_at is None:
        # A correction keeps what the clocks said: the time first recorded, or (for a time
        # entered by hand) that nobody had acknowledged it until now.
        incident.acknowledged_recorded_at = before_acknowledged or now
    if "acknowledged_at" in changed and incident.acknowledged_by is None:
        incident.acknowledged_by = user
    if "severity" in changed or "detected_at" in changed:
        incident.stamp_clocks()
    incident.save()

    details = []
    for field, value in changed.items():
        if field == "severity":
            incident.add_entry(
                kind=TimelineKind.SEVERITY,
                text=f"Severity changed from {before['severity']} to {value.code}.",
                user=user,
                now=now,
            )
        elif field == "commander":
            text = f"Commander: {value.get_username()}." if value else "No commander."
            incident.add_entry(kind=TimelineKind.COMMANDER, text=text, user=user, now=now)
        elif field == "acknowledged_at":
            at = f"{timezone.localtime(value):%Y-%m-%d %H:%M}"
            recorded = f"{timezone.localtime(incident.acknowledged_recorded_at):%Y-%m-%d %H:%M}"
            if before_acknowledged:
                text = f"Acknowledgement time corrected to {at} (recorded {recorded})."
            else:
                text = f"Acknowledgement time set to {at} (entered {recorded})."
            incident.add_entry(kind=TimelineKind.ACKNOWLEDGED, text=text, user=user, now=now)
        elif field in TIME_FIELDS and value is None:
            details.append(f"{TIME_LABELS[field]} cleared")
        elif field in TIME_FIELDS:
            details.append(f"{TIME_LABELS[field]} {timezone.localtime(value):%Y-%m-%d %H:%M}")
        elif field == "personal_data":
            details.append("personal data involved" if value else "no personal data involved")
        elif not value:
            details.append(f"{TEXT_FIELDS[field][0].lower()} cleared")
        else:
            details.append(f"{TEXT_FIELDS[field][0].lower()} edited")
    if details:
        text = "; ".join(details)
        incident.add_entry(
            kind=TimelineKind.EDIT,
            text=f"{text[0].upper()}{text[1:]}.",
            user=user,
            now=now,
        )
    if "personal_data" in changed and incident.personal_data:
        breach_response_open(incident=incident, user=user, now=now)
    audit_record(
        actor=user,
        action="incident.update",
        target=incident,
        summary=", ".join(sorted(changed)),
        before=before,
        after=incident_snapshot(incident),
    )
    return incident


def _stamp_acknowledgement(incident: Incident, *, user, at: datetime, now: datetime, text: str):
    incident.acknowledged_at = at
    incident.acknowledged_by = user
    incident.add_entry(kind=TimelineKind.ACKNOWLEDGED, text=text, user=user, now=now)


@transaction.atomic
def incident_acknowledge(
    *, incident: Incident, user, at: datetime | None = None, now: datetime | None = None
) -> Incident:
    """Someone has it: stops the response and escalation clocks."""
    require_perm(user, "ops.update_incident", "You may not acknowledge incidents.")
    now = now or timezone.now()
    at = at or now
    incident = incident_lock(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is closed: it can no longer be changed.", status=409)
    if incident.acknowledged_at is not None:
        raise ActionRefused(
            f"Already acknowledged by {person_name(incident.acknowledged_by)} at "
            f"{timezone.localtime(incident.acknowledged_at):%H:%M}.",
            status=409,
        )
    times_checked(
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
        text=f"Acknowledged by {person_name(user)}, "
        f"{duration(at - incident.detected_at)} after detection"
        + (" (past the response time)." if late else " (within the response time)."),
    )
    incident.save()
    audit_record(
        actor=user,
        action="incident.acknowledge",
        target=incident,
        after=incident_snapshot(incident),
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
    incident = incident_lock(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is closed: it can no longer be changed.", status=409)
    if incident.status == status:
        raise ActionRefused(
            f"The incident is already {incident.get_status_display().lower()}.", status=409
        )
    before = incident_snapshot(incident)
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
    incident.save()
    incident.add_entry(
        kind=TimelineKind.STATUS,
        text=f"Status changed from {previous} to {incident.get_status_display()}.",
        user=user,
        now=now,
    )
    if status == IncidentStatus.RESOLVED:
        incident_overrides_end(
            incident=incident, user=user, now=now, why="the incident is resolved"
        )
    audit_record(
        actor=user,
        action="incident.status",
        target=incident,
        summary=f"{before['status']} → {status}",
        before=before,
        after=incident_snapshot(incident),
    )
    return incident


def incident_overrides_end(*, incident: Incident, user, now: datetime, why: str) -> int:
    """The status page overrides set for this incident stop when it is resolved: each one
    ended says so on the timeline and in the audit log."""
    ended = list(
        incident.component_overrides.select_for_update()
        .filter(ended_at__isnull=True)
        .select_related("component")
    )
    if not ended:
        return 0
    incident.component_overrides.filter(pk__in=[o.pk for o in ended]).update(ended_at=now)
    for override in ended:
        override_end_recorded(incident=incident, override=override, user=user, now=now, why=why)
    status_cache_bump()
    return len(ended)


def override_end_recorded(*, incident: Incident, override, user, now: datetime, why: str) -> None:
    """The timeline entry and the audit entry of an override that ended."""
    incident.add_entry(
        kind=TimelineKind.NOTIFICATION,
        text=f"Status page: override of {override.component.name} "
        f"({override.get_state_display()}) ended: {why}.",
        user=user,
        now=now,
    )
    audit_record(
        actor=user,
        action="status.override_end",
        target=override.component,
        summary=f"{override.component.name}: override ended ({why})",
    )


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
    incident = incident_lock(incident)
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
    before = incident_snapshot(incident)
    # Its response checklist closes with it: a run nobody will finish must not stay open.
    cancelled = [
        checklist_run_cancel(
            run=run,
            user=user,
            reason=f"{incident.reference} was closed.",
            owner="incident",
            now=now,
        )
        for run in incident.checklist_runs.filter(status=RunStatus.OPEN).order_by("pk")
    ]
    incident.status = IncidentStatus.CLOSED
    incident.closed_at = now
    incident.closed_by = user
    incident.save()
    text = f"Closed by {person_name(user)}."
    for run in cancelled:
        text += (
            f" Response checklist cancelled with {run.open_count} of {run.items_total} "
            f"item{'s' if run.items_total != 1 else ''} open."
        )
    incident.add_entry(kind=TimelineKind.STATUS, text=text, user=user, now=now)
    audit_record(
        actor=user,
        action="incident.close",
        target=incident,
        before=before,
        after={**incident_snapshot(incident), "runs_cancelled": [run.pk for run in cancelled]},
    )
    return incident


@transaction.atomic
def incident_reopen(
    *, incident: Incident, user, reason: str, now: datetime | None = None
) -> Incident:
    """A closed incident is frozen; a manager reopens it (as resolved) to correct it, saying
    why. Its response checklist stays as it was when the incident closed."""
    require_perm(user, "ops.close_incident", "Only a manager may reopen a closed incident.")
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused("Say why you reopen the incident.")
    if len(reason) > MAX_NOTE:
        raise ActionRefused(f"The reason is too long ({len(reason)} characters; at most 5000).")
    now = now or timezone.now()
    incident = incident_lock(incident)
    if not incident.is_closed:
        raise ActionRefused("The incident is not closed.", status=409)
    before = incident_snapshot(incident)
    incident.status = IncidentStatus.RESOLVED
    incident.closed_at = None
    incident.closed_by = None
    incident.save()
    incident.add_entry(
        kind=TimelineKind.STATUS,
        text=f"Reopened by {person_name(user)} to correct it: {reason}",
        user=user,
        now=now,
    )
    audit_record(
        actor=user,
        action="incident.reopen",
        target=incident,
        summary=reason[:500],
        before=before,
        after=incident_snapshot(incident),
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
    incident = incident_lock(incident)
    if incident.is_closed:
        raise ActionRefused("This incident is closed: it can no longer be changed.", status=409)
    corrected = None
    if corrects:
        corrected = incident.timeline.filter(pk=corrects).first()
        if corrected is None:
            raise ActionRefused("The entry to correct is not on this incident's timeline.")
    entry = incident.add_entry(
        kind=TimelineKind.NOTE, text=text, user=user, now=now, corrects=corrected
    )
    audit_record(
        actor=user,
        action="incident.note",
        target=incident,
        summary=text[:500],
        after={"corrects": corrected.pk if corrected else None},
    )
    return entry


def incident_run_item_changed(
    *, run: ChecklistRun, item: RunItem, user, now: datetime | None = None
) -> TimelineEntry | None:
    """The checklist services call this (through the run owners registered in ops.apps)
    after an item of an incident's response checklist changed state, inside their
    transaction (so the permission was checked there)."""
    if run.incident_id is None:
        return None
    now = now or timezone.now()
    incident = Incident.objects.select_for_update().get(pk=run.incident_id)
    if incident.is_closed:
        return None  # frozen: incident_run_frozen refused the change before it was made
    verb = {"done": "Ticked", "open": "Unticked", "skipped": "Skipped"}[item.state]
    text = f"{verb}: {item.text_plain}"
    if item.state == "skipped" and item.skip_reason:
        text += f" (reason: {item.skip_reason})"
    if run.is_complete:
        text += ". Response checklist complete."
    entry = incident.add_entry(kind=TimelineKind.CHECKLIST, text=text, user=user, now=now)
    return entry


def incident_run_frozen(incident_id: int) -> str | None:
    """Asked by the checklist services before a response checklist changes: a closed
    incident's checklist is frozen. Locks the incident first (then the run is locked), the
    order incident_close keeps too."""
    incident = Incident.objects.select_for_update().only("pk", "status").get(pk=incident_id)
    if incident.is_closed:
        return (
            f"{incident.reference} is closed: its response checklist is frozen. "
            "A manager can reopen the incident to correct it."
        )
    return None
