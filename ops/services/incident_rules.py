"""What an incident's fields may hold, checked before anything is written: severities,
commanders, texts and links, the order of the clocks, the monitored services named, and the
optimistic concurrency of the edit form (a conflict says what changed meanwhile)."""

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone

from ops.models import Incident, MonitoredService, Severity
from portal.errors import ActionRefused

MAX_TITLE = 200
MAX_SERVICES = 300
MAX_TEXT = 20_000
MAX_NOTE = 5_000
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


def person_name(user) -> str:
    return user.get_username() if user is not None else "system"


def severity_named(code: str) -> Severity:
    code = (code or "").strip()
    if not code:
        raise ActionRefused("Choose a severity.", field="severity")
    severity = Severity.objects.filter(code__iexact=code).first()
    if severity is None:
        known = ", ".join(Severity.objects.filter(is_active=True).values_list("code", flat=True))
        raise ActionRefused(
            f"There is no severity “{code}”; choose one of {known}.", field="severity"
        )
    return severity


def commander_checked(value) -> Any:
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


def text_cleaned(field: str, value: str | None) -> str:
    label, limit = TEXT_FIELDS[field]
    value = (value or "").strip()
    if field == "title" and not value:
        raise ActionRefused("Give the incident a title.", field="title")
    if len(value) > limit:
        raise ActionRefused(
            f"{label} is too long ({len(value)} characters; at most {limit}).", field=field
        )
    if field in URL_FIELDS and value:
        _check_url(label, value, field)
    if field == "ticket_urls":
        for line in value.splitlines():
            if line.strip():
                _check_url(label, line.strip(), field)
    return value


def _check_url(label: str, value: str, field: str) -> None:
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        message = f"{label}: “{value}” is not an http(s) link."
        raise ActionRefused(message, field=field) from None


def times_checked(values: dict[str, datetime | None], now: datetime) -> None:
    """The order the clocks must follow; the first broken rule is the message."""
    for field in TIME_FIELDS:
        moment = values.get(field)
        if moment is not None and timezone.is_naive(moment):
            raise ActionRefused(f"{TIME_LABELS[field]} needs a time zone.", field=field)
        if moment is not None and moment > now + CLOCK_SKEW:
            raise ActionRefused(f"{TIME_LABELS[field]} is in the future.", field=field)
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
            raise ActionRefused(message, field=later)


def incident_snapshot(incident: Incident) -> dict:
    return {
        "status": incident.status,
        "severity": incident.severity.code,
        "commander": incident.commander.get_username() if incident.commander else None,
        **{
            field: getattr(incident, field) and getattr(incident, field).isoformat()
            for field in TIME_FIELDS
        },
    }


def monitored_services_named(slugs) -> list:
    """The monitored services named by slug; an unknown one is refused by name."""
    wanted = list(dict.fromkeys(str(slug).strip() for slug in slugs if str(slug).strip()))
    found = {service.slug: service for service in MonitoredService.objects.filter(slug__in=wanted)}
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise ActionRefused(f"No monitored service “{missing[0]}”.")
    return [found[slug] for slug in wanted]


def _comparable(field: str, value) -> Any:
    """A field's value in one form whatever gave it (the incident, a form, a caller): text
    stripped, severity and commander by name, times to the minute (as a form shows them)."""
    if field in TEXT_FIELDS:
        return (value or "").strip()
    if field == "severity":
        code = value.code if hasattr(value, "code") else (value or "")
        return code.strip().upper()
    if field == "commander":
        return value.get_username() if hasattr(value, "get_username") else (value or "")
    if field == "personal_data":
        return bool(value)
    if field == "services":
        return sorted({str(slug).strip() for slug in value or () if str(slug).strip()})
    if field in TIME_FIELDS:
        if value is None:
            return None
        return timezone.localtime(value).replace(second=0, microsecond=0)
    return value


def _shown(field: str, value) -> str:
    """A value as the conflict message shows it."""
    if value in (None, "", []):
        return "empty"
    if field in TIME_FIELDS:
        return f"{value:%Y-%m-%d %H:%M}"
    if field == "personal_data":
        return "yes" if value else "no"
    if field == "services":
        return ", ".join(value)
    text = str(value)
    return f"“{text[:80]}{'…' if len(text) > 80 else ''}”"


FIELD_LABELS = {
    **{field: label for field, (label, _limit) in TEXT_FIELDS.items()},
    **TIME_LABELS,
    "severity": "Severity",
    "commander": "Commander",
    "personal_data": "Personal data",
    "services": "Affected monitored services",
}


class EditConflict(ActionRefused):
    """The incident changed since the form was opened, in a field the user changed too."""

    def __init__(self, message: str, *, changed: dict[str, str]):
        super().__init__(message, status=409)
        self.changed = changed


def conflicts_checked(
    incident: Incident, *, version: int | None, opened: dict | None, changes: dict
) -> None:
    """Optimistic concurrency: a form carries the version it was opened at and the values it
    showed. When the incident moved on since, a field the user changed that somebody else
    changed too (to something else) refuses the whole save, saying what changed meanwhile."""
    if version is None or version == incident.version:
        return
    current = {field: getattr(incident, field) for field in EDITABLE}
    current["services"] = list(incident.services.values_list("slug", flat=True))
    meanwhile = {
        field: _comparable(field, value)
        for field, value in current.items()
        if opened is not None
        and field in opened
        and _comparable(field, value) != _comparable(field, opened[field])
    }
    conflicts = [
        field
        for field, new in changes.items()
        if (opened is None or field in meanwhile)
        and _comparable(field, current[field]) != _comparable(field, new)
    ]
    if not conflicts:
        return
    if opened is None:
        meanwhile = {field: _comparable(field, current[field]) for field in conflicts}
    said = "; ".join(
        f"{FIELD_LABELS[field]} is now {_shown(field, value)}" for field, value in meanwhile.items()
    )
    raise EditConflict(
        f"Somebody changed this incident while you were editing it: {said}. "
        "Your changes are still in the form: check them against these and save again.",
        changed={field: _shown(field, value) for field, value in meanwhile.items()},
    )
