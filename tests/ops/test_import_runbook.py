"""`manage.py import_runbook`: the seeds, sources, plans, re-imports that a team can trust, and
bad input that changes nothing."""

import json
from datetime import UTC, datetime, time
from unittest import mock

import pytest
from django.core.management import ManagementUtility
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops.models import (
    ChecklistItem,
    ChecklistRun,
    ChecklistTemplate,
    MonitoredService,
    RunbookSource,
)
from ops.runbooks.files import MAX_RUNBOOK_BYTES, runbook_files_collect
from ops.selectors.runbooks import runbook_plan_build
from ops.services.checklists import checklist_runs_schedule
from ops.services.runbooks import RunbookPlanStale, runbook_plan_apply
from portal.models import AuditEntry
from tests.paths import SEEDS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _utc(settings):
    settings.TIME_ZONE = "UTC"


SEED_FILES = sorted(str(path) for path in SEEDS.glob("00*.txt"))
IMPORTABLE = [path for path in SEED_FILES if not path.endswith("000_b59d573c297bb8c5.txt")]
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=UTC)


def manage(*args) -> int:
    """Run the command as `manage.py` would: exit status and streams included. (It closes the
    database connections when done, which would end the test's transaction; not here.)"""
    try:
        with mock.patch("django.core.management.base.connections.close_all"):
            ManagementUtility(["manage.py", *args]).execute()
    except SystemExit as exit_:
        return exit_.code
    return 0


@pytest.fixture
def runbooks(tmp_path):
    """Write runbooks under a root and import them from it."""

    class Runbooks:
        root = tmp_path

        def write(self, name: str, text: str):
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return path

        def run(self, *args) -> int:
            return manage("import_runbook", "--root", str(tmp_path), *args)

        def load(self, name: str, text: str, *args) -> int:
            self.write(name, text)
            return self.run(str(tmp_path / name), *args)

    return Runbooks()


def live(**filters) -> list[ChecklistTemplate]:
    return list(ChecklistTemplate.objects.filter(retired_at__isnull=True, **filters))


def item_texts(template: ChecklistTemplate) -> list[str]:
    return list(template.items.order_by("parent_id", "position").values_list("text", flat=True))


# --- The seeds -----------------------------------------------------------------------------------


def test_imports_every_checklist_of_the_seeds(capsys):
    assert manage("import_runbook", "--root", str(SEEDS), *IMPORTABLE) == 0
    names = set(ChecklistTemplate.objects.values_list("name", flat=True))
    assert {
        "Action Items Checklist",
        "Weekly Checklist",
        "Monthly Checklist",
        "Pre-Maintenance Checklist",
        "Environment Setup",
        "Morning Check (9 AM UTC)",
        "Response Checklist",
        "Infrastructure Readiness",
    } <= names
    assert ChecklistTemplate.objects.count() == 26
    morning = ChecklistTemplate.objects.get(name__startswith="Morning Check")
    assert (morning.cadence, morning.due_time, morning.time_zone) == ("daily", time(9), "UTC")
    assert ChecklistTemplate.objects.get(name__startswith="Evening Check").due_time == time(18)
    assert ChecklistTemplate.objects.get(name="Weekly Checklist").cadence == "weekly"
    assert ChecklistTemplate.objects.get(name="Response Checklist").items.count() == 8
    assert ChecklistTemplate.objects.filter(name="Weekly Tasks").count() == 2
    sources = set(RunbookSource.objects.values_list("name", flat=True))
    assert sources == {path.rsplit("/", 1)[1] for path in IMPORTABLE}
    # One audit entry per source, with the plan's summary.
    entries = AuditEntry.objects.filter(action="runbook.import")
    assert entries.count() == 4
    assert entries.get(object_repr="004_c9cf85ce92b0c6c9.txt").summary == (
        "004_c9cf85ce92b0c6c9.txt: 2 created, 0 updated, 0 retired"
    )
    out = capsys.readouterr().out
    assert "004_c9cf85ce92b0c6c9.txt: new source" in out
    assert "+ create  Response Checklist [production-runbooks/incident-response/" in out
    assert "Imported 4 sources." in out


