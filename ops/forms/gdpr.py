"""Forms of data-subject requests: they parse what the browser sends; the services decide
and refuse with a message shown beside its field."""

from django import forms
from django.contrib.auth import get_user_model

from ops.forms.incidents import _time_field
from ops.models.gdpr import Channel, RejectionReason, RequestKind, SubjectNotice
from portal.errors import ActionRefused


class _RefusalForm(forms.Form):
    template_name_div = "django/forms/div.html"

    def add_refusal(self, refused: ActionRefused) -> None:
        field = refused.field if refused.field in self.fields else None
        self.add_error(field, refused.message)


def _handlers():
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(groups__permissions__codename="handle_datasubjectrequest")
        .distinct()
        .order_by("username")
    )


class RequestReceiveForm(_RefusalForm):
    # Plain text with a list: the service names a type that does not exist.
    kind = forms.CharField(
        label="Type", widget=forms.Select(choices=[("", "—"), *RequestKind.choices])
    )
    subject_email = forms.CharField(label="Subject's e-mail", max_length=254)
    subject_keys = forms.CharField(
        label="Other identifiers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Customer number, account id…, one a line or comma-separated.",
    )
    subject_name = forms.CharField(label="Subject's name", required=False, max_length=200)
    channel = forms.CharField(widget=forms.Select(choices=Channel.choices), initial=Channel.EMAIL)
    received_at = _time_field("Received")
    due_at = _time_field("Due")
    details = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    assignee = forms.ModelChoiceField(queryset=None, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["received_at"].help_text += " Empty: now."
        self.fields["due_at"].help_text += " Empty: one month after receipt (art. 12(3))."
        self.fields["assignee"].queryset = _handlers()


class VerifyForm(_RefusalForm):
    method = forms.CharField(
        label="Verification method",
        required=False,
        help_text="e.g. confirmation link sent to the account's e-mail address",
    )
    evidence = forms.CharField(
        label="Evidence note", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class ExtendForm(_RefusalForm):
    months = forms.CharField(
        label="Extend by (months)", widget=forms.Select(choices=[("1", "1"), ("2", "2")])
    )
    reason = forms.CharField(label="Reason", required=False, max_length=2000)
    communicated = forms.BooleanField(
        label="The reason was communicated to the subject", required=False
    )


class RejectForm(_RefusalForm):
    reason = forms.CharField(widget=forms.Select(choices=[("", "—"), *RejectionReason.choices]))
    note = forms.CharField(required=False, max_length=2000)


class LegalHoldForm(_RefusalForm):
    reason = forms.CharField(label="Legal hold reason", required=False, max_length=2000)


class AssignForm(_RefusalForm):
    assignee = forms.ModelChoiceField(queryset=None, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = _handlers()


class BreachForm(_RefusalForm):
    authority_notified_at = _time_field("Supervisory authority notified")
    authority_reference = forms.CharField(
        label="Authority's reference", required=False, max_length=200
    )
    authority_note = forms.CharField(label="Notification note", required=False, max_length=500)
    subjects_decision = forms.CharField(
        label="Data subjects (art. 34)", widget=forms.Select(choices=SubjectNotice.choices)
    )
    subjects_notified_at = _time_field("Data subjects told")
    subjects_note = forms.CharField(
        label="Why, or how they were told", required=False, max_length=500
    )
