"""The plan of a runbook import: what it would create, change and retire. Reads only; it is
computed before the write transaction opens, so that transaction stays short."""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher

from django.db.models import Q
from django.utils.text import slugify

from ops.models import ChecklistItem, ChecklistTemplate, RunbookSource
from ops.models.checklists import Weekday
from ops.runbooks.files import RunbookFile
from ops.runbooks.parser import ParsedChecklist, ParsedItem, parse_runbook, runbook_hash
from ops.runbooks.plan import (
    CHANGED,
    CREATE,
    GONE,
    ITEM_FIELDS,
    NEW,
    RETIRE,
    REVIVE,
    TEMPLATE_FIELDS,
    UNCHANGED,
    UPDATE,
    FieldChange,
    ItemChange,
    ItemRow,
    SourcePlan,
    TemplatePlan,
)

PATH_SEPARATOR = " › "
DUPLICATE_SEPARATOR = "~"
# How alike two texts must be (difflib's ratio) for a reworded item to keep its row, and two
# checklists' items for a renamed heading to keep its template.
ITEM_SIMILARITY = 0.5
TEMPLATE_SIMILARITY = 0.5
DEFAULT_DUE_TIME = "09:00"


def runbook_plan_build(
    *,
    files: list[RunbookFile],
    root: str = "",
    gone_under: tuple[str, ...] | list[str] = (),
    force: bool = False,
) -> list[SourcePlan]:
    """A plan per file (in the order given), plus one per source imported before from the same
    ``root`` and under one of ``gone_under`` (directories relative to it, "" for the root
    itself) whose file is no longer there.
    An unchanged file (same SHA-256) is not even parsed, unless ``force``. Raises RunbookError
    for a file that cannot be read."""
    hashes = {file.name: runbook_hash(file.data) for file in files}
    sources = {source.name: source for source in RunbookSource.objects.filter(name__in=hashes)}
    plans: list[SourcePlan] = []
    to_plan: list[tuple[SourcePlan, list[ParsedChecklist]]] = []
    for file in files:
        source = sources.get(file.name)
        previous = source.sha256 if source else ""
        plan = SourcePlan(
            name=file.name,
            status=NEW if source is None else CHANGED,
            sha256=hashes[file.name],
            previous_sha256=previous,
            source_id=source.pk if source else None,
            forced=force,
            root=root,
        )
        plans.append(plan)
        if previous == plan.sha256 and not force:
            plan.status = UNCHANGED
            continue
        to_plan.append((plan, parse_runbook(file.data, name=file.name)))
    gone = _gone_sources(names=set(hashes), root=root, under=list(gone_under))
    for source in gone:
        plan = SourcePlan(
            name=source.name,
            status=GONE,
            previous_sha256=source.sha256,
            source_id=source.pk,
            forced=force,
            root=root,
        )
        plans.append(plan)
        to_plan.append((plan, []))
    existing = _Existing.load(
        source_ids=[plan.source_id for plan, _ in to_plan if plan.source_id is not None]
    )
    slugs = _SlugPool()
    for plan, checklists in to_plan:
        _plan_source(plan, checklists, existing=existing, slugs=slugs, force=force)
        forced_noop = plan.sha256 == plan.previous_sha256 and all(
            template.is_noop for template in plan.templates
        )
        if plan.status == CHANGED and forced_noop:
            plan.status = UNCHANGED  # forced, and nothing to do
    return plans


def _gone_sources(*, names: set[str], root: str, under: list[str]) -> list[RunbookSource]:
    """Sources last imported from ``root`` (only: another root's sources, the default
    runbooks among them, are never touched) under one of the directories ``under``."""
    if not root or not under:
        return []
    query = Q(pk__in=[])
    for prefix in under:
        query |= Q() if prefix in ("", ".") else Q(name__startswith=f"{prefix.rstrip('/')}/")
    candidates = (
        RunbookSource.objects.filter(query, root=root).exclude(name__in=names).order_by("name")
    )
    # Only those that still define live templates have anything to retire.
    return [s for s in candidates if s.templates.filter(retired_at__isnull=True).exists()]


# --- What is there now --------------------------------------------------------------------------


