"""Forms of maintenance tasks and windows: the friendly recurrence picker, local times in the
chosen IANA zone, and every bad input as an error beside its field."""

from datetime import datetime, timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from ops import recurrence
from ops.models import ChecklistTemplate, MaintenanceTask, MonitoredService
from ops.models.maintenance import DueFrom, Impact
from ops.recurrence import NTH_NAMES, PICKER_KINDS, WEEKDAY_NAMES, WEEKDAYS, Picker
from ops.services.maintenance import WindowInput, task_schedule_problems, window_problems

WEEKDAY_CHOICES = list(zip(WEEKDAYS, WEEKDAY_NAMES, strict=True))
LOCAL_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class SchedulePicker(forms.Form):
    """The recurrence picker; ``rule()`` is the RRULE it describes."""

    repeat_required = True
    kind = forms.ChoiceField(label="Repeats", choices=list(PICKER_KINDS.items()))
    interval = forms.IntegerField(label="Every", min_value=1, max_value=366, initial=1)
    weekdays = forms.MultipleChoiceField(
        label="On", choices=WEEKDAY_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )
    month_day = forms.IntegerField(
        label="Day of the month",
        min_value=-1,
        max_value=31,
        initial=1,
        required=False,
        help_text="1-31, or -1 for the last day.",
    )
    nth = forms.TypedChoiceField(
        label="Which", choices=list(NTH_NAMES.items()), coerce=int, initial=1, required=False
    )
    weekday = forms.ChoiceField(label="Weekday", choices=WEEKDAY_CHOICES, required=False)
    month = forms.IntegerField(label="Month", min_value=1, max_value=12, initial=1, required=False)
    custom_rrule = forms.CharField(
        label="RRULE",
        required=False,
        max_length=500,
        help_text="RFC 5545, e.g. FREQ=WEEKLY;BYDAY=SU",
    )

    PICKER_FIELDS = (
        "kind",
        "interval",
        "weekdays",
        "month_day",
        "nth",
        "weekday",
        "month",
        "custom_rrule",
    )

    def _bound(self, names) -> list:
        return [self[name] for name in names]

    @property
    def picker_fields(self) -> list:
        return self._bound(self.PICKER_FIELDS)

    def picked_rule(self) -> str:
        data = self.cleaned_data
        try:
            return recurrence.build_rule(
                Picker(
                    kind=data.get("kind") or "weekly",
                    interval=data.get("interval") or 1,
                    weekdays=tuple(data.get("weekdays") or ()),
                    month_day=data.get("month_day") or 1,
                    nth=data.get("nth") or 1,
                    weekday=data.get("weekday") or "MO",
                    month=data.get("month") or 1,
                    custom=data.get("custom_rrule") or "",
                )
            )
        except recurrence.RecurrenceError as error:
            self.add_error("custom_rrule" if data.get("kind") == "custom" else "kind", str(error))
            return ""


