"""Alert forms: rules, channels, rotations, escalation policies and silences. Each bad input
gets its message beside its field; nothing is saved until every field is right."""

import os
import re

import apprise
from django import forms
from django.contrib.auth import get_user_model

from ops.forms.incidents import LOCAL_MINUTE, LocalDateTimeInput
from ops.models import (
    AlertRule,
    EscalationPolicy,
    NotificationChannel,
    OnCallSchedule,
    Silence,
)

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
STEP_LINE = re.compile(r"^\s*(\d+)\s+(schedule|user|channel)\s*:\s*(.+?)\s*$", re.IGNORECASE)


class AlertRuleForm(forms.ModelForm):
    template_name_div = "django/forms/div.html"

    class Meta:
        model = AlertRule
        fields = [
            "name",
            "source",
            "kpi",
            "service",
            "comparison",
            "threshold",
            "window_minutes",
            "for_minutes",
            "severity",
            "action",
            "playbook",
            "policy",
        ]
        labels = {"for_minutes": "For (minutes)", "window_minutes": "Window (minutes)"}


class ChannelForm(forms.ModelForm):
    """An Apprise URL by the name of the variable that holds it, or stored (never shown
    back: the field is always empty on the page)."""

    template_name_div = "django/forms/div.html"
    url_secret = forms.CharField(
        label="Apprise URL",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored, never shown again. Or leave empty and name a variable above.",
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "url_env", "url_secret"]
        labels = {"url_env": "Environment variable"}

    def clean(self):
        data = super().clean()
        env, secret = data.get("url_env", "").strip(), data.get("url_secret", "").strip()
        if env and secret:
            self.add_error("url_secret", "Give the variable's name or the URL, not both.")
            return data
        if not env and not secret:
            self.add_error("url_env", "Name the environment variable, or enter the URL below.")
            return data
        if env:
            if not ENV_NAME.match(env):
                self.add_error(
                    "url_env", "A variable name: capitals, digits and _, e.g. ALERTS_URL."
                )
                return data
            url, field = os.environ.get(env, ""), "url_env"
            if not url:
                self.add_error("url_env", f"${env} is not set in the portal's environment.")
                return data
        else:
            url, field = secret, "url_secret"
        if not apprise.Apprise().add(url):
            self.add_error(
                field,
                "Apprise cannot read this URL: see its list of services (e.g. "
                "json://host/path, mailto://…, slack://…).",
            )
        data["url_env"], data["url_secret"] = env, secret
        return data


class ScheduleForm(forms.ModelForm):
    template_name_div = "django/forms/div.html"
    people = forms.CharField(
        help_text="User names in rotation order, comma-separated, e.g. ann, bob.",
        required=False,
    )

    class Meta:
        model = OnCallSchedule
        fields = [
            "name",
            "role",
            "time_zone",
            "handoff",
            "handoff_time",
            "handoff_weekday",
            "starts_on",
        ]
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}),
            "handoff_time": forms.TimeInput(attrs={"type": "time"}),
        }

    def clean_people(self):
        names = [name.strip() for name in self.cleaned_data["people"].split(",") if name.strip()]
        if not names:
            raise forms.ValidationError("A rotation needs at least one person.")
        users = {u.get_username(): u for u in get_user_model().objects.filter(username__in=names)}
        unknown = [name for name in names if name not in users]
        if unknown:
            raise forms.ValidationError(f"No such user: {', '.join(unknown)}.")
        return [users[name] for name in names]


class PolicyForm(forms.ModelForm):
    template_name_div = "django/forms/div.html"
    steps = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="One a line: minutes, then schedule:NAME, user:NAME or channel:NAME, "
        "e.g. “0 schedule:Primary”, “5 user:lead”.",
    )

    class Meta:
        model = EscalationPolicy
        fields = ["name", "repeat_every_minutes", "repeat_times"]

    def clean(self):
        data = super().clean()
        text = data.get("steps") or ""
        every = data.get("repeat_every_minutes")
        parsed, errors = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            match = STEP_LINE.match(line)
            if not match:
                errors.append(f"Line {number}: write “minutes kind:name”.")
                continue
            minutes, kind, name = int(match[1]), match[2].lower(), match[3]
            if every is not None and minutes >= every:
                errors.append(
                    f"Line {number}: after {minutes} min comes at or after the repeat at "
                    f"{every} min, so it would never run."
                )
                continue
            target = _target(kind, name)
            if target is None:
                errors.append(f"Line {number}: no {kind} named “{name}”.")
                continue
            parsed.append((minutes, kind, target, name))
        if not parsed and not errors:
            errors.append("Give at least one step.")
        if errors:
            self.add_error("steps", errors)
        data["parsed_steps"] = parsed
        return data


def _target(kind: str, name: str):
    if kind == "schedule":
        return OnCallSchedule.objects.filter(name=name).first()
    if kind == "channel":
        return NotificationChannel.objects.filter(name=name, owner__isnull=True).first()
    return get_user_model().objects.filter(username=name).first()


class SilenceForm(forms.ModelForm):
    template_name_div = "django/forms/div.html"
    starts_at = forms.DateTimeField(widget=LocalDateTimeInput(), input_formats=[LOCAL_MINUTE])
    ends_at = forms.DateTimeField(widget=LocalDateTimeInput(), input_formats=[LOCAL_MINUTE])

    class Meta:
        model = Silence
        fields = ["service", "rule", "starts_at", "ends_at", "reason"]