@dataclass
class _OldItem:
    id: int
    parent_id: int | None
    position: int
    section: str
    values: dict  # text, command, help_text in the database
    imported: dict  # what the last import set; {} when added in the admin
    depth: int = 0

    @property
    def source_text(self) -> str:
        return self.imported.get("text", self.values["text"])


@dataclass
class _OldTemplate:
    id: int
    key: str
    retired: bool
    values: dict
    imported: dict
    updated_at: str
    items: list[_OldItem]  # depth-first, in order

    @property
    def item_texts(self) -> list[str]:
        return [item.source_text for item in self.items if item.imported]


class _Existing:
    def __init__(self, templates: dict[int, list[_OldTemplate]]) -> None:
        self.by_source = templates

    @classmethod
    def load(cls, *, source_ids: list[int]) -> _Existing:
        """Every template of these sources with its items: two queries, whatever the size."""
        by_source: dict[int, list[_OldTemplate]] = defaultdict(list)
        if not source_ids:
            return cls(by_source)
        templates = {}
        rows = ChecklistTemplate.objects.filter(source_id__in=source_ids).values(
            "id",
            "source_id",
            "source_key",
            "retired_at",
            "imported",
            "updated_at",
            *TEMPLATE_FIELDS,
        )
        for row in rows:
            values = {name: _json_value(name, row[name]) for name in TEMPLATE_FIELDS}
            template = _OldTemplate(
                id=row["id"],
                key=row["source_key"],
                retired=row["retired_at"] is not None,
                values=values,
                imported=row["imported"] or {},
                updated_at=row["updated_at"].isoformat(),
                items=[],
            )
            templates[template.id] = template
            by_source[row["source_id"]].append(template)
        children: dict[tuple[int, int | None], list[_OldItem]] = defaultdict(list)
        items = (
            ChecklistItem.objects.filter(template_id__in=templates)
            .order_by("position", "id")
            .values_list(
                "id",
                "template_id",
                "parent_id",
                "position",
                "section__title",
                "text",
                "command",
                "help_text",
                "imported",
            )
        )
        for pk, template_id, parent_id, position, section, text, command, help_text, imp in items:
            item = _OldItem(
                id=pk,
                parent_id=parent_id,
                position=position,
                section=section or "",
                values={"text": text, "command": command, "help_text": help_text},
                imported=imp or {},
            )
            children[(template_id, parent_id)].append(item)
        for template in templates.values():

            def visit(parent_id, depth, template=template):
                for item in children[(template.id, parent_id)]:
                    item.depth = depth
                    template.items.append(item)
                    visit(item.id, depth + 1)

            visit(None, 0)
        for templates_of_source in by_source.values():
            templates_of_source.sort(key=lambda t: t.id)
        return cls(by_source)


def _json_value(name: str, value):
    if isinstance(value, datetime.time):
        return value.strftime("%H:%M")
    return value


class _SlugPool:
    """Unique slugs for new templates, from one query of the slugs taken."""

    def __init__(self) -> None:
        self._taken: set[str] | None = None

    def take(self, title: str) -> str:
        if self._taken is None:
            self._taken = set(ChecklistTemplate.objects.values_list("slug", flat=True))
        base = slugify(title)[:200] or "checklist"
        slug, number = base, 1
        while slug in self._taken:
            number += 1
            slug = f"{base}-{number}"
        self._taken.add(slug)
        return slug


# --- Planning one source ------------------------------------------------------------------------


def _plan_source(
    plan: SourcePlan,
    checklists: list[ParsedChecklist],
    *,
    existing: _Existing,
    slugs: _SlugPool,
    force: bool,
) -> None:
    old_templates = existing.by_source.get(plan.source_id, []) if plan.source_id else []
    for checklist in checklists:
        plan.warnings.extend(
            f"line {checklist.line} ({checklist.title}): {warning}"
            for warning in checklist.warnings
        )
    pairs, keys = _match_templates(old_templates, checklists, warnings=plan.warnings)
    matched_old = {old.id for old in pairs.values() if old is not None}
    for index, checklist in enumerate(checklists):
        old = pairs.get(index)
        plan.templates.append(_plan_template(checklist, keys[index], old, slugs=slugs, force=force))
    for old in old_templates:
        if old.id not in matched_old and not old.retired:
            plan.templates.append(
                TemplatePlan(
                    action=RETIRE,
                    key=old.key,
                    title=old.values["name"],
                    template_id=old.id,
                    updated_at=old.updated_at,
                )
            )