def _picker_initial(rule: str) -> dict:
    """The picker's fields for a stored rule: the friendly kind when it is one, else custom."""
    parts = dict(part.split("=", 1) for part in rule.upper().split(";") if "=" in part)
    freq, interval = parts.get("FREQ"), int(parts.get("INTERVAL", "1") or 1)
    byday, monthday = parts.get("BYDAY", ""), parts.get("BYMONTHDAY", "")
    simple = set(parts) <= {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH"}
    if simple and freq == "DAILY" and not byday:
        return {"kind": "daily", "interval": interval}
    if simple and freq == "WEEKLY" and not monthday:
        return {"kind": "weekly", "interval": interval, "weekdays": byday.split(",")}
    if simple and freq == "MONTHLY" and byday[-2:] in WEEKDAYS and byday[:-2].lstrip("+-"):
        return {
            "kind": "monthly_nth",
            "interval": interval,
            "nth": int(byday[:-2]),
            "weekday": byday[-2:],
        }
    if simple and freq == "MONTHLY" and monthday.lstrip("-").isdigit():
        kind = {3: "quarterly", 6: "half_yearly"}.get(interval, "monthly_day")
        return {
            "kind": kind,
            "interval": 1 if kind != "monthly_day" else interval,
            "month_day": int(monthday),
        }
    if simple and freq == "YEARLY" and monthday and parts.get("BYMONTH", "").isdigit():
        return {
            "kind": "yearly",
            "interval": interval,
            "month": int(parts["BYMONTH"]),
            "month_day": int(monthday),
        }
    return {"kind": "custom", "custom_rrule": rule}


def _aware(value: datetime | None, zone_name: str) -> datetime | None:
    """A datetime-local value read on the chosen zone's wall clock."""
    if value is None:
        return None
    return value.replace(tzinfo=None).replace(tzinfo=recurrence.zone(zone_name), fold=0)


def _zone_error(name: str) -> str | None:
    try:
        recurrence.zone(name)
    except recurrence.RecurrenceError as error:
        return str(error)
    return None


class MaintenanceTaskForm(SchedulePicker):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    first_due = forms.DateTimeField(
        label="First due", widget=LOCAL_INPUT, help_text="Local time in the time zone below."
    )
    time_zone = forms.CharField(max_length=64, initial="UTC", help_text="IANA, e.g. Europe/Berlin")
    due_from = forms.ChoiceField(label="Next due counts from", choices=DueFrom.choices)
    team = forms.CharField(max_length=100, required=False)
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False)
    checklist_template = forms.ModelChoiceField(
        label="Checklist", queryset=ChecklistTemplate.objects.none(), required=False
    )

    MAIN_FIELDS = (
        "name",
        "description",
        "team",
        "owner",
        "checklist_template",
        "first_due",
        "time_zone",
        "due_from",
    )

    @property
    def main_fields(self) -> list:
        return self._bound(self.MAIN_FIELDS)

    def __init__(self, *args, task: MaintenanceTask | None = None, **kwargs):
        if task is not None and "initial" not in kwargs:
            tz = recurrence.zone(task.time_zone)
            kwargs["initial"] = {
                "name": task.name,
                "description": task.description,
                "team": task.team,
                "owner": task.owner_id,
                "checklist_template": task.checklist_template_id,
                "first_due": task.first_due_at.astimezone(tz).replace(tzinfo=None),
                "time_zone": task.time_zone,
                "due_from": task.due_from,
                **_picker_initial(task.rrule),
            }
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = (
            get_user_model().objects.filter(is_active=True).order_by("username")
        )
        self.fields["checklist_template"].queryset = ChecklistTemplate.objects.filter(
            is_active=True
        )

    def clean(self):
        data = super().clean()
        rule = self.picked_rule()
        zone_error = _zone_error(data.get("time_zone", ""))
        if zone_error:
            self.add_error("time_zone", zone_error)
            return data
        first = _aware(data.get("first_due"), data["time_zone"])
        if rule and first is not None:
            problems = task_schedule_problems(
                rrule=rule, first_due_at=first, time_zone=data["time_zone"]
            )
            for field, message in problems.items():
                self.add_error(
                    {
                        "rrule": "custom_rrule" if data.get("kind") == "custom" else "kind",
                        "first_due_at": "first_due",
                    }.get(field, field),
                    message,
                )
        data["rrule"], data["first_due_at"] = rule, first
        return data

    def service_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "description": data["description"],
            "rrule": data["rrule"],
            "first_due_at": data["first_due_at"],
            "time_zone": data["time_zone"],
            "due_from": data["due_from"],
            "team": data["team"],
            "owner": data["owner"],
            "checklist_template": data["checklist_template"],
        }


