"""Applying a runbook import plan: exactly what ``import_runbook --dry-run`` shows, in one
transaction.

The plan is computed before (``ops.selectors.runbooks.runbook_plan_build``), so the write
transaction only checks that nothing changed since and writes in bulk: on SQLite it holds the
write lock for the writes alone (well under a second for 2,000 checklists of 20,000 items)."""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db import IntegrityError, transaction
from django.utils import timezone

from ops.models import ChecklistItem, ChecklistSection, ChecklistTemplate, RunbookSource
from ops.runbooks.plan import CREATE, GONE, RETIRE, REVIVE, SourcePlan, TemplatePlan
from portal.errors import ActionRefused
from portal.services.audit import audit_record

BATCH = 500
TEMPLATE_UPDATE_FIELDS = [
    "name",
    "context",
    "description",
    "cadence",
    "weekdays_only",
    "due_time",
    "time_zone",
    "due_weekday",
    "due_day",
    "due_week",
    "estimated_minutes",
    "source_key",
    "imported",
    "is_active",
    "retired_at",
    "next_run_at",
    "updated_at",
]
ITEM_UPDATE_FIELDS = [
    "parent",
    "position",
    "section",
    "text",
    "command",
    "help_text",
    "imported",
]


class RunbookPlanStale(ActionRefused):
    """The sources or templates changed between the plan and its application."""


def runbook_plan_apply(*, plans: list[SourcePlan], user=None) -> list[SourcePlan]:
    """Write the plans of the sources that changed, all or nothing; one audit entry per source.
    Returns the plans applied (unchanged sources are skipped without a write)."""
    applied = [plan for plan in plans if plan.writes]
    if not applied:
        return []
    now = timezone.now()
    try:
        with transaction.atomic():
            _check_still_current(applied)
            sources = _save_sources(applied, user=user, now=now)
            for plan in applied:
                _apply_templates(plan, source=sources[plan.name], now=now)
            for plan in applied:
                source = sources[plan.name]
                audit_record(
                    actor=user,
                    action="runbook.import",
                    target=source,
                    summary=plan.summary(),
                    before={"sha256": plan.previous_sha256},
                    after={"sha256": plan.sha256, **plan.counts()},
                )
    except IntegrityError as error:
        raise RunbookPlanStale(
            f"The checklists changed while importing ({error}); nothing was imported. "
            "Run the import again."
        ) from error
    return applied


def _check_still_current(plans: list[SourcePlan]) -> None:
    """Refuse when another import or an admin changed what the plan was made from."""
    names = [plan.name for plan in plans]
    hashes = dict(RunbookSource.objects.filter(name__in=names).values_list("name", "sha256"))
    for plan in plans:
        known = plan.source_id is not None
        if known != (plan.name in hashes) or (known and hashes[plan.name] != plan.previous_sha256):
            raise RunbookPlanStale(
                f"{plan.name}: imported by someone else since the plan was made; nothing was "
                "imported. Run the import again."
            )
    planned = {
        template.template_id: template.updated_at
        for plan in plans
        for template in plan.templates
        if template.template_id is not None and not template.is_noop
    }
    stamps = ChecklistTemplate.objects.filter(pk__in=planned).values_list("pk", "updated_at")
    for pk, updated_at in stamps:
        if updated_at.isoformat() != planned[pk]:
            raise RunbookPlanStale(
                f"Checklist #{pk} was edited since the plan was made; nothing was imported. "
                "Run the import again."
            )


def _save_sources(plans: list[SourcePlan], *, user, now) -> dict[str, RunbookSource]:
    existing = {s.name: s for s in RunbookSource.objects.filter(name__in=[p.name for p in plans])}
    new = [RunbookSource(name=plan.name) for plan in plans if plan.name not in existing]
    for source in RunbookSource.objects.bulk_create(new):
        existing[source.name] = source
    for plan in plans:
        source = existing[plan.name]
        # A gone source forgets its hash: if its file comes back, it is planned again.
        source.sha256 = "" if plan.status == GONE else plan.sha256
        source.imported_at = now
        source.imported_by = user if user is not None and user.is_authenticated else None
        source.last_plan = plan.as_dict()
    RunbookSource.objects.bulk_update(
        list(existing.values()), ["sha256", "imported_at", "imported_by", "last_plan"]
    )
    return existing


def _template_fields(template: ChecklistTemplate, plan: TemplatePlan) -> None:
    for name, value in plan.values.items():
        if name == "due_time":
            value = datetime.time.fromisoformat(value)
        setattr(template, name, value)
    template.imported = plan.imported
    template.source_key = plan.key


