"""Runbook sources: the Markdown files checklist templates are imported from."""

from django.conf import settings
from django.db import models


class RunbookSource(models.Model):
    """One runbook file, named by its path relative to the root it was imported from (or by
    ``import_runbook --source NAME``). Written only by the importer; never deleted, so the
    templates it defined keep their origin even when the file is gone."""

    name = models.CharField(max_length=255, unique=True)
    root = models.CharField(
        max_length=500,
        blank=True,
        help_text="The directory its name is relative to, on the machine that imported it last. "
        "Importing that directory again retires the checklists of files gone from it.",
    )
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the file last imported.")
    imported_at = models.DateTimeField(null=True, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_plan = models.JSONField(
        null=True, blank=True, help_text="What the last import changed, as it was shown."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
