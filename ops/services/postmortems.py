"""Writes for postmortems and their action items. A postmortem is written once the incident
is resolved; severities that require one keep the incident from closing until it is."""

from datetime import date, datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ops.models import ActionItem, Incident, Postmortem, TimelineKind
from ops.services.incident_rules import MAX_TEXT
from ops.services.incidents import incident_lock
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record

MAX_ACTION = 500
POSTMORTEM_FIELDS = ("summary", "impact", "timeline", "root_cause", "went_well", "went_badly")


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
    incident = incident_lock(incident)
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
    if incident.is_closed:
        incident.bump_version(now=now)
    else:
        incident.add_entry(
            kind=TimelineKind.POSTMORTEM,
            text="Postmortem started." if created else "Postmortem edited.",
            user=user,
            now=now,
        )
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
