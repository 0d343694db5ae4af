"""python manage.py import_runbook FILE.md [FILE.md ...] [--dry-run] [--json]"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ops.runbooks.parser import RunbookError, checklist_as_dict, parse_runbook
from ops.services.runbooks import runbook_import


def read_runbooks(paths: list[str]) -> list[tuple[str, list]]:
    """Parse every file before anything is written, so one bad file imports nothing."""
    parsed = []
    for name in paths:
        path = Path(name)
        if not path.exists():
            raise CommandError(f"{name}: no such file")
        if not path.is_file():
            raise CommandError(f"{name}: not a file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{name}: cannot be read ({exc.strerror})") from exc
        try:
            parsed.append((path.name, parse_runbook(data, name=path.name)))
        except RunbookError as exc:
            raise CommandError(str(exc)) from exc
    return parsed


class Command(BaseCommand):
    help = (
        "Import Markdown runbooks as checklist templates: every heading with task-list items "
        "becomes a checklist. Re-importing a file updates its checklists in place."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE.md")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be imported; write nothing."
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the checklists as a JSON list."
        )

    def handle(self, *args, files, dry_run, json: bool, **options):
        runbooks = read_runbooks(files)
        if json:
            self._print_json(runbooks)
        if dry_run:
            if not json:
                for source, checklists in runbooks:
                    for checklist in checklists:
                        self.stdout.write(
                            f"{source}: {checklist.title} ({checklist.cadence}, "
                            f"{len(checklist.items)} items)"
                        )
            return
        with transaction.atomic():
            reports = [
                (source, runbook_import(source_file=source, checklists=checklists))
                for source, checklists in runbooks
            ]
        if not json:
            for source, report in reports:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{source}: {len(report.created)} checklists created, "
                        f"{len(report.updated)} updated"
                    )
                )

    def _print_json(self, runbooks) -> None:
        payload = [
            {**checklist_as_dict(checklist), "source": source}
            for source, checklists in runbooks
            for checklist in checklists
        ]
        self.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False))
