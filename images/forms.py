"""The upload form: a name, a preset and many files. The service checks the files themselves
(count, size, header), so that the page and the API refuse the same things in the same words."""

from django import forms

from images.models import Preset
from images.selectors import presets_offered


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class BatchUploadForm(forms.Form):
    name = forms.CharField(
        label="Batch name",
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Spring catalogue"}),
    )
    preset = forms.ModelChoiceField(
        label="Preset", queryset=Preset.objects.none(), empty_label=None
    )
    files = MultipleFileField(
        label="Images",
        required=False,  # the service says "Choose at least one image." like the API does
        widget=MultipleFileInput(
            attrs={"accept": "image/jpeg,image/png,image/gif,image/webp,image/avif"}
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["preset"].queryset = presets_offered()