def _match_templates(
    old_templates: list[_OldTemplate], checklists: list[ParsedChecklist], *, warnings: list[str]
) -> tuple[dict[int, _OldTemplate | None], list[str]]:
    """Which existing template each checklist updates, and each checklist's key.

    A key used by one heading matches the template of that key. Headings sharing a path ("##
    Checks" twice) are matched to that path's templates by their items, not by their order, so
    adding a third above them moves nothing. Left over, a heading whose items are mostly those
    of a template the file no longer defines is that template renamed."""
    pairs: dict[int, _OldTemplate | None] = {}
    keys = [""] * len(checklists)
    by_base: dict[str, list[int]] = defaultdict(list)
    for index, checklist in enumerate(checklists):
        by_base[checklist.key].append(index)
    old_by_base: dict[str, list[_OldTemplate]] = defaultdict(list)
    for old in old_templates:
        old_by_base[old.key.split(DUPLICATE_SEPARATOR, 1)[0]].append(old)
    for olds in old_by_base.values():
        # In key order (checks, checks~2, ...): alike headings keep the keys they had.
        olds.sort(key=_duplicate_number)
    used: set[int] = set()
    for base, indexes in by_base.items():
        if len(indexes) > 1:
            first = checklists[indexes[0]]
            warnings.append(
                f"line {first.line}: the heading path of “{first.title}” is used "
                f"{len(indexes)} times; add {{#key}} to each for identities that never shift"
            )
        candidates = old_by_base.get(base, [])
        for index, old in _pair_by_items(
            candidates, [(i, _texts(checklists[i].items)) for i in indexes], minimum=None
        ):
            pairs[index] = old
            keys[index] = old.key
            used.add(old.id)
        taken = {keys[i] for i in indexes if keys[i]} | {old.key for old in candidates}
        number = 1
        for index in indexes:
            if keys[index]:
                continue
            key = base if number == 1 else f"{base}{DUPLICATE_SEPARATOR}{number}"
            while key in taken:
                number += 1
                key = f"{base}{DUPLICATE_SEPARATOR}{number}"
            keys[index] = key
            taken.add(key)
    # Renamed headings (explicit keys never are: a team that set one meant it).
    leftovers = [old for old in old_templates if old.id not in used]
    unmatched = [
        (index, _texts(checklists[index].items))
        for index in range(len(checklists))
        if index not in pairs and not checklists[index].explicit_key
    ]
    for index, old in _pair_by_items(leftovers, unmatched, minimum=TEMPLATE_SIMILARITY):
        pairs[index] = old
    return pairs, keys


def _duplicate_number(old: _OldTemplate) -> int:
    _base, _separator, number = old.key.partition(DUPLICATE_SEPARATOR)
    return int(number) if number.isdigit() else 1


def _pair_by_items(
    olds: list[_OldTemplate], news: list[tuple[int, list[str]]], *, minimum: float | None
):
    """Best pairs first by how alike their item lists are; ties in document order."""
    if not olds or not news:
        return []
    if len(olds) == 1 and len(news) == 1 and minimum is None:
        return [(news[0][0], olds[0])]
    scored = []
    for new_rank, (index, texts) in enumerate(news):
        for old_rank, old in enumerate(olds):
            ratio = SequenceMatcher(None, old.item_texts, texts, autojunk=False).ratio()
            if minimum is None or ratio >= minimum:
                scored.append((-ratio, abs(new_rank - old_rank), new_rank, old_rank, index, old))
    scored.sort(key=lambda entry: entry[:4])
    pairs, taken_new, taken_old = [], set(), set()
    for *_rank, index, old in scored:
        if index in taken_new or old.id in taken_old:
            continue
        pairs.append((index, old))
        taken_new.add(index)
        taken_old.add(old.id)
    return pairs


