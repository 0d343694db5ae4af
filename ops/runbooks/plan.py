"""What an import of runbooks would change, as data: shown by ``import_runbook --dry-run`` (as
text or JSON), applied as it is by a real import, and kept on the source as its last plan.

Plain Python with no Django import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Template actions
CREATE = "create"
UPDATE = "update"
RETIRE = "retire"
REVIVE = "revive"
# Source states
NEW = "new"
CHANGED = "changed"
UNCHANGED = "unchanged"
GONE = "gone"  # imported before, no longer in the directory imported

# Fields of a template the source decides, in the order a diff shows them.
TEMPLATE_FIELDS = (
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
)
ITEM_FIELDS = ("text", "command", "help_text")


@dataclass
class FieldChange:
    field: str
    old: Any
    new: Any

    def as_dict(self) -> dict:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass
class ItemChange:
    kind: str  # added, reworded, moved, changed, removed
    text: str
    old_text: str = ""
    line: int = 0
    fields: list[str] = field(default_factory=list)  # for "changed": command, help_text

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "text": self.text,
            "old_text": self.old_text,
            "line": self.line,
            "fields": list(self.fields),
        }


@dataclass
class ItemRow:
    """One item of a template as the import leaves it, in document order (parents first)."""

    row_id: int | None  # the existing row it keeps, or None for a new one
    parent: int | None  # index of its parent in the template's rows
    position: int
    section: str
    values: dict  # text, command, help_text to write (an admin's edit kept, unless forced)
    imported: dict  # text, command, help_text the source says
    depth: int = 0
    # The columns of an existing row that change (empty: it holds all of it already).
    fields: tuple[str, ...] = ()

    @property
    def write(self) -> bool:
        return self.row_id is None or bool(self.fields)


@dataclass
class TemplatePlan:
    action: str  # create, update, retire, revive; "" when nothing changes
    key: str
    title: str
    line: int = 0
    template_id: int | None = None
    old_key: str = ""
    changes: list[FieldChange] = field(default_factory=list)
    conflicts: list[FieldChange] = field(default_factory=list)
    items: list[ItemChange] = field(default_factory=list)
    # What applying it writes (not shown).
    values: dict = field(default_factory=dict)
    imported: dict = field(default_factory=dict)
    slug: str = ""
    rows: list[ItemRow] = field(default_factory=list)
    delete_item_ids: list[int] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    items_changed: bool = False
    updated_at: str = ""  # of the row when planned: applying refuses if it changed since

    @property
    def is_noop(self) -> bool:
        return not self.action

    def item_counts(self) -> dict[str, int]:
        counts = {"added": 0, "reworded": 0, "moved": 0, "changed": 0, "removed": 0}
        for change in self.items:
            counts[change.kind] += 1
        return counts

    def as_dict(self) -> dict:
        return {
            "action": self.action or "unchanged",
            "key": self.key,
            "old_key": self.old_key,
            "title": self.title,
            "line": self.line,
            "template_id": self.template_id,
            "changes": [change.as_dict() for change in self.changes],
            "conflicts": [conflict.as_dict() for conflict in self.conflicts],
            "items": [change.as_dict() for change in self.items],
            "item_counts": self.item_counts(),
        }


@dataclass
class SourcePlan:
    name: str
    status: str  # new, changed, unchanged, gone
    sha256: str = ""
    previous_sha256: str = ""
    source_id: int | None = None
    templates: list[TemplatePlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    forced: bool = False
    root: str = ""

    @property
    def writes(self) -> bool:
        return self.status in (NEW, CHANGED, GONE) or any(
            not template.is_noop for template in self.templates
        )

    def counts(self) -> dict[str, int]:
        counts = {CREATE: 0, UPDATE: 0, RETIRE: 0, REVIVE: 0, "conflicts": 0}
        for template in self.templates:
            if template.action:
                counts[template.action] += 1
            counts["conflicts"] += len(template.conflicts)
        return counts

    def summary(self) -> str:
        if self.status == UNCHANGED:
            return f"{self.name}: unchanged, skipped"
        counts = self.counts()
        parts = [
            f"{counts[CREATE]} created",
            f"{counts[UPDATE]} updated",
            f"{counts[RETIRE]} retired",
        ]
        if counts[REVIVE]:
            parts.append(f"{counts[REVIVE]} revived")
        if counts["conflicts"]:
            parts.append(f"{counts['conflicts']} conflicts kept")
        return f"{self.name}: {', '.join(parts)}"

    def as_dict(self) -> dict:
        return {
            "source": self.name,
            "status": self.status,
            "sha256": self.sha256,
            "previous_sha256": self.previous_sha256,
            "forced": self.forced,
            "summary": self.summary(),
            "counts": self.counts(),
            "warnings": list(self.warnings),
            "templates": [t.as_dict() for t in self.templates if not t.is_noop],
        }


def plan_as_text(plans: list[dict]) -> str:
    """The plans (as ``SourcePlan.as_dict()``) for a person: a block per source."""
    lines: list[str] = []
    for plan in plans:
        status = plan["status"]
        if status == UNCHANGED:
            lines.append(f"{plan['source']}: unchanged (sha256 {plan['sha256'][:12]}), skipped")
            continue
        head = {NEW: "new source", CHANGED: "changed", GONE: "no longer in the directory"}
        detail = head.get(status, status)
        if plan["previous_sha256"] and plan["sha256"]:
            detail += f", sha256 {plan['previous_sha256'][:12]} → {plan['sha256'][:12]}"
        if plan.get("forced"):
            detail += ", --force"
        lines.append(f"{plan['source']}: {detail}")
        for template in plan["templates"]:
            lines.extend(_template_lines(template))
        for warning in plan["warnings"]:
            lines.append(f"  warning: {warning}")
        lines.append(f"  = {plan['summary'].split(': ', 1)[1]}")
    return "\n".join(lines)


_SYMBOLS = {CREATE: "+", UPDATE: "~", RETIRE: "-", REVIVE: "^"}
_ITEM_SYMBOLS = {"added": "+", "reworded": "~", "moved": ">", "changed": "*", "removed": "-"}


def _template_lines(template: dict) -> list[str]:
    action = template["action"]
    where = f" (line {template['line']})" if template["line"] else ""
    head = f"  {_SYMBOLS.get(action, ' ')} {action:<7} {template['title']} [{template['key']}]"
    if template["old_key"] and template["old_key"] != template["key"]:
        head += f" (was [{template['old_key']}])"
    lines = [head + where]
    for change in template["changes"]:
        lines.append(f"      {change['field']}: {_short(change['old'])} → {_short(change['new'])}")
    counts = template["item_counts"]
    if any(counts.values()):
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
        lines.append(f"      items: {summary}")
        for change in template["items"]:
            symbol = _ITEM_SYMBOLS[change["kind"]]
            at = f" (line {change['line']})" if change["line"] else ""
            if change["kind"] == "reworded":
                text = f"{_short(change['old_text'])} → {_short(change['text'])}"
            elif change["kind"] == "changed":
                text = f"{_short(change['text'])}: {', '.join(change['fields'])}"
            else:
                text = _short(change["text"])
            lines.append(f"        {symbol} {text}{at}")
    for conflict in template["conflicts"]:
        lines.append(
            f"      conflict: {conflict['field']} was edited in the admin "
            f"({_short(conflict['old'])}); the runbook says {_short(conflict['new'])}; "
            "kept the admin's (--force to take the runbook's)"
        )
    return lines


def _short(value: Any, limit: int = 60) -> str:
    if value is None or value == "":
        return "(none)"
    text = " ".join(str(value).split())
    text = f'"{text}"' if isinstance(value, str) else text
    return text if len(text) <= limit else text[: limit - 1] + "…"
