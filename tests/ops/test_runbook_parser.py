"""The Markdown runbook parser: the seed runbooks, edge cases as GitHub renders them, errors
that name the line, and the project's own defaults.

Plain pytest with no database: the parser imports nothing from Django.
"""

import datetime
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.runbooks.parser import (
    CADENCES,
    MAX_ITEM_TEXT,
    ParsedChecklist,
    ParsedItem,
    RunbookError,
    checklist_as_dict,
    parse_runbook,
)
from tests.paths import REPO, SEEDS

DEFAULTS = REPO / "ops" / "runbooks" / "defaults"


def parse(markdown: str, name: str = "runbook.md") -> list[ParsedChecklist]:
    return parse_runbook(markdown.encode(), name=name)


def only_checklist(markdown: str, name: str = "runbook.md") -> ParsedChecklist:
    (checklist,) = parse(markdown, name)
    return checklist


def texts(items: list[ParsedItem]) -> list[str]:
    return [item.text for item in items]


# --- The seed runbooks ---------------------------------------------------------------------------
# Written out by hand from reading the files: (title, cadence, number of top-level items).

SEED_CHECKLISTS = {
    "001_03c721e38c9d8027.txt": [
        ("Action Items Checklist", "daily", 5),
        ("Weekly Checklist", "weekly", 6),
        ("Monthly Checklist", "monthly", 7),
        ("Pre-Maintenance Checklist", "on-demand", 5),
        ("Post-Maintenance Checklist", "on-demand", 5),
    ],
    "002_704ba6e5d1a0d636.txt": [
        ("Environment Setup", "on-demand", 5),
        ("Code Preparation", "on-demand", 5),
        ("Infrastructure Validation", "on-demand", 5),
        ("Weekly Tasks", "weekly", 4),
        ("Monthly Tasks", "monthly", 4),
        ("Daily Tasks", "daily", 4),
        ("Weekly Tasks", "weekly", 4),
        ("Monthly Tasks", "monthly", 4),
    ],
    "003_3d1e5de871dd618d.txt": [
        ("Morning Check (9 AM UTC)", "daily", 5),
        ("Midday Check (12 PM UTC)", "daily", 4),
        ("Evening Check (6 PM UTC)", "daily", 4),
        ("Infrastructure Readiness", "on-demand", 7),
        ("Application Readiness", "on-demand", 6),
        ("Monitoring & Alerting", "on-demand", 6),
        ("Security Verification", "on-demand", 6),
        ("Service Health", "on-demand", 6),
        ("Performance Metrics", "on-demand", 5),
        ("User Experience", "on-demand", 5),
        ("Monitoring Validation", "on-demand", 5),
    ],
    "004_c9cf85ce92b0c6c9.txt": [
        ("Response Checklist", "on-demand", 8),
        ("Pre-deployment Checklist", "on-demand", 6),
    ],
}
SEEDS_WITHOUT_CHECKLISTS = {"000_b59d573c297bb8c5.txt"}


def parse_seed(name: str) -> list[ParsedChecklist]:
    return parse_runbook((SEEDS / name).read_bytes(), name=name)


def test_every_seed_has_expectations():
    seeds = {path.name for path in SEEDS.glob("*.txt")}
    assert seeds == set(SEED_CHECKLISTS) | SEEDS_WITHOUT_CHECKLISTS


@pytest.mark.parametrize("name", sorted(SEED_CHECKLISTS))
def test_seed_checklists(name):
    found = [(c.title, c.cadence, len(c.items)) for c in parse_seed(name)]
    assert found == SEED_CHECKLISTS[name]


@pytest.mark.parametrize("name", sorted(SEEDS_WITHOUT_CHECKLISTS))
def test_seed_without_task_lists_is_refused(name):
    with pytest.raises(RunbookError, match=r"contains no task-list items \(- \[ \] \.\.\.\)"):
        parse_seed(name)


def test_seed_001_paths_and_estimate():
    action_items, weekly, *_ = parse_seed("001_03c721e38c9d8027.txt")
    assert action_items.path == [
        "Operations Playbook",
        "Daily Operations",
        "Morning Health Check (10 minutes)",
    ]
    assert action_items.estimated_minutes == 10
    assert action_items.items[-1].text == "Backup jobs completed successfully"
    # "System Maintenance (30 minutes)" is a sibling of the weekly checklist, not a parent.
    assert weekly.estimated_minutes is None