def _texts(items: list[ParsedItem]) -> list[str]:
    return [item.text for item, _parent, _depth in _flatten(items)]


def _flatten(items: list[ParsedItem]):
    """(item, parent index, depth) depth-first, parents before their children."""
    flat: list[tuple[ParsedItem, int | None, int]] = []

    def visit(children: list[ParsedItem], parent: int | None, depth: int) -> None:
        for child in children:
            flat.append((child, parent, depth))
            visit(child.children, len(flat) - 1, depth + 1)

    visit(items, None, 0)
    return flat


def _template_values(checklist: ParsedChecklist) -> dict:
    schedule = checklist.schedule
    return {
        "name": checklist.title,
        "context": PATH_SEPARATOR.join(checklist.path)[:300],
        "description": checklist.description,
        "cadence": schedule.cadence,
        "weekdays_only": schedule.weekdays_only,
        "due_time": schedule.due_time.strftime("%H:%M") if schedule.due_time else DEFAULT_DUE_TIME,
        "time_zone": schedule.time_zone,
        "due_weekday": Weekday.MONDAY if schedule.due_weekday is None else schedule.due_weekday,
        "due_day": schedule.due_day or 1,
        "due_week": schedule.due_week,
        "estimated_minutes": schedule.estimated_minutes,
    }


def _plan_template(
    checklist: ParsedChecklist,
    key: str,
    old: _OldTemplate | None,
    *,
    slugs: _SlugPool,
    force: bool,
) -> TemplatePlan:
    source_values = _template_values(checklist)
    plan = TemplatePlan(
        action="", key=key, title=checklist.title, line=checklist.line, imported=source_values
    )
    if old is None:
        plan.action = CREATE
        plan.values = dict(source_values)
        plan.slug = slugs.take(checklist.title)
        plan.rows, plan.items = _plan_items(checklist.items, [], force=force, conflicts=[])
        plan.sections = _sections(plan.rows)
        plan.items_changed = True
        return plan
    plan.template_id = old.id
    plan.updated_at = old.updated_at
    if old.key != key:
        plan.old_key = old.key
    values = {}
    for name in TEMPLATE_FIELDS:
        current, new = old.values[name], source_values[name]
        if name in old.imported and current != old.imported[name] and current != new and not force:
            plan.conflicts.append(FieldChange(name, current, new))
            values[name] = current
        else:
            values[name] = new
        if values[name] != current:
            plan.changes.append(FieldChange(name, current, values[name]))
    plan.values = values
    plan.rows, plan.items = _plan_items(
        checklist.items, old.items, force=force, conflicts=plan.conflicts
    )
    plan.sections = _sections(plan.rows)
    kept = {row.row_id for row in plan.rows}
    plan.delete_item_ids = [item.id for item in old.items if item.imported and item.id not in kept]
    old_sections = {item.section for item in old.items if item.section}
    plan.items_changed = (
        bool(plan.items)
        or any(row.write for row in plan.rows)
        or old_sections != set(plan.sections)
    )
    if old.retired:
        plan.action = REVIVE
    elif (
        plan.changes
        or plan.items_changed
        or plan.old_key
        or old.imported != source_values
        or plan.conflicts
    ):
        plan.action = UPDATE
    return plan