def test_unchanged_sources_are_skipped_without_a_write_or_an_audit_entry(capsys):
    assert manage("import_runbook", "--root", str(SEEDS), *IMPORTABLE) == 0
    stamps = dict(ChecklistTemplate.objects.values_list("pk", "updated_at"))
    capsys.readouterr()
    with CaptureQueriesContext(connection) as queries:
        assert manage("import_runbook", "--root", str(SEEDS), *IMPORTABLE) == 0
    writes = [q["sql"] for q in queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")]
    assert writes == []
    assert AuditEntry.objects.filter(action="runbook.import").count() == 4
    assert dict(ChecklistTemplate.objects.values_list("pk", "updated_at")) == stamps
    out = capsys.readouterr().out
    assert "004_c9cf85ce92b0c6c9.txt: unchanged (sha256 " in out
    assert "Imported 0 sources, 4 unchanged." in out


# --- Identity: sources, keys, items --------------------------------------------------------------


def test_retiming_a_heading_updates_its_checklist_instead_of_opening_a_second(runbooks, capsys):
    runbooks.load("ops.md", "## Daily checks (08:00)\n- [ ] Disk below 80%\n")
    (template,) = live()
    checklist_runs_schedule(now=MONDAY_10)
    runbooks.load("ops.md", "## Daily checks (08:30)\n- [ ] Disk below 80%\n")
    assert [t.pk for t in live()] == [template.pk]
    template.refresh_from_db()
    assert (template.name, template.due_time) == ("Daily checks (08:30)", time(8, 30))
    assert 'due_time: "08:00" → "08:30"' in capsys.readouterr().out
    # One daily run the next day, not two.
    assert len(checklist_runs_schedule(now=datetime(2026, 11, 24, 10, tzinfo=UTC))) == 1


def test_the_schedule_words_of_headings_reach_the_templates_and_the_scheduler(runbooks):
    runbooks.load(
        "ops.md",
        "## Weekly (Friday 16:00)\n- [ ] Costs\n## Monthly (on the 15th)\n- [ ] Bills\n"
        "## Nightly\n- [ ] Backups\n## Canary traffic shift\n- [ ] Watch\n",
    )
    templates = {t.name: t for t in ChecklistTemplate.objects.all()}
    weekly = templates["Weekly (Friday 16:00)"]
    assert (weekly.cadence, weekly.due_weekday, weekly.due_time) == ("weekly", 4, time(16))
    assert (
        templates["Monthly (on the 15th)"].cadence,
        templates["Monthly (on the 15th)"].due_day,
    ) == (
        "monthly",
        15,
    )
    assert templates["Nightly"].schedule_label() == "Daily at 22:00"
    assert templates["Canary traffic shift"].cadence == "on-demand"
    friday = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)
    opened = {run.template.name for run in checklist_runs_schedule(now=friday)}
    assert "Weekly (Friday 16:00)" in opened


def test_a_renamed_heading_keeps_its_template_and_history(runbooks, capsys):
    runbooks.load("ops.md", "## Morning checks\n- [ ] Disk\n- [ ] Backups\n- [ ] Certs\n")
    (template,) = live()
    runbooks.load("ops.md", "## Early checks\n- [ ] Disk\n- [ ] Backups\n- [ ] Certs\n")
    assert [t.pk for t in live()] == [template.pk]
    template.refresh_from_db()
    assert (template.name, template.source_key) == ("Early checks", "early-checks")
    assert "(was [morning-checks])" in capsys.readouterr().out