def test_seed_002_repeated_titles_differ_by_path():
    paths = [
        c.path[1:] for c in parse_seed("002_704ba6e5d1a0d636.txt") if c.title == "Weekly Tasks"
    ]
    assert paths == [
        ["Security Procedures", "Security Maintenance"],
        ["Maintenance Procedures", "Regular Maintenance"],
    ]


def test_seed_003_due_times_and_emoji_titles():
    checklists = {c.title: c for c in parse_seed("003_3d1e5de871dd618d.txt")}
    due = {title: c.due_time for title, c in checklists.items() if c.due_time}
    assert due == {
        "Morning Check (9 AM UTC)": datetime.time(9, 0),
        "Midday Check (12 PM UTC)": datetime.time(12, 0),
        "Evening Check (6 PM UTC)": datetime.time(18, 0),
    }
    readiness = checklists["Infrastructure Readiness"]
    assert readiness.path[1:] == [
        "Production Launch Verification Checklist",
        "Pre-Launch Verification",
    ]
    # Ticked boxes are items like any other.
    assert readiness.items[0].text == "Kubernetes cluster configured and accessible"


def test_seed_004_mojibake_headings_and_fenced_lists():
    response, predeploy = parse_seed("004_c9cf85ce92b0c6c9.txt")
    # "## üö® Incident Response" is "🚨" saved through Mac Roman; the path comes out clean.
    assert response.path == ["Production Runbooks", "Incident Response"]
    assert predeploy.path == ["Production Runbooks", "Deployment Procedures"]
    assert response.items[1].text == "Create incident channel (#incident-YYYY-MM-DD-description)"
    assert texts(response.items)[-1] == "Write postmortem"


# --- Structure ---------------------------------------------------------------------------------


def test_nested_items_and_fenced_command():
    checklist = only_checklist(
        "## Deploy\n"
        "- [ ] Build the image\n"
        "  ```bash\n"
        "  docker build -t app .\n"
        "\n"
        "  docker push app\n"
        "  ```\n"
        "  - [ ] Tag it\n"
        "    ~~~sh title=tag\n"
        "    docker tag app app:1.2\n"
        "    ~~~\n"
        "- [ ] Ship it\n"
    )
    build, ship = checklist.items
    assert build.command == "docker build -t app .\n\ndocker push app"
    assert build.children[0].text == "Tag it"
    assert build.children[0].command == "docker tag app app:1.2"
    assert (ship.text, ship.command, ship.help_text, ship.children) == ("Ship it", "", "", [])


def test_several_fences_in_one_item_are_joined_by_a_blank_line():
    (item,) = only_checklist("# A\n- [ ] Run\n  ```\n  one\n  ```\n  ```\n  two\n  ```\n").items
    assert item.command == "one\n\ntwo"


def test_fence_at_column_zero_after_the_list_is_not_attached():
    checklist = only_checklist(
        "# Checks\n- [ ] First\n- [ ] Second\n\n```bash\nrm -rf /tmp/x\n```\n"
    )
    assert [item.command for item in checklist.items] == ["", ""]


def test_deeper_indented_fence_content_is_dedented():
    (item,) = only_checklist(
        "# A\n- [ ] Run\n  ```yaml\n      key: 1\n        nested: 2\n  ```\n"
    ).items
    assert item.command == "key: 1\n  nested: 2"


def test_unclosed_fence_in_an_item_ends_with_the_item():
    checklists = parse("# A\n- [ ] Run\n  ```\n  echo hi\n# B\n- [ ] Next\n")
    assert [c.title for c in checklists] == ["A", "B"]
    assert checklists[0].items[0].command == "echo hi"


def test_three_levels_of_nesting():
    checklist = only_checklist(
        "# Quarterly\n"
        "- [ ] Rotate credentials\n"
        "  - [ ] Database\n"
        "    - [ ] Primary\n"
        "    - [ ] Replica\n"
        "  - [ ] API keys\n"
        "- [ ] Restore test\n"
    )
    rotate, restore = checklist.items
    assert texts(rotate.children) == ["Database", "API keys"]
    assert texts(rotate.children[0].children) == ["Primary", "Replica"]
    assert restore.children == []


