"""The public update form of an incident (what customers read on the status page)."""

from django import forms

from ops.models import PublicStatus
from ops.services.status import MAX_MESSAGE, MAX_TITLE
from portal.errors import ActionRefused


class PublicUpdateForm(forms.Form):
    title = forms.CharField(
        label="Public title",
        required=False,
        max_length=MAX_TITLE,
        help_text="What customers read; never the internal title. Empty: keep the current one.",
    )
    status = forms.ChoiceField(
        label="Status",
        choices=PublicStatus.choices,
        error_messages={
            "invalid_choice": "Choose investigating, identified, monitoring or "
            "resolved (“%(value)s” is none of them)."
        },
    )
    message = forms.CharField(
        label="Message",
        max_length=MAX_MESSAGE,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": "Write the message customers will read."},
        help_text="Public: write for customers. No internal names, hosts or people.",
    )

    def add_refusal(self, refused: ActionRefused) -> None:
        field = refused.field if refused.field in self.fields else None
        self.add_error(field, refused.message)