def test_a_deleted_section_is_retired_never_deleted(runbooks, capsys):
    runbooks.load("ops.md", "## Daily checks\n- [ ] Disk\n## Weekly review\n- [ ] Costs\n")
    weekly = ChecklistTemplate.objects.get(name="Weekly review")
    daily = ChecklistTemplate.objects.get(name="Daily checks")
    assert {run.template for run in checklist_runs_schedule(now=MONDAY_10)} == {daily, weekly}
    capsys.readouterr()
    runbooks.load("ops.md", "## Weekly review\n- [ ] Costs\n")
    daily.refresh_from_db()
    assert daily.retired_at is not None and not daily.is_active
    assert ChecklistRun.objects.filter(template=daily).count() == 1  # history kept
    assert checklist_runs_schedule(now=datetime(2026, 11, 24, 10, tzinfo=UTC)) == []  # retired
    assert live() == [weekly]
    assert "- retire  Daily checks [daily-checks]" in capsys.readouterr().out
    # Back in the file: the same template comes back.
    runbooks.load("ops.md", "## Daily checks\n- [ ] Disk\n## Weekly review\n- [ ] Costs\n")
    daily.refresh_from_db()
    assert daily.retired_at is None and daily.is_active
    assert "^ revive  Daily checks" in capsys.readouterr().out


def test_files_of_the_same_name_in_two_directories_are_two_sources(runbooks):
    runbooks.write("teamA/ops.md", "## Daily\n- [ ] Team A checks the queue\n")
    runbooks.write("teamB/ops.md", "## Daily\n- [ ] Team B checks the cache\n")
    assert (
        runbooks.run(str(runbooks.root / "teamA/ops.md"), str(runbooks.root / "teamB/ops.md")) == 0
    )
    assert set(RunbookSource.objects.values_list("name", flat=True)) == {
        "teamA/ops.md",
        "teamB/ops.md",
    }
    by_source = {t.source.name: item_texts(t) for t in ChecklistTemplate.objects.all()}
    assert by_source == {
        "teamA/ops.md": ["Team A checks the queue"],
        "teamB/ops.md": ["Team B checks the cache"],
    }


def test_a_file_renamed_in_an_imported_directory_retires_the_old_checklists(runbooks, capsys):
    runbooks.write("team/ops.md", "## Daily\n- [ ] Disk\n")
    runbooks.write("team/other.md", "## Weekly\n- [ ] Costs\n")
    assert runbooks.run(str(runbooks.root / "team")) == 0
    (runbooks.root / "team/ops.md").rename(runbooks.root / "team/daily.md")
    capsys.readouterr()
    assert runbooks.run(str(runbooks.root / "team")) == 0
    assert sorted((t.source.name, t.name) for t in live()) == [
        ("team/daily.md", "Daily"),
        ("team/other.md", "Weekly"),
    ]
    old = ChecklistTemplate.objects.get(source__name="team/ops.md")
    assert old.retired_at is not None
    out = capsys.readouterr().out
    assert "team/ops.md: no longer in the directory" in out
    assert "team/other.md: unchanged" in out
    # Renamed back: its checklists come back too.
    (runbooks.root / "team/daily.md").rename(runbooks.root / "team/ops.md")
    assert runbooks.run(str(runbooks.root / "team")) == 0
    old.refresh_from_db()
    assert old.retired_at is None
    assert sorted(t.source.name for t in live()) == ["team/ops.md", "team/other.md"]


def test_importing_a_whole_root_leaves_the_sources_of_other_roots_alone(runbooks, tmp_path_factory):
    other = tmp_path_factory.mktemp("defaults")
    (other / "daily.md").write_text("## Daily\n- [ ] Disk\n")
    assert manage("import_runbook", "--root", str(other), str(other)) == 0
    runbooks.write("team.md", "## Weekly\n- [ ] Costs\n")
    assert runbooks.run(str(runbooks.root)) == 0
    assert sorted(t.name for t in live()) == ["Daily", "Weekly"]
    assert RunbookSource.objects.get(name="daily.md").root == str(other.resolve())


def test_source_name_given_explicitly_follows_the_file_wherever_it_is(runbooks):
    one = runbooks.write("a/ops.md", "## Daily\n- [ ] Disk\n")
    assert runbooks.run("--source", "ops-runbook", str(one)) == 0
    moved = runbooks.write("b/renamed.md", "## Daily\n- [ ] Disk\n- [ ] Certs\n")
    assert runbooks.run("--source", "ops-runbook", str(moved)) == 0
    (template,) = ChecklistTemplate.objects.all()
    assert template.source.name == "ops-runbook" and item_texts(template) == ["Disk", "Certs"]