class MaintenanceWindowForm(SchedulePicker):
    title = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    repeats = forms.BooleanField(label="Recurring", required=False)
    starts = forms.DateTimeField(label="Starts", widget=LOCAL_INPUT)
    ends = forms.DateTimeField(label="Ends", widget=LOCAL_INPUT)
    time_zone = forms.CharField(max_length=64, initial="UTC", help_text="IANA, e.g. Europe/Berlin")
    services = forms.ModelMultipleChoiceField(
        label="Affected services",
        queryset=MonitoredService.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    impact = forms.ChoiceField(choices=Impact.choices, initial=Impact.DEGRADED)
    rollback_plan = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    team = forms.CharField(max_length=100, required=False)
    is_emergency = forms.BooleanField(
        label="Emergency (24 h notice, postmortem afterwards)", required=False
    )
    forbids_deploys = forms.BooleanField(
        label="Change freeze: forbids deploys",
        required=False,
        help_text="No deploy to production while it is in progress (a Manager may override).",
    )
    pre_template = forms.ModelChoiceField(
        label="Pre-maintenance checklist",
        queryset=ChecklistTemplate.objects.none(),
        required=False,
    )
    pre_lead_minutes = forms.IntegerField(
        label="Open it this many minutes before", min_value=0, max_value=7 * 24 * 60, initial=60
    )
    post_template = forms.ModelChoiceField(
        label="Post-maintenance checklist",
        queryset=ChecklistTemplate.objects.none(),
        required=False,
    )
    notice_hours = forms.CharField(
        label="Announce this many hours before", initial="72, 24, 1", max_length=100
    )
    is_public = forms.BooleanField(
        label="Show on the public status page",
        required=False,
        help_text="Ahead of time with its announcement, and while in progress.",
    )
    announcement = forms.CharField(
        label="Public announcement",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What customers read on the status page.",
    )
    override_reason = forms.CharField(
        label="Notice override reason (Manager)", required=False, max_length=500
    )
    overlap_reason = forms.CharField(label="Overlap reason", required=False, max_length=500)

    MAIN_FIELDS = ("title", "description", "starts", "ends", "time_zone", "repeats")
    DETAIL_FIELDS = (
        "services",
        "impact",
        "is_emergency",
        "forbids_deploys",
        "rollback_plan",
        "team",
        "pre_template",
        "pre_lead_minutes",
        "post_template",
        "notice_hours",
        "is_public",
        "announcement",
    )
    REASON_FIELDS = ("override_reason", "overlap_reason")

    @property
    def main_fields(self) -> list:
        return self._bound(self.MAIN_FIELDS)

    @property
    def detail_fields(self) -> list:
        return self._bound(self.DETAIL_FIELDS)

    @property
    def reason_fields(self) -> list:
        return self._bound(self.REASON_FIELDS)

    def __init__(self, *args, user=None, now: datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.now = user, now or timezone.now()
        self.fields["services"].queryset = MonitoredService.objects.filter(is_active=True)
        templates = ChecklistTemplate.objects.filter(is_active=True)
        self.fields["pre_template"].queryset = templates
        self.fields["post_template"].queryset = templates
        self.fields["pre_template"].initial = templates.filter(
            name__icontains="pre-maintenance"
        ).first()
        self.fields["post_template"].initial = templates.filter(
            name__icontains="post-maintenance"
        ).first()
        self.warnings: dict = {}

    def clean_notice_hours(self) -> list[int]:
        raw = self.cleaned_data["notice_hours"]
        try:
            hours = sorted(
                {int(part) for part in raw.replace(";", ",").split(",") if part.strip()},
                reverse=True,
            )
        except ValueError:
            raise forms.ValidationError(
                "Give whole hours separated by commas, e.g. 72, 24, 1."
            ) from None
        if any(hour < 1 or hour > 24 * 30 for hour in hours):
            raise forms.ValidationError("Each announcement is 1 to 720 hours before the start.")
        return hours

    def clean(self):
        data = super().clean()
        rule = self.picked_rule() if data.get("repeats") else ""
        zone_error = _zone_error(data.get("time_zone", ""))
        if zone_error:
            self.add_error("time_zone", zone_error)
            return data
        if data.get("is_public") and not (data.get("announcement") or "").strip():
            self.add_error(
                "announcement", "A window on the status page needs an announcement customers read."
            )
        if data.get("is_emergency") and not (data.get("rollback_plan") or "").strip():
            self.add_error("rollback_plan", "An emergency window needs a rollback plan.")
        starts = _aware(data.get("starts"), data["time_zone"])
        ends = _aware(data.get("ends"), data["time_zone"])
        data.update(rrule=rule, starts_at=starts, ends_at=ends)
        if self.errors or starts is None or ends is None:
            return data
        errors, warnings = window_problems(
            data=self.window_input(),
            now=self.now,
            override_reason=data.get("override_reason", ""),
            overlap_reason=data.get("overlap_reason", ""),
            user=self.user,
        )
        fields = {
            "rrule": "custom_rrule" if data.get("kind") == "custom" else "kind",
            "starts_at": "starts",
            "ends_at": "ends",
        }
        for field, message in [*errors.items(), *warnings.items()]:
            self.add_error(fields.get(field, field), message)
        self.warnings = warnings
        return data

    def window_input(self) -> WindowInput:
        data = self.cleaned_data
        return WindowInput(
            title=data["title"],
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            time_zone=data["time_zone"],
            rrule=data["rrule"],
            services=tuple(data.get("services") or ()),
            is_emergency=data["is_emergency"],
        )

    def details(self) -> dict:
        data = self.cleaned_data
        return {
            "description": data["description"],
            "impact": data["impact"],
            "rollback_plan": data["rollback_plan"],
            "team": data["team"],
            "pre_template": data["pre_template"],
            "post_template": data["post_template"],
            "pre_lead": timedelta(minutes=data["pre_lead_minutes"]),
            "notice_hours": data["notice_hours"],
            "is_public": data["is_public"],
            "forbids_deploys": data["forbids_deploys"],
            "announcement": data["announcement"].strip(),
        }