def test_tab_indentation_nests():
    (parent,) = only_checklist("# A\n- [ ] Parent\t\n\t- [ ] Child\t\n\t\t- [ ] Grandchild\n").items
    assert parent.text == "Parent"
    assert parent.children[0].text == "Child"
    assert parent.children[0].children[0].text == "Grandchild"


def test_plain_bullets_prose_and_tables_are_not_items_but_the_description():
    checklist = only_checklist(
        "# A\nIntro prose.\n\n- plain bullet\n\n1. numbered step\n\n- [ ] Real item\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    assert texts(checklist.items) == ["Real item"]
    assert checklist.description == (
        "Intro prose.\n\n- plain bullet\n\n1. numbered step\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )


def test_a_line_right_under_an_item_continues_it_as_on_github():
    # Without a blank line (or a delimiter row) "| a | b |" is a lazy continuation line.
    assert texts(only_checklist("# A\n- [ ] Real item\n| a | b |\n").items) == [
        "Real item | a | b |"
    ]


def test_nested_prose_plain_bullets_and_tables_become_markdown_help_text():
    (item,) = only_checklist(
        "# A\n"
        "- [ ] Check resources\n"
        "  - CPU under 70 %\n"
        "    - per service\n"
        "  - Memory under 75 %\n"
        "\n"
        "  Scale up when **both**\n"
        "  are high.\n"
        "\n"
        "  | metric | limit |\n"
        "  |---|---|\n"
        "  | disk | 80 % |\n"
        "\n"
        "Not indented: not help.\n"
    ).items
    assert item.text == "Check resources"
    assert item.help_text == (
        "- CPU under 70 %\n  - per service\n\n- Memory under 75 %\n\n"
        "Scale up when **both**\nare high.\n\n"
        "| metric | limit |\n|---|---|\n| disk | 80 % |"
    )


def test_lazy_continuation_lines_stay_in_their_paragraph():
    item, _ = only_checklist(
        "# A\n"
        "- [ ] Rotate keys\n"
        "\n"
        "  Issue the new key,\n"
        "  deploy it,\n"
        "then revoke the old one.\n"
        "  - keep the old one\n"
        "    for a day\n"
        "- [ ] Next\n"
    ).items
    assert item.help_text == (
        "Issue the new key,\ndeploy it,\nthen revoke the old one.\n\n"
        "- keep the old one\n  for a day"
    )


def test_line_continuing_an_item_is_part_of_its_text():
    (item,) = only_checklist("# A\n- [ ] Verify backups\n  completed overnight\n").items
    assert item.text == "Verify backups completed overnight"
    assert item.help_text == ""


def test_rule_after_an_item_does_not_continue_it():
    (item,) = only_checklist("# A\n- [ ] Done\n---\n").items
    assert item.text == "Done"


def test_task_items_in_every_marker_style():
    checklist = only_checklist(
        "# A\n- [ ] dash\n* [ ] star\n+ [ ] plus\n- [x] ticked\n- [X] Ticked\n"
        "1. [ ] dot\n2) [ ] paren\n10) [ ] ten\n"
    )
    assert texts(checklist.items) == [
        "dash",
        "star",
        "plus",
        "ticked",
        "Ticked",
        "dot",
        "paren",
        "ten",
    ]


def test_not_quite_task_items_are_ignored():
    markdown = "# A\n- [] no space\n- [ ]\n- [y] other\n-[ ] no gap\n- [ ]glued\n- [ ] real\n"
    assert texts(only_checklist(markdown).items) == ["real"]


def test_numbered_items_with_parenthesis():
    checklist = only_checklist(
        "# Response\n1) [ ] Acknowledge\n2) [ ] Mitigate\n   1) [ ] Roll back\n"
    )
    assert texts(checklist.items) == ["Acknowledge", "Mitigate"]
    assert texts(checklist.items[1].children) == ["Roll back"]


# --- Headings --------------------------------------------------------------------------------


def test_only_headings_with_their_own_items_become_checklists():
    checklists = parse("# Top\n## Empty\nprose\n### Filled\n- [ ] one\n## Also\n* [ ] two\n")
    assert [(c.title, c.path) for c in checklists] == [
        ("Filled", ["Top", "Empty"]),
        ("Also", ["Top"]),
    ]


def test_items_before_any_heading_are_titled_after_the_file():
    checklists = parse("- [ ] Loose item\n\n# Later\n- [ ] Other\n", name="ops/weekly_checks.md")
    assert [(c.title, c.path, c.cadence) for c in checklists] == [
        ("Weekly checks", [], "weekly"),
        ("Later", [], "on-demand"),
    ]


def test_headings_inside_fences_are_code():
    checklist = only_checklist(
        "## Rotation\n"
        "- [ ] Rotate keys\n"
        "```bash\n"
        "# OpenAI API Key\n"
        "1. [ ] Generate a new key\n"
        "- [ ] Revoke the old one\n"
        "```\n"
        "~~~\n"
        "## Not a heading\n"
        "~~~\n"
    )
    assert checklist.title == "Rotation"
    assert texts(checklist.items) == ["Rotate keys"]


def test_emoji_are_removed_from_titles():
    checklists = parse(
        "# 🛠️ Ops\n"
        "#### ✅ Infrastructure Readiness\n- [ ] a\n"
        "## 👩🏽‍💻 On call 🚀 ##\n- [ ] b\n"
        "## 1️⃣ Keycap\n- [ ] c\n"
    )
    assert [(c.title, c.path) for c in checklists] == [
        ("Infrastructure Readiness", ["Ops"]),
        ("On call", ["Ops"]),
        ("1 Keycap", ["Ops"]),
    ]


def test_mojibake_heading_is_repaired_before_cleaning():
    markdown = "# Runbooks\n## \uf8ffüö® Incident Response\n### Weekly drill\n- [ ] Run it\n"
    checklist = only_checklist(markdown)
    assert checklist.path == ["Runbooks", "Incident Response"]
    assert checklist.cadence == "weekly"


def test_accented_heading_is_left_alone():
    assert only_checklist("# Über café naïve\n- [ ] a\n").title == "Über café naïve"


def test_heading_of_only_an_emoji_borrows_the_file_name():
    assert only_checklist("## 🚨\n- [ ] a\n", name="incident-response.md").title == (
        "Incident response"
    )


def test_setext_headings():
    checklists = parse("Daily checks\n============\n\nMorning\n-------\n- [ ] a\n")
    assert [(c.title, c.path, c.cadence) for c in checklists] == [
        ("Morning", ["Daily checks"], "daily")
    ]


def test_titles_are_plain_text_and_items_keep_their_inline_markdown():
    checklist = only_checklist(
        "## **Weekly** [review](https://x.test) ###\n"
        "- [ ] **Backups** verified\n"
        "- [ ] _Check_ the [dashboard](https://grafana.test/d/1 'Ops') and ![logo](l.png)\n"
        "- [ ] Run `redis-cli -u $REDIS_URL ping` and ``a `tick` b``\n"
        "- [ ] Visit <https://status.test> ***now***\n"
    )
    assert checklist.title == "Weekly review"
    assert texts(checklist.items) == [
        "**Backups** verified",
        "_Check_ the [dashboard](https://grafana.test/d/1 'Ops') and ![logo](l.png)",
        "Run `redis-cli -u $REDIS_URL ping` and ``a `tick` b``",
        "Visit <https://status.test> ***now***",
    ]


def test_link_urls_are_kept_even_with_parentheses():
    (item,) = only_checklist(
        "# A\n- [ ] via the [admin](https://en.wikipedia.org/wiki/Ops_(computing)) page\n"
    ).items
    assert item.text == "via the [admin](https://en.wikipedia.org/wiki/Ops_(computing)) page"


def test_html_comments_are_not_content():
    checklist = only_checklist(
        "# Release\n"
        "- [ ] Tag\n"
        "<!--\n"
        "- [ ] Mock run\n"
        "-->\n"
        "- [ ] Publish <!-- paste link -->\n"
        "- [ ] Announce <!-- in\n  two lines --> it\n"
        "- [ ] <!-- to do -->\n"
        "  - [ ] Thank everyone\n"
    )
    assert texts(checklist.items) == ["Tag", "Publish", "Announce it", "Thank everyone"]
    assert checklist.description == ""


def test_an_issue_template_full_of_comments_gives_one_checklist():
    checklists = parse(
        "<!-- Thanks for cutting a release! -->\n"
        "## Cut the release\n"
        "<!--\n## Not a heading\n- [ ] Not an item\n-->\n"
        "- [ ] Branch <!-- e.g. release-1.2 -->\n"
        "- [ ] Build\n"
    )
    assert [(c.title, texts(c.items)) for c in checklists] == [
        ("Cut the release", ["Branch", "Build"])
    ]


def test_a_sub_bullet_of_only_inline_code_is_a_command():
    (item,) = only_checklist(
        "# A\n- [ ] Queue is short\n  - `redis-cli llen celery`\n  - `redis-cli info`\n"
        "  - compare with `yesterday`\n"
    ).items
    assert item.command == "redis-cli llen celery\nredis-cli info"
    assert item.help_text == "- compare with `yesterday`"


def test_context_is_kept_lead_in_bold_groups_plain_bullet_parents_and_quotes():
    checklist = only_checklist(
        "## Release\n"
        "Run this on release day.\n\n"
        "**Before the release:**\n"
        "- [ ] Freeze\n"
        "- Mock run\n"
        "  - [ ] Stage\n"
        "\n"
        "**After the release**\n"
        "> - [ ] Announce\n"
        "- [ ] Thank everyone\n"
        "  - Retro\n"
        "    - [ ] Book the room\n"
    )
    assert checklist.description == "Run this on release day."
    assert [(item.text, item.section) for item in checklist.items] == [
        ("Freeze", "Before the release"),
        ("Stage", "Before the release › Mock run"),
        ("Announce", "After the release"),
        ("Thank everyone", "After the release"),
    ]
    (retro,) = checklist.items[3].children
    assert (retro.text, texts(retro.children)) == ("Retro", ["Book the room"])


def test_item_text_over_the_limit_is_an_error_naming_the_line():
    long = "x" * (MAX_ITEM_TEXT + 1)
    with pytest.raises(RunbookError) as raised:
        parse(f"# A\n- [ ] short\n\n- [ ] {long}\n", name="long.md")
    assert str(raised.value) == (
        f"long.md:4: item text is {MAX_ITEM_TEXT + 1} characters; at most {MAX_ITEM_TEXT}"
    )
    assert texts(only_checklist(f"# A\n- [ ] {'x' * MAX_ITEM_TEXT}\n").items)[0] == (
        "x" * MAX_ITEM_TEXT
    )


def _nested(levels: int) -> str:
    return "# A\n" + "".join(f"{'  ' * level}- [ ] level {level + 1}\n" for level in range(levels))


def test_nesting_of_eight_levels_is_read():
    (top,) = only_checklist(_nested(8)).items
    depth = 1
    while top.children:
        (top,) = top.children
        depth += 1
    assert depth == 8


@pytest.mark.parametrize("levels", [9, 1000])
def test_nesting_deeper_than_eight_levels_is_an_error_naming_the_line(levels):
    with pytest.raises(RunbookError) as raised:
        parse(_nested(levels), name="deep.md")
    assert str(raised.value) == "deep.md:10: nested more than 8 levels deep"


@pytest.mark.parametrize("quotes", [9, 5000])
def test_deep_block_quotes_count_as_nesting(quotes):
    with pytest.raises(RunbookError, match=r"^q\.md:2: nested more than 8 levels deep$"):
        parse("# A\n" + ">" * quotes + " - [ ] x\n", name="q.md")


def test_deep_plain_nesting_is_an_error_too_rather_than_losing_what_follows():
    # Past its own limit the parser would stop reading: the last item would vanish silently.
    deep = "".join(f"{'  ' * level}- step\n" for level in range(2000))
    with pytest.raises(RunbookError, match=r"^p\.md:12: nested more than 8 levels deep$"):
        parse(f"# A\n- [ ] first\n\n{deep}\n- [ ] last\n", name="p.md")


def test_a_line_too_long_to_be_prose_is_refused_before_parsing():
    with pytest.raises(
        RunbookError, match=r"^l\.md:3: line is 100,001 characters; at most 10,000$"
    ):
        parse("# A\n- [ ] a\n" + "[" * 100_001 + "\n", name="l.md")


def test_an_unclosed_comment_hides_the_rest_of_its_block_as_on_github():
    checklist = only_checklist("# A\n- [ ] a\n\n" + "<!--" * 2000 + "\nhidden\n\n- [ ] b\n")
    assert texts(checklist.items) == ["a"]


def test_nul_bytes_are_refused_with_the_line():
    with pytest.raises(RunbookError, match=r"^bin\.md:2: contains a NUL byte"):
        parse_runbook(b"# A\n- [ ] a\x00b\n", name="bin.md")


def test_keys_are_heading_paths_without_times_zones_or_durations():
    checklists = parse(
        "# Ops\n## Daily checks (08:00 UTC)\n- [ ] a\n"
        "## Weekly review (30 minutes)\n### Costs\n- [ ] b\n"
    )
    assert [c.key for c in checklists] == ["ops/daily-checks", "ops/weekly-review/costs"]
    retimed = parse("# Ops\n## Daily checks (08:30 Europe/Berlin)\n- [ ] a\n")
    assert retimed[0].key == "ops/daily-checks"


def test_explicit_key_is_kept_and_removed_from_the_title():
    (checklist,) = parse("# Ops\n## Handover at dusk {#handover}\n- [ ] a\n")
    assert (checklist.title, checklist.key, checklist.explicit_key) == (
        "Handover at dusk",
        "handover",
        True,
    )


def test_an_explicit_key_used_twice_is_an_error_naming_both_lines():
    with pytest.raises(RunbookError) as raised:
        parse("# A {#k}\n- [ ] a\n# B {#k}\n- [ ] b\n", name="dup.md")
    assert str(raised.value) == "dup.md:3: the key {#k} is already used on line 1"


def test_heading_over_the_limit_is_an_error_naming_the_line():
    with pytest.raises(RunbookError, match=r"^h\.md:2: heading is 201 characters; at most 200$"):
        parse("- [ ] a\n# " + "h" * 201 + "\n- [ ] b\n", name="h.md")


def test_trailing_spaces_and_tabs_are_stripped():
    (item,) = only_checklist("# A   \n- [ ]\tSpaced \t item  \n").items
    assert item.text == "Spaced item"


# --- Cadence, due time, estimate ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "cadence"),
    [
        ("# Daily checks\n- [ ] a\n", "daily"),
        ("# Morning\n- [ ] a\n", "daily"),
        ("# MIDDAY look\n- [ ] a\n", "daily"),
        ("# Evening\n- [ ] a\n", "daily"),
        ("# Shift handover\n- [ ] a\n", "on-demand"),  # "shift" says no cadence
        ("# Canary traffic shift\n- [ ] a\n", "on-demand"),
        ("# Weekly\n- [ ] a\n", "weekly"),
        ("# Monthly tasks\n- [ ] a\n", "monthly"),
        ("# Quarterly rotation\n- [ ] a\n", "quarterly"),
        ("# Pre-deployment\n- [ ] a\n", "on-demand"),
        ("# Weekday shifting mornings\n- [ ] a\n", "on-demand"),  # whole words only
        ("# Weekly or monthly\n- [ ] a\n", "weekly"),  # the leftmost word wins
    ],
)
def test_cadence_from_heading(markdown, cadence):
    assert only_checklist(markdown).cadence == cadence


def test_cadence_from_parent_heading_nearest_first():
    checklists = parse(
        "# Monthly operations\n"
        "## Weekly maintenance\n"
        "### Backups\n- [ ] a\n"
        "## Cost review\n- [ ] b\n"
        "## Incident drill\n### Daily part\n- [ ] c\n"
    )
    assert [(c.title, c.cadence) for c in checklists] == [
        ("Backups", "weekly"),
        ("Cost review", "monthly"),
        ("Daily part", "daily"),
    ]
    assert {c.cadence for c in checklists} <= set(CADENCES)


@pytest.mark.parametrize(
    ("heading", "due_time"),
    [
        ("Morning Check (9 AM UTC)", datetime.time(9, 0)),
        ("Midday Check (12 PM UTC)", datetime.time(12, 0)),
        ("Evening check 6 PM", datetime.time(18, 0)),
        ("Late check (9:30 p.m.)", datetime.time(21, 30)),
        ("Night check 12am", datetime.time(0, 0)),
        ("Handover 14:30", datetime.time(14, 30)),
        ("Morning check (09:00)", datetime.time(9, 0)),
        ("Post-Launch Verification (First 24 Hours)", None),
        ("Release v1.2.3 at 25:00", None),
        ("Amazon 2 Ampere checks", None),
    ],
)
def test_due_time_from_heading(heading, due_time):
    assert only_checklist(f"## {heading}\n- [ ] a\n").due_time == due_time


def test_due_time_comes_with_the_cadence_from_a_parent():
    checklist = only_checklist("# Weekly maintenance (Sunday 02:00 UTC)\n## Backups\n- [ ] a\n")
    assert (checklist.cadence, checklist.due_time) == ("weekly", datetime.time(2, 0))
    assert (checklist.schedule.due_weekday, checklist.schedule.time_zone) == (6, "UTC")
    assert only_checklist("# Runbook (9 AM)\n## Extra\n- [ ] a\n").due_time is None


@pytest.mark.parametrize(
    ("markdown", "minutes"),
    [
        ("# Check (10 minutes)\n- [ ] a\n", 10),
        ("# Review (2 hours)\n- [ ] a\n", 120),
        ("# Review (1.5 h)\n- [ ] a\n", 90),
        ("# Rollback (5-15 min)\n- [ ] a\n", 15),
        ("# Morning Health Check (10 minutes)\n#### Action Items\n- [ ] a\n", 10),
        ("# Outer (2 hours)\n## Inner (30 minutes)\n### Leaf\n- [ ] a\n", 30),
        ("# Launch (First 24 Hours)\n- [ ] a\n", None),
        ("# Plain\n- [ ] a\n", None),
    ],
)
def test_estimated_minutes_from_heading_or_parent(markdown, minutes):
    assert only_checklist(markdown).estimated_minutes == minutes


# --- Bytes -------------------------------------------------------------------------------------


def test_crlf_and_cr_line_endings():
    crlf = b"# Weekly\r\n- [ ] One  \r\n  ```\r\n  cmd\r\n  ```\r\n- [ ] Two\r\n"
    (checklist,) = parse_runbook(crlf, name="crlf.md")
    assert checklist.title == "Weekly"
    assert [(item.text, item.command) for item in checklist.items] == [("One", "cmd"), ("Two", "")]
    assert parse_runbook(crlf.replace(b"\r\n", b"\r"), name="cr.md") == [checklist]


def test_utf8_bom_is_accepted():
    (checklist,) = parse_runbook("\ufeff# Daily\n- [ ] a\n".encode(), name="bom.md")
    assert checklist.title == "Daily"


def test_non_utf8_bytes_are_refused_with_byte_and_offset():
    with pytest.raises(RunbookError) as raised:
        parse_runbook(b"# Checks\n- [ ] caf\xe9\n", name="latin1.md")
    assert str(raised.value) == "latin1.md: not valid UTF-8 (byte 0xe9 at offset 18)"


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  ", b"\xef\xbb\xbf\n"])
def test_empty_runbook_is_refused(data):
    with pytest.raises(RunbookError) as raised:
        parse_runbook(data, name="empty.md")
    assert str(raised.value) == "empty.md: is empty"


@pytest.mark.parametrize(
    "markdown",
    [
        "# Just prose\n\nNothing to tick here.\n",
        "# Steps\n- plain\n1. numbered\n",
        "```\n- [ ] only inside a fence\n```\n",
    ],
)
def test_runbook_without_task_items_is_refused(markdown):
    with pytest.raises(RunbookError) as raised:
        parse(markdown, name="prose.md")
    assert str(raised.value) == "prose.md: contains no task-list items (- [ ] ...)"


def test_checklist_as_dict():
    checklist = only_checklist(
        "# Daily\n## Morning check (9 AM) (10 minutes)\n"
        "- [ ] Health\n  ```\n  curl -s $URL\n  ```\n\n  Look at every service.\n"
        "  - [ ] Cache\n"
    )
    assert checklist_as_dict(checklist) == {
        "title": "Morning check (9 AM) (10 minutes)",
        "path": ["Daily"],
        "key": "daily/morning-check",
        "cadence": "daily",
        "weekdays_only": False,
        "due_time": "09:00",
        "due_weekday": None,
        "due_day": None,
        "due_week": None,
        "time_zone": "",
        "estimated_minutes": 10,
        "description": "",
        "warnings": [],
        "items": [
            {
                "text": "Health",
                "command": "curl -s $URL",
                "help_text": "Look at every service.",
                "section": "",
                "children": [
                    {
                        "text": "Cache",
                        "command": "",
                        "help_text": "",
                        "section": "",
                        "children": [],
                    }
                ],
            }
        ],
    }
    assert checklist_as_dict(only_checklist("# A\n- [ ] a\n"))["due_time"] is None


# --- The project's default runbooks ------------------------------------------------------------

DEFAULT_FILES = sorted(DEFAULTS.glob("*.md"))
IMPLIED_CADENCE = {
    "daily": "daily",
    "morning": "daily",
    "midday": "daily",
    "evening": "daily",
    "weekly": "weekly",
    "monthly": "monthly",
    "quarterly": "quarterly",
}


def parse_defaults() -> list[ParsedChecklist]:
    return [c for path in DEFAULT_FILES for c in parse_runbook(path.read_bytes(), name=path.name)]


def test_default_runbooks_exist():
    assert 3 <= len(DEFAULT_FILES) <= 5


def test_default_checklist_titles_are_unique():
    titles = [c.title for c in parse_defaults()]
    assert len(titles) == len(set(titles))


def test_default_checklists_have_the_cadence_their_titles_say():
    for checklist in parse_defaults():
        words = re.findall(r"\w+", checklist.title.lower())
        implied = {IMPLIED_CADENCE[word] for word in words if word in IMPLIED_CADENCE}
        assert implied <= {checklist.cadence}, checklist.title
    assert (
        {"daily", "weekly", "monthly", "quarterly", "on-demand"}
        <= {c.cadence for c in parse_defaults()}
        <= set(CADENCES)
    )


def test_default_daily_checks_have_due_times():
    due = {c.title: c.due_time for c in parse_defaults() if c.due_time}
    assert due == {
        "Morning check (09:00)": datetime.time(9, 0),
        "Midday check (12:00)": datetime.time(12, 0),
        "Evening check (18:00)": datetime.time(18, 0),
        "Morning health check (15 minutes)": datetime.time(9, 0),
    }


def test_defaults_cover_every_checklist_the_seeds_describe():
    titles = {c.title.lower() for c in parse_defaults()}
    for wanted in [
        "morning health check",
        "weekly review",
        "monthly review",
        "quarterly review",
        "pre-deployment",
        "post-deployment",
        "pre-maintenance",
        "post-maintenance",
        "weekly security",
        "monthly security",
        "pre-launch",
        "first 24 hours",
        "incident response",
        "gdpr",
        "backup verification",
    ]:
        assert any(wanted in title for title in titles), wanted


def test_default_incident_response_covers_the_whole_response():
    (incident,) = [c for c in parse_defaults() if c.title == "Incident response checklist"]
    steps = " | ".join(texts(incident.items)).lower()
    steps_wanted = ["acknowledge", "channel", "impact", "mitigate", "status page", "root cause"]
    for step in [*steps_wanted, "fix", "postmortem"]:
        assert step in steps


@pytest.mark.parametrize("path", DEFAULT_FILES, ids=lambda path: path.name)
def test_every_fence_in_a_default_runbook_is_an_items_command(path):
    markdown = path.read_text()
    fences = len(re.findall(r"^\s*```\w", markdown, flags=re.MULTILINE))
    commands = [
        item.command
        for checklist in parse_runbook(path.read_bytes(), name=path.name)
        for item in walk(checklist.items)
        if item.command
    ]
    assert fences and len(commands) == fences
    assert all(
        item.text
        for c in parse_runbook(path.read_bytes(), name=path.name)
        for item in walk(c.items)
    )


def walk(items: list[ParsedItem]):
    for item in items:
        yield item
        yield from walk(item.children)


# --- Anything at all -----------------------------------------------------------------------------

MARKDOWN_PIECES = [
    "# ",
    "## ",
    "- ",
    "* ",
    "1. ",
    "2) ",
    "[ ] ",
    "[x] ",
    "> ",
    "  ",
    "    ",
    "\t",
    "\n",
    "\n\n",
    "```",
    "~~~",
    "<!--",
    "-->",
    "**",
    "_",
    "`",
    "[a](b)",
    "](",
    "|",
    "---",
    "===",
    "{#k}",
    "text",
    "Daily",
    "09:00",
    "\u00fc\u00f6\u00ae",
    "\U0001f6a8",
    "\\",
    "<b>",
    "\r\n",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(MARKDOWN_PIECES), max_size=60).map("".join))
def test_any_text_gives_checklists_or_a_one_line_error(markdown):
    try:
        checklists = parse_runbook(markdown.encode(), name="fuzz.md")
    except RunbookError as error:
        assert str(error).startswith("fuzz.md") and "\n" not in str(error)
        return
    for checklist in checklists:
        assert checklist.items and checklist.title and checklist.key
        assert all(item.text and len(item.text) <= MAX_ITEM_TEXT for item in walk(checklist.items))
