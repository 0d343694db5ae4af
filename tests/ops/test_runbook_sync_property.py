"""Property: importing a random edit of a random runbook and then the original again restores
the original templates exactly, and re-importing an unchanged file changes nothing."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.models import ChecklistTemplate, RunbookSource
from ops.runbooks.files import RunbookFile
from ops.runbooks.plan import UNCHANGED
from ops.selectors.runbooks import runbook_plan_build
from ops.services.runbooks import runbook_plan_apply
from portal.models import AuditEntry

pytestmark = pytest.mark.django_db

WORDS = ["check", "the", "disk", "backups", "`redis-cli ping`", "**now**", "certs", "queue"]
LINKS = ["[dashboard](https://grafana.test/d/(1))", "<https://status.test>", "_twice_"]
TITLES = ["Checks", "Backups", "Release", "Deploy", "Review"]
SCHEDULES = ["", " (daily)", " weekly", " (08:30 Europe/Berlin)", " monthly on the 15th"]

texts = st.lists(st.sampled_from(WORDS + LINKS), min_size=1, max_size=5).map(" ".join)
items = st.recursive(
    st.tuples(texts, st.just(())),
    lambda children: st.tuples(texts, st.lists(children, max_size=3).map(tuple)),
    max_leaves=6,
)
sections = st.tuples(
    st.sampled_from(TITLES),
    st.sampled_from(SCHEDULES),
    st.lists(items, min_size=1, max_size=4).map(tuple),
)
runbooks = st.lists(sections, min_size=1, max_size=4)


def render(runbook: list) -> str:
    lines = ["# Ops", ""]
    for title, schedule, section_items in runbook:
        lines += [f"## {title}{schedule}", ""]
        for item in section_items:
            lines += _item_lines(item, depth=0)
        lines.append("")
    return "\n".join(lines)


def _item_lines(item, depth: int) -> list[str]:
    text, children = item
    lines = [f"{'  ' * depth}- [ ] {text}"]
    for child in children:
        lines += _item_lines(child, depth + 1)
    return lines


@st.composite
def edits(draw, runbook: list) -> list:
    """A few random edits: reword, add, remove or move items; rename, retime, add, remove or
    swap sections."""
    edited = [list(section) for section in runbook]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["reword", "add", "remove", "move", "rename", "retime", "new", "drop", "swap"]
            )
        )
        index = draw(st.integers(0, len(edited) - 1)) if edited else 0
        if kind == "new" or not edited:
            edited.insert(index, list(draw(sections)))
            continue
        section = edited[index]
        section_items = list(section[2])
        if kind == "reword":
            at = draw(st.integers(0, len(section_items) - 1))
            text, children = section_items[at]
            section_items[at] = (text + " " + draw(st.sampled_from(WORDS)), children)
        elif kind == "add":
            section_items.insert(draw(st.integers(0, len(section_items))), draw(items))
        elif kind == "remove" and len(section_items) > 1:
            section_items.pop(draw(st.integers(0, len(section_items) - 1)))
        elif kind == "move" and len(section_items) > 1:
            moved = section_items.pop(0)
            section_items.insert(draw(st.integers(1, len(section_items))), moved)
        elif kind == "rename":
            section[0] = draw(st.sampled_from(TITLES))
        elif kind == "retime":
            section[1] = draw(st.sampled_from(SCHEDULES))
        elif kind == "drop" and len(edited) > 1:
            edited.pop(index)
            continue
        elif kind == "swap" and len(edited) > 1:
            other = draw(st.integers(0, len(edited) - 1))
            edited[index], edited[other] = edited[other], edited[index]
            continue
        section[2] = tuple(section_items)
    return [tuple(section) for section in edited]


_names = itertools.count()


def load(name: str, markdown: str, *, force: bool = False):
    plans = runbook_plan_build(files=[RunbookFile(name, markdown.encode())], force=force)
    runbook_plan_apply(plans=plans)
    return plans


def snapshot(name: str) -> list:
    """What the source's live templates hold: fields, sections and the item tree."""
    templates = ChecklistTemplate.objects.filter(source__name=name, retired_at__isnull=True)
    shown = []
    for template in templates.order_by("source_key"):
        items = list(template.items.order_by("position", "id"))
        children: dict = {}
        for item in items:
            children.setdefault(item.parent_id, []).append(item)

        def tree(parent_id, children=children):
            return [
                (
                    item.text,
                    item.command,
                    item.help_text,
                    item.section.title if item.section else "",
                    tuple(tree(item.id)),
                )
                for item in children.get(parent_id, [])
            ]

        shown.append(
            (
                template.source_key,
                template.name,
                template.context,
                template.cadence,
                template.due_time,
                template.time_zone,
                template.due_day,
                template.due_weekday,
                template.is_active,
                tuple(tree(None)),
            )
        )
    return shown


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), runbook=runbooks)
def test_an_edit_then_the_original_restores_the_original_templates(data, runbook):
    name = f"property/{next(_names)}.md"
    original = render(runbook)
    load(name, original)
    before = snapshot(name)
    assert len(before) == len(runbook)

    load(name, render(data.draw(edits(runbook))))
    load(name, original)
    assert snapshot(name) == before

    # The same file again: skipped by its hash; forced, it plans nothing.
    entries = AuditEntry.objects.count()
    (plan,) = load(name, original)
    assert plan.status == UNCHANGED
    (forced,) = load(name, original, force=True)
    assert forced.status == UNCHANGED and not forced.writes
    assert AuditEntry.objects.count() == entries
    assert snapshot(name) == before
    assert RunbookSource.objects.filter(name=name).count() == 1
