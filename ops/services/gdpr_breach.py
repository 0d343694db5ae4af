"""Breaches: an incident that involves personal data runs the "Data breach response"
checklist, its steps due at their offsets from detection (the runbook's timeline: isolate at
once, assess by 15 min, security and legal by 30 min, forensics by 1 h, user notice prepared
by 4 h, regulators by 24 h, report by 48 h), and records the supervisory-authority
notification against the 72-hour deadline (art. 33) and whether and when the data subjects
were told (art. 34)."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from ops.models import BreachRecord, ChecklistItem, ChecklistRun, ChecklistTemplate, Incident
from ops.models.gdpr import SubjectNotice
from ops.models.incidents import TimelineKind
from ops.services.checklists import checklist_run_start
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record

BREACH_CHECKLIST_NAME = "Data breach response"
# The runbook's timeline (seed 004), by the first words of the default checklist's items.
DEFAULT_OFFSETS = {
    "Contain the breach": 0,
    "Establish which data and which people": 15,
    "Tell the security lead and legal": 30,
    "Preserve evidence": 60,
    "Inform affected users": 240,
    "Notify the supervisory authority": 24 * 60,
    "Write the report": 48 * 60,
}


def breach_offsets_default() -> int:
    """Give the default breach checklist's items their due offsets, where none has one yet
    (an admin's own offsets are kept). Returns how many items got one."""
    items = ChecklistItem.objects.filter(
        template__name__iexact=BREACH_CHECKLIST_NAME, due_after_minutes__isnull=True
    )
    if ChecklistItem.objects.filter(
        template__name__iexact=BREACH_CHECKLIST_NAME, due_after_minutes__isnull=False
    ).exists():
        return 0
    count = 0
    for item in items:
        for words, minutes in DEFAULT_OFFSETS.items():
            if item.text.startswith(words):
                ChecklistItem.objects.filter(pk=item.pk).update(due_after_minutes=minutes)
                count += 1
    return count


def _template() -> ChecklistTemplate | None:
    return (
        ChecklistTemplate.objects.filter(name__iexact=BREACH_CHECKLIST_NAME, is_active=True)
        .order_by("id")
        .first()
    )


def breach_response_open(*, incident: Incident, user, now: datetime) -> ChecklistRun | None:
    """Called inside the transaction that opens an incident, or marks one as involving
    personal data: the breach record, and the breach checklist once per incident."""
    BreachRecord.objects.get_or_create(incident=incident, defaults={"updated_at": now})
    template = _template()
    if template is None or incident.checklist_runs.filter(template=template).exists():
        return None
    run = checklist_run_start(template=template, user=user, label=incident.reference)
    ChecklistRun.objects.filter(pk=run.pk).update(incident=incident)
    # Steps are due from detection, not from when the run was opened.
    for item in run.items.filter(template_item__due_after_minutes__isnull=False).select_related(
        "template_item"
    ):
        item.due_at = incident.detected_at + timedelta(minutes=item.template_item.due_after_minutes)
        item.save(update_fields=["due_at"])
    deadline = timezone.localtime(incident.detected_at + timedelta(hours=72))
    incident.add_entry(
        kind=TimelineKind.CHECKLIST,
        text=f"Personal data involved: {template.name} started ({run.items_total} items, "
        f"authority notification due {deadline:%Y-%m-%d %H:%M}).",
        user=user,
        now=now,
    )
    return run


def _moment(value: datetime | None, label: str, field: str, incident: Incident, now: datetime):
    if value is None:
        return None
    if value > now + timedelta(minutes=5):
        raise ActionRefused(f"{label} cannot be in the future.", field=field)
    if value < incident.started_at:
        raise ActionRefused(f"{label} is before the incident started.", field=field)
    return value


@transaction.atomic
def breach_record_update(
    *,
    incident: Incident,
    user,
    authority_notified_at: datetime | None,
    authority_reference: str = "",
    authority_note: str = "",
    subjects_decision: str = SubjectNotice.UNDECIDED,
    subjects_notified_at: datetime | None = None,
    subjects_note: str = "",
    now: datetime | None = None,
) -> BreachRecord:
    require_perm(user, "ops.change_breachrecord", "You may not record breach notifications.")
    now = now or timezone.now()
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if not incident.personal_data:
        raise ActionRefused(f"{incident.reference} is not marked as involving personal data.")
    record = BreachRecord.objects.select_for_update().get_or_create(
        incident=incident, defaults={"updated_at": now}
    )[0]
    authority_notified_at = _moment(
        authority_notified_at, "The authority notification", "authority_notified_at", incident, now
    )
    authority_reference = (authority_reference or "").strip()[:200]
    if authority_notified_at and not authority_reference:
        raise ActionRefused(
            "Give the authority's reference (case number) of the notification.",
            field="authority_reference",
        )
    if subjects_decision not in SubjectNotice.values:
        raise ActionRefused(f"Unknown decision “{subjects_decision}”.", field="subjects_decision")
    subjects_notified_at = _moment(
        subjects_notified_at, "The subjects' notification", "subjects_notified_at", incident, now
    )
    subjects_note = (subjects_note or "").strip()[:500]
    if subjects_decision == SubjectNotice.NOTIFIED and subjects_notified_at is None:
        raise ActionRefused("Say when the data subjects were told.", field="subjects_notified_at")
    if subjects_decision != SubjectNotice.NOTIFIED and subjects_notified_at is not None:
        raise ActionRefused(
            "A time the subjects were told goes with the decision that they were told.",
            field="subjects_decision",
        )
    if subjects_decision == SubjectNotice.NOT_REQUIRED and not subjects_note:
        raise ActionRefused(
            "Say why telling the data subjects is not required (art. 34(3)).",
            field="subjects_note",
        )
    fields = {
        "authority_notified_at": authority_notified_at,
        "authority_reference": authority_reference,
        "authority_note": (authority_note or "").strip()[:500],
        "subjects_decision": subjects_decision,
        "subjects_notified_at": subjects_notified_at,
        "subjects_note": subjects_note,
    }
    before = {name: _plain(getattr(record, name)) for name in fields}
    for name, value in fields.items():
        setattr(record, name, value)
    record.updated_at = now
    record.save()
    after = {name: _plain(value) for name, value in fields.items()}
    changed = [name for name in fields if before[name] != after[name]]
    if changed:
        parts = []
        if "authority_notified_at" in changed and authority_notified_at:
            late = "" if record.authority_in_time else ", past the 72-hour deadline"
            at = timezone.localtime(authority_notified_at)
            reference = f"ref. {authority_reference}{late}"
            parts.append(f"supervisory authority notified {at:%Y-%m-%d %H:%M} ({reference})")
        if "subjects_decision" in changed or "subjects_notified_at" in changed:
            parts.append(f"data subjects: {SubjectNotice(subjects_decision).label.lower()}")
        text = "; ".join(parts) or "breach notification record edited"
        incident.add_entry(
            kind=TimelineKind.NOTIFICATION, text=f"{text[0].upper()}{text[1:]}.", user=user, now=now
        )
        audit_record(
            actor=user, action="gdpr.breach.update", target=record, before=before, after=after
        )
    return record


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value