def _sections(rows: list[ItemRow]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        if row.section:
            seen.setdefault(row.section)
    return list(seen)


def _plan_items(
    items: list[ParsedItem], old_items: list[_OldItem], *, force: bool, conflicts: list
) -> tuple[list[ItemRow], list[ItemChange]]:
    """The rows a template's items become, and the changes a person is shown.

    An item keeps its row when its text is unchanged in about the same place (the longest
    common run of texts), when it is reworded in the same place (a text at least half alike
    between the same neighbours), or when its text moved elsewhere unchanged. Items added in
    the admin are not the runbook's and are left alone."""
    flat = _flatten(items)
    imported_old = [item for item in old_items if item.imported]
    old_texts = [item.source_text for item in imported_old]
    new_texts = [item.text for item, _parent, _depth in flat]
    match: dict[int, int] = {}  # new index -> old index
    moved: set[int] = set()
    matcher = SequenceMatcher(None, old_texts, new_texts, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            match.update({j1 + k: i1 + k for k in range(i2 - i1)})
        elif tag == "replace":
            match.update(_similar_pairs(old_texts, range(i1, i2), new_texts, range(j1, j2)))
    free_old: dict[str, list[int]] = defaultdict(list)
    matched_old = set(match.values())
    for index, text in enumerate(old_texts):
        if index not in matched_old:
            free_old[text].append(index)
    for index, text in enumerate(new_texts):
        if index not in match and free_old.get(text):
            match[index] = free_old[text].pop(0)
            moved.add(index)
    # Reworded and moved: the most alike of what is left, wherever it is.
    left_old = [i for i in range(len(old_texts)) if i not in set(match.values())]
    left_new = [j for j in range(len(new_texts)) if j not in match]
    if left_old and left_new:
        for j, i in _similar_pairs(old_texts, left_old, new_texts, left_new).items():
            match[j] = i
            moved.add(j)

    rows: list[ItemRow] = []
    changes: list[ItemChange] = []
    positions: dict[int | None, int] = defaultdict(int)
    for index, (item, parent, depth) in enumerate(flat):
        source = {"text": item.text, "command": item.command, "help_text": item.help_text}
        position = positions[parent]
        positions[parent] += 1
        section = item.section if parent is None else ""
        if index not in match:
            rows.append(ItemRow(None, parent, position, section, dict(source), source, depth))
            changes.append(ItemChange("added", item.text, line=item.line))
            continue
        old = imported_old[match[index]]
        values = {}
        for name in ITEM_FIELDS:
            current, imported = old.values[name], old.imported.get(name, old.values[name])
            if current != imported and current != source[name] and not force:
                conflicts.append(
                    FieldChange(f"item “{_clip(item.text)}” {name}", current, source[name])
                )
                values[name] = current
            else:
                values[name] = source[name]
        parent_row = rows[parent].row_id if parent is not None else None
        changed = {
            "text": values["text"] != old.values["text"],
            "command": values["command"] != old.values["command"],
            "help_text": values["help_text"] != old.values["help_text"],
            "imported": source != old.imported,
            "position": position != old.position,
            # A new parent (parent_row None under a parent) is an item created by this import.
            "parent": parent_row != old.parent_id or (parent is not None and parent_row is None),
            "section": section != old.section,
        }
        fields = tuple(name for name, differs in changed.items() if differs)
        rows.append(ItemRow(old.id, parent, position, section, values, source, depth, fields))
        if old.source_text != item.text:
            changes.append(
                ItemChange("reworded", item.text, old_text=old.source_text, line=item.line)
            )
        elif index in moved or (parent_row != old.parent_id):
            changes.append(ItemChange("moved", item.text, line=item.line))
        elif changed := [n for n in ("command", "help_text") if source[n] != old.imported.get(n)]:
            changes.append(ItemChange("changed", item.text, line=item.line, fields=changed))
    kept = {row.row_id for row in rows if row.row_id is not None}
    for old in imported_old:
        if old.id not in kept:
            changes.append(ItemChange("removed", old.source_text))
    return rows, changes


def _similar_pairs(old_texts, old_indexes, new_texts, new_indexes) -> dict[int, int]:
    """Pairs of old and new texts at least ITEM_SIMILARITY alike, best first, then nearest."""
    scored = []
    for new_rank, j in enumerate(new_indexes):
        for old_rank, i in enumerate(old_indexes):
            matcher = SequenceMatcher(None, old_texts[i], new_texts[j], autojunk=False)
            if (
                matcher.real_quick_ratio() < ITEM_SIMILARITY
                or matcher.quick_ratio() < ITEM_SIMILARITY
            ):
                continue
            ratio = matcher.ratio()
            if ratio >= ITEM_SIMILARITY:
                scored.append((-ratio, abs(old_rank - new_rank), j, i))
    scored.sort()
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for _ratio, _distance, j, i in scored:
        if j not in pairs and i not in used:
            pairs[j] = i
            used.add(i)
    return pairs


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