def test_a_reworded_item_keeps_its_row_evidence_link_and_runs(runbooks, make_template, capsys):
    service = MonitoredService.objects.create(name="Web", slug="web", kind="http", target="x")
    runbooks.load("ops.md", "## Daily\n- [ ] Check the web service answers\n- [ ] Disk\n")
    item = ChecklistItem.objects.get(text="Check the web service answers")
    item.evidence_service = service
    item.save()
    capsys.readouterr()
    runbooks.load("ops.md", "## Daily\n- [ ] Disk\n- [ ] Check that the web service answers\n")
    item.refresh_from_db()
    assert item.text == "Check that the web service answers"
    assert item.evidence_service == service and item.position == 1
    out = capsys.readouterr().out
    assert '~ "Check the web service answers" → "Check that the web service answers"' in out


def test_repeated_headings_keep_their_items_when_a_third_is_added_above(runbooks):
    runbooks.load(
        "ops.md", "# Web\n## Checks\n- [ ] Web up\n- [ ] Web TLS\n# DB\n## Checks\n- [ ] DB up\n"
    )
    before = {t.pk: item_texts(t) for t in live()}
    runbooks.load(
        "ops.md",
        "# Web\n## Checks\n- [ ] Queue up\n## Checks\n- [ ] Web up\n- [ ] Web TLS\n"
        "# DB\n## Checks\n- [ ] DB up\n",
    )
    after = {t.pk: item_texts(t) for t in live()}
    assert {pk: after[pk] for pk in before} == before
    assert sorted(after.values()) == [["DB up"], ["Queue up"], ["Web up", "Web TLS"]]


# --- Admin edits ---------------------------------------------------------------------------------


def test_admin_edits_are_kept_as_conflicts_unless_forced(runbooks, capsys):
    runbooks.load("ops.md", "## Daily checks\n- [ ] Disk\n- [ ] Backups\n")
    template = ChecklistTemplate.objects.get()
    template.cadence = "weekly"  # a manager's edit in the admin
    template.save()
    disk = template.items.get(text="Disk")
    disk.help_text = "Look at the graph, not the number."
    disk.save()
    added = ChecklistItem.objects.create(template=template, position=5, text="Added in the admin")
    capsys.readouterr()
    runbooks.load("ops.md", "## Daily checks\n- [ ] Disk\n- [ ] Backups\n- [ ] Certificates\n")
    template.refresh_from_db()
    disk.refresh_from_db()
    assert template.cadence == "weekly"
    assert disk.help_text == "Look at the graph, not the number."
    assert ChecklistItem.objects.filter(pk=added.pk).exists()
    assert item_texts(template)[:3] == ["Disk", "Backups", "Certificates"]
    out = capsys.readouterr().out
    assert 'conflict: cadence was edited in the admin ("weekly"); the runbook says "daily"' in out
    assert "conflict: item “Disk” help_text was edited in the admin" in out
    entry = AuditEntry.objects.filter(action="runbook.import").order_by("pk").last()
    assert "2 conflicts kept" in entry.summary

    assert runbooks.run(str(runbooks.root / "ops.md"), "--force") == 0
    template.refresh_from_db()
    disk.refresh_from_db()
    assert (template.cadence, disk.help_text) == ("daily", "")


