"""Turning parsed Markdown runbooks into checklist templates, updated in place on re-import."""

from dataclasses import dataclass, field

from django.db import transaction
from django.utils.text import slugify

from ops.models import ChecklistItem, ChecklistTemplate
from ops.runbooks.parser import ParsedChecklist, ParsedItem
from portal.services.audit import audit_record

PATH_SEPARATOR = " › "
MAX_TEXT = ChecklistItem._meta.get_field("text").max_length


@dataclass
class ImportReport:
    created: list[ChecklistTemplate] = field(default_factory=list)
    updated: list[ChecklistTemplate] = field(default_factory=list)


def _source_keys(checklists: list[ParsedChecklist]) -> list[str]:
    """A key per checklist that stays the same across re-imports of one file: its heading path,
    numbered when one file repeats the same path."""
    seen: dict[str, int] = {}
    keys = []
    for checklist in checklists:
        key = PATH_SEPARATOR.join([*checklist.path, checklist.title])[:480]
        seen[key] = seen.get(key, 0) + 1
        keys.append(key if seen[key] == 1 else f"{key} #{seen[key]}")
    return keys


def _unique_slug(title: str) -> str:
    base = slugify(title)[:200] or "checklist"
    slug, number = base, 1
    while ChecklistTemplate.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug


def _sync_items(
    template: ChecklistTemplate, parsed: list[ParsedItem], parent: ChecklistItem | None
) -> None:
    """Make the template's children of ``parent`` match ``parsed``: an item whose text is still
    there keeps its row (and what links to it); new ones are added, missing ones removed."""
    existing = list(template.items.filter(parent=parent).order_by("position", "id"))
    unused = list(existing)
    for position, source in enumerate(parsed):
        text = source.text[:MAX_TEXT]
        match = next((item for item in unused if item.text == text), None)
        if match is None:
            match = ChecklistItem(template=template, parent=parent, text=text)
        else:
            unused.remove(match)
        match.position = position
        match.command = source.command
        match.help_text = source.help_text
        match.save()
        _sync_items(template, source.children, match)
    for leftover in unused:
        leftover.delete()


@transaction.atomic
def runbook_import(
    *, source_file: str, checklists: list[ParsedChecklist], user=None
) -> ImportReport:
    """Create or update one template per checklist of one runbook file. Past runs keep their
    own copies of the items, so they are untouched."""
    report = ImportReport()
    for key, parsed in zip(_source_keys(checklists), checklists, strict=True):
        template = ChecklistTemplate.objects.filter(source_file=source_file, source_key=key).first()
        created = template is None
        if created:
            template = ChecklistTemplate(
                source_file=source_file, source_key=key, slug=_unique_slug(parsed.title)
            )
        template.name = parsed.title[:200]
        template.context = PATH_SEPARATOR.join(parsed.path)[:300]
        template.cadence = parsed.cadence
        if parsed.due_time is not None:
            template.due_time = parsed.due_time
        template.estimated_minutes = parsed.estimated_minutes
        template.save()
        _sync_items(template, parsed.items, None)
        (report.created if created else report.updated).append(template)
        audit_record(
            actor=user,
            action="checklist.template.import",
            target=template,
            summary=f"{'Created' if created else 'Updated'} from {source_file}",
            after={"cadence": template.cadence, "items": template.items.count()},
        )
    return report