def _apply_templates(plan: SourcePlan, *, source: RunbookSource, now) -> None:
    changing = [t for t in plan.templates if not t.is_noop]
    existing = ChecklistTemplate.objects.in_bulk([t.template_id for t in changing if t.template_id])
    created: list[tuple[TemplatePlan, ChecklistTemplate]] = []
    updated: list[ChecklistTemplate] = []
    # Keys are unique per source: a key that passes from one template to another (a duplicate
    # heading, a rename) is released first.
    if any(t.template_id for t in changing):
        ChecklistTemplate.objects.filter(pk__in=list(existing)).update(source_key="")
    for template_plan in changing:
        if template_plan.action == CREATE:
            template = ChecklistTemplate(source=source, slug=template_plan.slug, created_at=now)
            _template_fields(template, template_plan)
            created.append((template_plan, template))
            continue
        template = existing[template_plan.template_id]
        if template_plan.action == RETIRE:
            template.retired_at = now
            template.is_active = False
        else:
            _template_fields(template, template_plan)
            if template_plan.action == REVIVE:
                template.retired_at = None
                template.is_active = True
        # bulk_update() skips save(): what save() does for every edit is done here.
        template.next_run_at = None
        template.updated_at = now
        updated.append(template)
    ChecklistTemplate.objects.bulk_create([template for _, template in created], batch_size=BATCH)
    ChecklistTemplate.objects.bulk_update(updated, TEMPLATE_UPDATE_FIELDS, batch_size=BATCH)
    by_id = {template.pk: template for template in updated}
    to_sync = [(template_plan, template) for template_plan, template in created] + [
        (template_plan, by_id[template_plan.template_id])
        for template_plan in changing
        if template_plan.action != RETIRE
        and template_plan.action != CREATE
        and template_plan.items_changed
    ]
    _apply_items(to_sync)


def _apply_items(templates: list[tuple[TemplatePlan, ChecklistTemplate]]) -> None:
    """Sections, then new items a level at a time (a child needs its parent's key), then the
    kept items that moved or changed, then the removed ones (their runs keep their copies)."""
    sections = _apply_sections(templates)
    rows_by_depth: dict[int, list[tuple[ChecklistItem, int | None, list]]] = defaultdict(list)
    to_update: list[tuple[ChecklistItem, int | None, list]] = []
    delete_ids: list[int] = []
    for template_plan, template in templates:
        made: list[ChecklistItem] = []
        for row in template_plan.rows:
            item = ChecklistItem(
                id=row.row_id,
                template=template,
                position=row.position,
                section=sections.get((template.pk, row.section)),
                imported=row.imported,
                **row.values,
            )
            made.append(item)
            entry = (item, row.parent, made)
            if row.row_id is None:
                rows_by_depth[row.depth].append(entry)
            elif row.write:
                to_update.append(entry)
        delete_ids += template_plan.delete_item_ids
    for depth in sorted(rows_by_depth):
        batch = rows_by_depth[depth]
        for item, parent, made in batch:
            item.parent = made[parent] if parent is not None else None
        ChecklistItem.objects.bulk_create([item for item, _, _ in batch], batch_size=BATCH)
    for item, parent, made in to_update:
        item.parent = made[parent] if parent is not None else None
    ChecklistItem.objects.bulk_update(
        [item for item, _, _ in to_update], ITEM_UPDATE_FIELDS, batch_size=BATCH
    )
    if delete_ids:
        ChecklistItem.objects.filter(pk__in=delete_ids).delete()


def _apply_sections(
    templates: list[tuple[TemplatePlan, ChecklistTemplate]],
) -> dict[tuple[int, str], ChecklistSection]:
    ids = [template.pk for _, template in templates]
    existing: dict[tuple[int, str], ChecklistSection] = {
        (section.template_id, section.title): section
        for section in ChecklistSection.objects.filter(template_id__in=ids)
    }
    wanted: dict[tuple[int, str], ChecklistSection] = {}
    new: list[ChecklistSection] = []
    moved: list[ChecklistSection] = []
    for template_plan, template in templates:
        for position, title in enumerate(template_plan.sections):
            section = existing.get((template.pk, title))
            if section is None:
                section = ChecklistSection(template=template, title=title, position=position)
                new.append(section)
            elif section.position != position:
                section.position = position
                moved.append(section)
            wanted[(template.pk, title)] = section
    ChecklistSection.objects.bulk_create(new, batch_size=BATCH)
    ChecklistSection.objects.bulk_update(moved, ["position"], batch_size=BATCH)
    unused = [section.pk for key, section in existing.items() if key not in wanted]
    if unused:
        ChecklistSection.objects.filter(pk__in=unused).delete()
    return wanted