# --- Plans ---------------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_writes_nothing(runbooks, capsys):
    runbooks.load("ops.md", "## Daily\n- [ ] Disk\n- [ ] Backups\n## Weekly\n- [ ] Costs\n")
    audit = AuditEntry.objects.count()
    runbooks.write(
        "ops.md",
        "## Daily (07:00 Europe/Berlin)\n- [ ] Backups\n- [ ] Disk space\n- [ ] Certificates\n",
    )
    capsys.readouterr()
    assert runbooks.run("--dry-run", str(runbooks.root / "ops.md")) == 0
    out = capsys.readouterr().out
    assert "ops.md: changed, sha256 " in out
    for line in [
        "  ~ update  Daily (07:00 Europe/Berlin) [daily] (line 1)",
        '      due_time: "09:00" → "07:00"',
        '      time_zone: (none) → "Europe/Berlin"',
        "      items: 1 added, 1 reworded",
        '        ~ "Disk" → "Disk space" (line 3)',
        '        + "Certificates" (line 4)',
        "  - retire  Weekly [weekly]",
        "  = 0 created, 1 updated, 1 retired",
        "Dry run: nothing was written.",
    ]:
        assert line in out
    assert AuditEntry.objects.count() == audit
    assert ChecklistTemplate.objects.get(name="Daily").due_time == time(9)

    assert runbooks.run("--dry-run", "--json", str(runbooks.root / "ops.md")) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["dry_run"] is True
    (source,) = planned["sources"]
    daily = next(t for t in source["templates"] if t["key"] == "daily")
    assert daily["item_counts"] == {
        "added": 1,
        "reworded": 1,
        "moved": 0,
        "changed": 0,
        "removed": 0,
    }
    # The real import applies exactly that plan and keeps it on the source.
    assert runbooks.run(str(runbooks.root / "ops.md")) == 0
    assert RunbookSource.objects.get(name="ops.md").last_plan == source


def test_what_the_heading_does_not_say_clearly_is_a_warning_in_the_plan(runbooks, capsys):
    assert runbooks.load("ops.md", "## Daily checks (08:00 IST)\n- [ ] Disk\n") == 0
    out = capsys.readouterr().out
    assert 'warning: line 1 (Daily checks (08:00 IST)): "IST" names more than one time zone' in out
    template = ChecklistTemplate.objects.get()
    assert (template.due_time, template.time_zone) == (time(8), "")


def test_a_plan_made_stale_by_another_import_is_refused(runbooks):
    runbooks.load("ops.md", "## Daily\n- [ ] Disk\n")
    runbooks.write("ops.md", "## Daily\n- [ ] Disk\n- [ ] Certs\n")
    found = runbook_files_collect(paths=[str(runbooks.root / "ops.md")], root=str(runbooks.root))
    plans = runbook_plan_build(files=found.files)
    runbooks.load("ops.md", "## Daily\n- [ ] Disk\n- [ ] Backups\n")
    with pytest.raises(RunbookPlanStale, match="imported by someone else since the plan"):
        runbook_plan_apply(plans=plans)
    assert item_texts(ChecklistTemplate.objects.get()) == ["Disk", "Backups"]


def test_user_is_recorded_on_the_source_and_the_audit_entry(runbooks, manager):
    assert runbooks.load("ops.md", "## Daily\n- [ ] Disk\n", "--user", manager.username) == 0
    source = RunbookSource.objects.get()
    assert source.imported_by == manager and source.imported_at is not None
    assert AuditEntry.objects.get(action="runbook.import").actor == manager


def test_reimport_keeps_past_runs_and_their_copies(runbooks):
    runbooks.load("ops.md", "## Daily checks\n- [ ] Disk below 80%\n- [ ] Backups done\n")
    template = ChecklistTemplate.objects.get()
    kept = template.items.get(text="Backups done")
    (run,) = checklist_runs_schedule(now=MONDAY_10)
    (runbooks.root / "ops.md").write_bytes(
        b"## Daily checks\r\n- [ ] Backups done\r\n- [ ] Certificates valid\r\n"
    )
    assert runbooks.run(str(runbooks.root / "ops.md")) == 0
    assert item_texts(template) == ["Backups done", "Certificates valid"]
    assert template.items.get(text="Backups done").pk == kept.pk
    assert list(run.items.values_list("text", flat=True)) == ["Disk below 80%", "Backups done"]


