"""Applying a runbook import plan: exactly what ``import_runbook --dry-run`` shows, in one
transaction.

The plan is computed before (``ops.selectors.runbooks.runbook_plan_build``) and the rows it
writes are built before the transaction opens too, so the transaction only checks that nothing
changed since and writes in bulk: on SQLite it holds the write lock for the writes alone (under
two seconds for 2,000 checklists of 20,000 items, see bench/runbook_import.py)."""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db import IntegrityError, transaction
from django.utils import timezone

from ops.models import ChecklistItem, ChecklistSection, ChecklistTemplate, RunbookSource
from ops.runbooks.plan import (
    CREATE,
    GONE,
    RETIRE,
    REVIVE,
    TEMPLATE_FIELDS,
    SourcePlan,
    TemplatePlan,
)
from portal.errors import ActionRefused
from portal.services.audit import audit_record

BATCH = 500
# What an apply may write on a template: the fields its source decides, and the import's own.
TEMPLATE_UPDATE_FIELDS = [*TEMPLATE_FIELDS, "source_key", "imported", "is_active", "retired_at"]


class RunbookPlanStale(ActionRefused):
    """The sources or templates changed between the plan and its application."""


def runbook_plan_apply(*, plans: list[SourcePlan], user=None) -> list[SourcePlan]:
    """Write the plans of the sources that changed, all or nothing; one audit entry per source.
    Returns the plans applied (unchanged sources are skipped without a write)."""
    applied = [plan for plan in plans if plan.writes]
    if not applied:
        return []
    now = timezone.now()
    actor = user if user is not None and user.is_authenticated else None
    writes = _Writes.prepare(applied, user=actor, now=now)
    try:
        with transaction.atomic():
            _check_still_current(applied)
            sources = writes.save(now=now)
            for plan in applied:
                audit_record(
                    actor=user,
                    action="runbook.import",
                    target=sources[plan.name],
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
    # Locked until the commit (PostgreSQL; SQLite's write lock is already held): a second
    # import of the same sources waits here, then finds them changed and refuses.
    hashes = dict(
        RunbookSource.objects.select_for_update()
        .filter(name__in=names)
        .values_list("name", "sha256")
    )
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


class _Writes:
    """Every row an import writes, built (and the rows it changes read) before the transaction,
    so that inside it only the inserts, updates and deletes run."""

    def __init__(self) -> None:
        self.sources: dict[str, RunbookSource] = {}
        self.new_sources: list[RunbookSource] = []
        self.created: list[ChecklistTemplate] = []
        self.updated: dict[tuple[str, ...], list[ChecklistTemplate]] = defaultdict(list)
        self.released: list[int] = []  # templates whose key may pass to another
        self.new_sections: list[ChecklistSection] = []
        self.moved_sections: list[ChecklistSection] = []
        self.unused_sections: list[int] = []
        self.new_items: dict[int, list[ChecklistItem]] = defaultdict(list)  # by depth
        # Kept items that change, grouped by the columns that do: an update of one column
        # compiles far faster than one of all seven.
        self.changed_items: dict[tuple[str, ...], list[ChecklistItem]] = defaultdict(list)
        self.removed_items: list[int] = []

    @classmethod
    def prepare(cls, plans: list[SourcePlan], *, user, now) -> _Writes:
        writes = cls()
        names = [plan.name for plan in plans]
        writes.sources = {s.name: s for s in RunbookSource.objects.filter(name__in=names)}
        for plan in plans:
            source = writes.sources.get(plan.name)
            if source is None:
                source = writes.sources[plan.name] = RunbookSource(name=plan.name)
                writes.new_sources.append(source)
            # A gone source forgets its hash: if its file comes back, it is planned again.
            source.sha256 = "" if plan.status == GONE else plan.sha256
            if plan.root:
                source.root = plan.root
            source.imported_at = now
            source.imported_by = user
            source.last_plan = plan.as_dict()
        ids = [t.template_id for plan in plans for t in plan.templates if t.template_id]
        existing = ChecklistTemplate.objects.in_bulk(ids)
        to_sync: list[tuple[TemplatePlan, ChecklistTemplate]] = []
        for plan in plans:
            for template_plan in plan.templates:
                if template_plan.is_noop:
                    continue
                template = writes._template(
                    template_plan, existing, source=writes.sources[plan.name], now=now
                )
                if template_plan.action != RETIRE and template_plan.items_changed:
                    to_sync.append((template_plan, template))
        sections = writes._sections(to_sync)
        writes._items(to_sync, sections)
        return writes

    def _template(
        self, plan: TemplatePlan, existing: dict, *, source: RunbookSource, now
    ) -> ChecklistTemplate:
        if plan.action == CREATE:
            template = ChecklistTemplate(source=source, slug=plan.slug, created_at=now)
            _template_fields(template, plan)
            self.created.append(template)
            return template
        template = existing[plan.template_id]
        # bulk_update() skips save(): what save() does for every edit is done here.
        fields = ["next_run_at", "updated_at"]
        if plan.action == RETIRE:
            template.retired_at = now
            template.is_active = False
            fields += ["retired_at", "is_active"]
        else:
            if template.source_key != plan.key:
                self.released.append(template.pk)
            before = {name: getattr(template, name) for name in TEMPLATE_UPDATE_FIELDS}
            _template_fields(template, plan)
            if plan.action == REVIVE:
                template.retired_at = None
                template.is_active = True
            fields += [
                name for name in TEMPLATE_UPDATE_FIELDS if getattr(template, name) != before[name]
            ]
        template.next_run_at = None
        template.updated_at = now
        self.updated[tuple(dict.fromkeys(fields))].append(template)
        return template

    def _sections(self, templates) -> dict[tuple[int, str], ChecklistSection]:
        existing_ids = [template.pk for _, template in templates if template.pk]
        existing: dict[tuple[int, str], ChecklistSection] = {
            (section.template_id, section.title): section
            for section in ChecklistSection.objects.filter(template_id__in=existing_ids)
        }
        wanted: dict[tuple[int, str], ChecklistSection] = {}
        for template_plan, template in templates:
            for position, title in enumerate(template_plan.sections):
                section = existing.get((template.pk, title)) if template.pk else None
                if section is None:
                    section = ChecklistSection(template=template, title=title, position=position)
                    self.new_sections.append(section)
                elif section.position != position:
                    section.position = position
                    self.moved_sections.append(section)
                wanted[(id(template), title)] = section
        kept = {id(section) for section in wanted.values()}
        self.unused_sections = [
            section.pk for section in existing.values() if id(section) not in kept
        ]
        return wanted

    def _items(self, templates, sections: dict[tuple[int, str], ChecklistSection]) -> None:
        for template_plan, template in templates:
            made: list[ChecklistItem] = []
            for row in template_plan.rows:
                item = ChecklistItem(
                    id=row.row_id,
                    template=template,
                    parent=made[row.parent] if row.parent is not None else None,
                    position=row.position,
                    section=sections.get((id(template), row.section)),
                    imported=row.imported,
                    **row.values,
                )
                made.append(item)
                if row.row_id is None:
                    self.new_items[row.depth].append(item)
                elif row.fields:
                    self.changed_items[row.fields].append(item)
            self.removed_items += template_plan.delete_item_ids

    def save(self, *, now) -> dict[str, RunbookSource]:
        """Sources, templates (keys released first: one may pass to another template, a
        renamed or duplicate heading), sections, new items a level at a time (a child needs its
        parent's key), the kept items that moved or changed, then the removed ones (their runs
        keep their copies)."""
        RunbookSource.objects.bulk_create(self.new_sources)
        RunbookSource.objects.bulk_update(
            list(self.sources.values()),
            ["root", "sha256", "imported_at", "imported_by", "last_plan"],
        )
        if self.released:
            ChecklistTemplate.objects.filter(pk__in=self.released).update(source_key="")
        ChecklistTemplate.objects.bulk_create(self.created, batch_size=BATCH)
        for fields, templates in self.updated.items():
            ChecklistTemplate.objects.bulk_update(templates, fields, batch_size=BATCH)
        ChecklistSection.objects.bulk_create(self.new_sections, batch_size=BATCH)
        ChecklistSection.objects.bulk_update(self.moved_sections, ["position"], batch_size=BATCH)
        if self.unused_sections:
            ChecklistSection.objects.filter(pk__in=self.unused_sections).delete()
        for depth in sorted(self.new_items):
            ChecklistItem.objects.bulk_create(self.new_items[depth], batch_size=BATCH)
        for fields, items in self.changed_items.items():
            ChecklistItem.objects.bulk_update(items, fields, batch_size=BATCH)
        if self.removed_items:
            ChecklistItem.objects.filter(pk__in=self.removed_items).delete()
        return self.sources


def _template_fields(template: ChecklistTemplate, plan: TemplatePlan) -> None:
    for name, value in plan.values.items():
        if name == "due_time":
            value = datetime.time.fromisoformat(value)
        setattr(template, name, value)
    template.imported = plan.imported
    template.source_key = plan.key
