"""The public update form of an incident (what customers read on the status page)."""

from django import forms

from ops.models import ComponentState, PublicStatus
from ops.services.status import MAX_MESSAGE, MAX_REASON, MAX_TITLE
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


class SubscribeForm(forms.Form):
    """The e-mail subscription form of the public page; the components are checkboxes the
    template lists (their slugs), checked by the service with the address."""

    email = forms.CharField(
        label="E-mail address",
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}),
    )


class OverrideForm(forms.Form):
    """A component's state set by hand for the length of an incident (the incident page)."""

    component = forms.ChoiceField(
        label="Component",
        error_messages={
            "invalid_choice": "No component on the status page is called “%(value)s”.",
            "required": "Choose the component.",
        },
    )
    state = forms.ChoiceField(
        label="Show it as",
        choices=ComponentState.choices,
        error_messages={"invalid_choice": "“%(value)s” is not a component state."},
    )
    reason = forms.CharField(
        label="Why the derived state is wrong",
        max_length=MAX_REASON,
        error_messages={"required": "Say why the derived state is wrong."},
        help_text="Recorded on the timeline and in the audit log; not shown to customers.",
    )

    def __init__(self, *args, components: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.components = {component.slug: component for component in components}
        self.fields["component"].choices = [("", "Choose…")] + [
            (component.slug, component.name) for component in components
        ]

    def add_refusal(self, refused: ActionRefused) -> None:
        field = refused.field if refused.field in self.fields else None
        self.add_error(field, refused.message)