def test_nested_items_sections_commands_and_markdown(runbooks):
    runbooks.load(
        "shift.md",
        "# Night shift\n\nWhat the night shift checks.\n\n## 🌙 Evening handover\n\n"
        "**Queues**\n"
        "- [ ] **Queue** below 50, see [Grafana](https://grafana.test/d/(q))\n"
        "  ```bash\n  redis-cli llen celery\n  ```\n"
        "  - [ ] Workers answering\n"
        "1. [x] Numbered item\n",
    )
    template = ChecklistTemplate.objects.get()
    assert (template.name, template.cadence, template.due_time) == (
        "Evening handover",
        "daily",
        time(18),
    )
    queue = template.items.get(parent=None, position=0)
    assert queue.text == "**Queue** below 50, see [Grafana](https://grafana.test/d/(q))"
    assert queue.command == "redis-cli llen celery" and queue.section.title == "Queues"
    assert [child.text for child in queue.children.all()] == ["Workers answering"]
    (run,) = checklist_runs_schedule(now=datetime(2026, 11, 23, 19, tzinfo=UTC))
    assert list(run.items.values_list("section", "depth", "text")) == [
        ("Queues", 0, queue.text),
        ("", 1, "Workers answering"),
        ("Queues", 0, "Numbered item"),
    ]


# --- Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad.md: is empty"),
        (b"   \n\n", "bad.md: is empty"),
        (b"# Title\n\nJust prose.\n- a bullet without a box\n", "contains no task-list items"),
        (b"## Checks\n- [ ] caf\xe9 ok\n", "not valid UTF-8 (byte 0xe9 at offset 19)"),
        (b"## Checks\n- [ ] " + b"x" * 501 + b"\n", "bad.md:2: item text is 501 characters"),
        (
            b"# A\n" + b"".join(b"  " * n + b"- [ ] x\n" for n in range(12)),
            "bad.md:10: nested more than 8 levels deep",
        ),
        (b"# A {#k}\n- [ ] a\n# B {#k}\n- [ ] b\n", "bad.md:3: the key {#k} is already used"),
        (b"# A\n- [ ] a\x00\n", "bad.md:2: contains a NUL byte"),
    ],
)
def test_bad_files_fail_with_one_line_and_import_nothing(runbooks, capsys, content, message):
    runbooks.write("good.md", "## Checks\n- [ ] One\n")
    (runbooks.root / "bad.md").write_bytes(content)
    assert runbooks.run(str(runbooks.root / "good.md"), str(runbooks.root / "bad.md")) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert ChecklistTemplate.objects.count() == 0 and RunbookSource.objects.count() == 0
    assert AuditEntry.objects.count() == 0


def test_bad_paths_and_options(runbooks, tmp_path_factory, capsys):
    runbooks.write("good.md", "## Checks\n- [ ] One\n")
    good = str(runbooks.root / "good.md")
    (runbooks.root / "empty-dir").mkdir()
    outside = tmp_path_factory.mktemp("elsewhere") / "ops.md"
    outside.write_text("## Checks\n- [ ] One\n")
    huge = runbooks.root / "huge.md"
    huge.write_bytes(b"- [ ] x\n" * (MAX_RUNBOOK_BYTES // 8 + 1))
    cases = [
        ((str(runbooks.root / "missing.md"),), "missing.md: no such file"),
        ((str(runbooks.root / "empty-dir"),), "no Markdown files (*.md) in this directory"),
        ((str(outside),), "is outside the root"),
        (("--source", "ops", good, good), "--source names one file; 2 paths were given"),
        (("--source", "../ops", good), "a source name is a relative path"),
        (("--source", "", good), "a source name is a relative path"),
        (("--user", "nobody-here", good), "--user nobody-here: no active user of that name"),
        (("--root", str(runbooks.root / "good.md"), good), "the root is not a directory"),
        ((str(huge),), "huge.md: is 10,485,768 bytes; a runbook may have at most 10,485,760"),
    ]
    for args, message in cases:
        assert runbooks.run(*args) == 1, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)
    assert ChecklistTemplate.objects.count() == 0 and RunbookSource.objects.count() == 0


def test_seed_without_task_lists_is_an_error(capsys):
    no_tasks = next(path for path in SEED_FILES if path.endswith("000_b59d573c297bb8c5.txt"))
    assert manage("import_runbook", "--root", str(SEEDS), no_tasks) == 1
    assert "no task-list items" in capsys.readouterr().err
