"""`manage.py import_runbook`: the seeds, dry runs, re-imports and bad files."""

import json
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.core.management import ManagementUtility, call_command

from ops.models import ChecklistItem, ChecklistRun, ChecklistTemplate
from ops.services.checklists import checklist_runs_schedule
from tests.conftest import SEEDS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _utc(settings):
    settings.TIME_ZONE = "UTC"


SEED_FILES = sorted(str(path) for path in SEEDS.glob("00*.txt"))
IMPORTABLE = [path for path in SEED_FILES if not path.endswith("000_b59d573c297bb8c5.txt")]


def manage(*args) -> int:
    """Run the command as `manage.py` would: exit status and streams included. (It closes the
    database connections when done, which would end the test's transaction; not here.)"""
    try:
        with mock.patch("django.core.management.base.connections.close_all"):
            ManagementUtility(["manage.py", *args]).execute()
    except SystemExit as exit_:
        return exit_.code
    return 0


def test_imports_every_checklist_of_the_seeds(capsys):
    assert manage("import_runbook", *IMPORTABLE) == 0
    names = set(ChecklistTemplate.objects.values_list("name", flat=True))
    assert {
        "Action Items Checklist",
        "Weekly Checklist",
        "Monthly Checklist",
        "Pre-Maintenance Checklist",
        "Post-Maintenance Checklist",
        "Environment Setup",
        "Code Preparation",
        "Infrastructure Validation",
        "Morning Check (9 AM UTC)",
        "Response Checklist",
        "Pre-deployment Checklist",
        "Infrastructure Readiness",
    } <= names
    assert ChecklistTemplate.objects.count() == 26
    morning = ChecklistTemplate.objects.get(name__startswith="Morning Check")
    assert morning.cadence == "daily" and morning.due_time.hour == 9
    evening = ChecklistTemplate.objects.get(name__startswith="Evening Check")
    assert evening.due_time.hour == 18
    assert ChecklistTemplate.objects.get(name="Weekly Checklist").cadence == "weekly"
    assert ChecklistTemplate.objects.get(name="Response Checklist").items.count() == 8
    assert ChecklistTemplate.objects.filter(name="Weekly Tasks").count() == 2
    out = capsys.readouterr().out
    assert "004_c9cf85ce92b0c6c9.txt: 2 checklists created, 0 updated" in out


def test_dry_run_json_prints_and_writes_nothing(capsys):
    assert manage("import_runbook", "--dry-run", "--json", *IMPORTABLE) == 0
    payload = json.loads(capsys.readouterr().out)
    assert ChecklistTemplate.objects.count() == 0
    assert len(payload) == 26
    response = next(c for c in payload if c["title"] == "Response Checklist")
    assert response["cadence"] == "on-demand"
    assert response["items"][0] == {
        "text": "Acknowledge alert",
        "command": "",
        "help_text": "",
        "children": [],
    }
    assert {"title", "cadence", "items"} <= set(payload[0])


def test_nested_items_and_commands(tmp_path):
    runbook = tmp_path / "shift.md"
    runbook.write_text(
        "# Night shift\n\n## 🌙 Evening handover\n\n"
        "- [ ] **Queue** below 50\n"
        "  ```bash\n  redis-cli llen celery\n  ```\n"
        "  - [ ] Workers answering\n"
        "1. [x] Numbered item\n"
    )
    call_command("import_runbook", str(runbook))
    template = ChecklistTemplate.objects.get()
    assert template.name == "Evening handover" and template.cadence == "daily"
    queue = template.items.get(parent=None, position=0)
    assert queue.text == "Queue below 50" and queue.command == "redis-cli llen celery"
    assert [child.text for child in queue.children.all()] == ["Workers answering"]
    assert template.items.get(position=1, parent=None).text == "Numbered item"


def test_reimport_updates_in_place_and_keeps_past_runs(tmp_path):
    runbook = tmp_path / "ops.md"
    runbook.write_text("## Daily checks\n- [ ] Disk below 80%\n- [ ] Backups done\n")
    call_command("import_runbook", str(runbook))
    template = ChecklistTemplate.objects.get()
    kept = template.items.get(text="Backups done")
    (run,) = checklist_runs_schedule(now=datetime(2026, 11, 23, 10, tzinfo=UTC))

    runbook.write_text("## Daily checks\r\n- [ ] Backups done\r\n- [ ] Certificates valid\r\n")
    call_command("import_runbook", str(runbook))
    assert ChecklistTemplate.objects.count() == 1
    template.refresh_from_db()
    assert list(template.items.order_by("position").values_list("text", flat=True)) == [
        "Backups done",
        "Certificates valid",
    ]
    assert template.items.get(text="Backups done").pk == kept.pk  # same row, links survive
    assert list(run.items.values_list("text", flat=True)) == ["Disk below 80%", "Backups done"]
    assert ChecklistRun.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad.md: is empty"),
        (b"   \n\n", "bad.md: is empty"),
        (b"# Title\n\nJust prose.\n- a bullet without a box\n", "contains no task-list items"),
        (b"## Checks\n- [ ] caf\xe9 ok\n", "not valid UTF-8"),
    ],
)
def test_bad_files_fail_with_one_line_and_import_nothing(tmp_path, capsys, content, message):
    good = tmp_path / "good.md"
    good.write_text("## Checks\n- [ ] One\n")
    bad = tmp_path / "bad.md"
    bad.write_bytes(content)
    assert manage("import_runbook", str(good), str(bad)) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert ChecklistTemplate.objects.count() == 0 and ChecklistItem.objects.count() == 0


def test_missing_path_and_directory(tmp_path, capsys):
    assert manage("import_runbook", str(tmp_path / "missing.md")) == 1
    assert (
        capsys.readouterr().err.strip() == f"CommandError: {tmp_path / 'missing.md'}: no such file"
    )
    assert manage("import_runbook", str(tmp_path)) == 1
    assert "not a file" in capsys.readouterr().err
    assert ChecklistTemplate.objects.count() == 0


def test_seed_without_task_lists_is_an_error(capsys):
    no_tasks = next(path for path in SEED_FILES if path.endswith("000_b59d573c297bb8c5.txt"))
    assert manage("import_runbook", no_tasks) == 1
    assert "no task-list items" in capsys.readouterr().err
