"""Incident forms: they parse what a browser sends (text, local times, dates); the services
decide what is allowed and refuse with a message, which the views show on the form."""

from datetime import datetime

from django import forms
from django.http import QueryDict
from django.utils import timezone

from ops.models import IncidentStatus, MonitoredService
from ops.selectors.incidents import IncidentFilters, incident_responders, severities_all
from portal.errors import ActionRefused
from portal.params import parse_day

LOCAL_MINUTE = "%Y-%m-%dT%H:%M"


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=LOCAL_MINUTE, **kwargs)


def _local_minute(value: datetime | None) -> datetime | None:
    """Initial values to the minute, as a datetime-local field shows them, so an untouched
    field does not count as changed."""
    if value is None:
        return None
    return timezone.localtime(value).replace(second=0, microsecond=0)


def _time_field(label: str, required: bool = False) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=required,
        widget=LocalDateTimeInput(),
        input_formats=[LOCAL_MINUTE, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        help_text=f"Local time ({timezone.get_current_timezone_name()}).",
    )


class _IncidentFields(forms.Form):
    """Errors show once, beside their field (the template renders field groups, and the
    non-field errors once above them); the first field with an error gets the focus."""

    template_name_div = "django/forms/div.html"

    title = forms.CharField(max_length=200)
    # A plain text field with a list: the service names a severity that does not exist.
    severity = forms.CharField(widget=forms.Select)
    commander = forms.CharField(required=False, widget=forms.Select)
    affected_services = forms.CharField(
        required=False, max_length=300, help_text="Comma-separated, e.g. api, login."
    )
    summary = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    customer_impact = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    chat_url = forms.CharField(required=False, label="Chat channel link")
    status_page_url = forms.CharField(required=False, label="Status page link")
    ticket_urls = forms.CharField(
        required=False,
        label="Ticket links",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One link per line.",
    )
    personal_data = forms.BooleanField(required=False, label="Personal data is involved")
    # Slugs; the service refuses one that does not exist.
    services = forms.MultipleChoiceField(
        required=False,
        label="Affected monitored services",
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["services"].choices = [
            (slug, name)
            for slug, name in MonitoredService.objects.order_by("name").values_list("slug", "name")
        ]
        # No default: the person opening an incident chooses its severity.
        self.fields["severity"].widget.choices = [("", "Choose a severity")] + [
            (s.code, f"{s.code} – {s.name}") for s in severities_all() if s.is_active
        ]
        self.fields["severity"].error_messages["required"] = "Choose a severity."
        self.fields["commander"].widget.choices = [("", "Nobody yet")] + [
            (user.username, user.get_username()) for user in incident_responders()
        ]

    def add_error(self, field, error) -> None:
        super().add_error(field, error)
        first = next((name for name in self.fields if name in self.errors), None)
        for name, form_field in self.fields.items():
            form_field.widget.attrs.pop("autofocus", None)
            if name == first:
                form_field.widget.attrs["autofocus"] = True

    def add_refusal(self, refused: ActionRefused) -> None:
        """A service's refusal beside the field it is about, or above the form."""
        field = refused.field if refused.field in self.fields else None
        self.add_error(field, refused.message)


class IncidentOpenForm(_IncidentFields):
    started_at = _time_field("Started")
    detected_at = _time_field("Detected")

    field_order = ["title", "severity", "started_at", "detected_at", "commander"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["started_at"].help_text += " Empty: when it was detected."
        self.fields["detected_at"].help_text += " Empty: now."


class IncidentEditForm(_IncidentFields):
    """Carries the version it was opened at and, hidden beside each field, the value it showed
    (Django's show_hidden_initial): a save sends only what the user changed, and the service
    refuses it when somebody else changed the same field meanwhile."""

    started_at = _time_field("Started", required=True)
    detected_at = _time_field("Detected", required=True)
    acknowledged_at = _time_field("Acknowledged")
    mitigated_at = _time_field("Mitigated")
    resolved_at = _time_field("Resolved")
    version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)

    field_order = ["title", "severity", "commander"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offer only what can be saved: an acknowledgement can be corrected, not removed, and
        # the resolution time exists once the status (set on the incident's page) is resolved.
        if self.initial.get("acknowledged_at"):
            field = self.fields["acknowledged_at"]
            field.required = True
            field.error_messages["required"] = (
                "An acknowledgement cannot be removed; correct its time instead."
            )
            field.help_text += " A correction keeps the time first recorded."
        if self.initial.get("resolved_at"):
            self.fields["resolved_at"].required = True
            self.fields["resolved_at"].error_messages["required"] = (
                "A resolved incident keeps its resolution time; reopen it instead."
            )
            self.fields["resolved_at"].help_text += " An earlier Mitigated moves back with it."
        else:
            del self.fields["resolved_at"]
        for name, field in self.fields.items():
            field.show_hidden_initial = name != "version"

    @classmethod
    def for_incident(cls, incident, data=None) -> "IncidentEditForm":
        return cls(data, initial=cls.initial_for(incident))

    @classmethod
    def rebased(cls, data: QueryDict, incident) -> "IncidentEditForm":
        """The user's values kept, on top of the incident as it is now: the next save is
        checked against this version (after a conflict the user has seen what changed)."""
        fresh = cls.initial_for(incident)
        data = data.copy()
        probe = cls(initial=fresh)
        for name, field in probe.fields.items():
            if name == "version":
                continue
            key = probe.add_initial_prefix(name)
            if isinstance(field, forms.MultipleChoiceField):
                data.setlist(key, list(fresh[name]))
            else:
                data[key] = field.hidden_widget().format_value(fresh[name]) or ""
        data["version"] = str(incident.version)
        return cls(data, initial=fresh)

    def changes(self) -> dict:
        """What the user changed in this form (compared with what it showed, not with what
        the incident holds now)."""
        return {name: self.cleaned_data[name] for name in self.changed_data if name != "version"}

    def opened(self) -> dict:
        """The values the form showed when it was opened, for the fields the user changed."""
        values = {}
        for name in self.changes():
            field = self.fields[name]
            widget = field.hidden_widget()
            raw = widget.value_from_datadict(self.data, self.files, self.add_initial_prefix(name))
            try:
                values[name] = field.to_python(raw)
            except forms.ValidationError:
                values[name] = None
        return values

    @classmethod
    def initial_for(cls, incident) -> dict:
        return {
            "title": incident.title,
            "severity": incident.severity.code,
            "commander": incident.commander.username if incident.commander else "",
            "affected_services": incident.affected_services,
            "services": list(incident.services.values_list("slug", flat=True)),
            "summary": incident.summary,
            "customer_impact": incident.customer_impact,
            "chat_url": incident.chat_url,
            "status_page_url": incident.status_page_url,
            "ticket_urls": incident.ticket_urls,
            "personal_data": incident.personal_data,
            "started_at": _local_minute(incident.started_at),
            "detected_at": _local_minute(incident.detected_at),
            "acknowledged_at": _local_minute(incident.acknowledged_at),
            "mitigated_at": _local_minute(incident.mitigated_at),
            "resolved_at": _local_minute(incident.resolved_at),
            "version": incident.version,
        }


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[(value, label) for value, label in IncidentStatus.choices if value != "closed"]
    )


class PostmortemForm(forms.Form):
    summary = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    impact = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    timeline = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text="Pre-filled from the incident's timeline; edit freely.",
    )
    root_cause = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    went_well = forms.CharField(
        required=False, label="What went well", widget=forms.Textarea(attrs={"rows": 3})
    )
    went_badly = forms.CharField(
        required=False, label="What went badly", widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class ActionItemForm(forms.Form):
    text = forms.CharField(label="Action", max_length=500)
    owner = forms.CharField(widget=forms.Select)
    due_date = forms.DateField(label="Due", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        kwargs.setdefault("auto_id", "action_%s")
        super().__init__(*args, **kwargs)
        self.fields["owner"].widget.choices = [("", "Choose")] + [
            (user.username, user.get_username()) for user in incident_responders()
        ]


def incident_filters_from(params: QueryDict) -> tuple[IncidentFilters, list[str]]:
    """The incident list's filters from a query string, with what could not be read."""
    errors: list[str] = []
    filters = IncidentFilters(
        severity=params.get("severity", "").strip(),
        status=params.get("status", "").strip(),
        service=params.get("service", "").strip(),
        commander=params.get("commander", "").strip(),
        since=parse_day(params.get("since", "").strip(), "From", errors),
        until=parse_day(params.get("until", "").strip(), "To", errors),
        q=params.get("q", "").strip(),
    )
    if filters.status and filters.status not in {"open", *IncidentStatus.values}:
        errors.append(f"Unknown status “{filters.status}”.")
        filters.status = ""
    if filters.since and filters.until and filters.since > filters.until:
        errors.append("From must not be after To.")
    return filters, errors
