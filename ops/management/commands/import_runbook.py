"""python manage.py import_runbook PATH [PATH ...] [--root DIR | --source NAME] [--dry-run]
[--json] [--force] [--user NAME]"""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ops.runbooks.files import runbook_files_collect
from ops.runbooks.parser import RunbookError
from ops.runbooks.plan import plan_as_text
from ops.selectors.runbooks import runbook_plan_build
from ops.services.runbooks import RunbookPlanStale, runbook_plan_apply


class Command(BaseCommand):
    help = (
        "Import Markdown runbooks as checklist templates: every heading with task-list items "
        "becomes a checklist. Each file is a source named by its path relative to --root (or "
        "--source NAME); re-importing it updates, adds and retires its checklists as its plan "
        "shows. A directory imports every *.md under it and retires the checklists of files "
        "that are gone from it."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Files or directories.")
        parser.add_argument(
            "--root",
            default=".",
            help="Sources are named by their path relative to this directory (default: the "
            "current directory).",
        )
        parser.add_argument("--source", help="Name the one file given as this source.")
        parser.add_argument("--dry-run", action="store_true", help="Show the plan; write nothing.")
        parser.add_argument("--json", action="store_true", help="Print the plan as JSON.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Take the runbook's values over edits made in the admin, and re-plan sources "
            "whose file is unchanged.",
        )
        parser.add_argument("--user", help="Record the import as done by this user.")

    def handle(self, *args, paths, root, source, dry_run, json: bool, force, user, **options):
        actor = self._user(user)
        try:
            found = runbook_files_collect(paths=paths, root=root, source=source)
            plans = runbook_plan_build(
                files=found.files, root=found.root, gone_under=found.directories, force=force
            )
        except RunbookError as error:
            raise CommandError(str(error)) from error
        shown = [plan.as_dict() for plan in plans]
        if json:
            self.stdout.write(_json_dump({"dry_run": dry_run, "sources": shown}))
        else:
            self.stdout.write(plan_as_text(shown))
        if dry_run:
            if not json:
                self.stdout.write("Dry run: nothing was written.")
            return
        try:
            applied = runbook_plan_apply(plans=plans, user=actor)
        except RunbookPlanStale as stale:
            raise CommandError(stale.message) from stale
        if not json:
            skipped = len(plans) - len(applied)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Imported {len(applied)} source{'s' if len(applied) != 1 else ''}"
                    f"{f', {skipped} unchanged' if skipped else ''}."
                )
            )

    def _user(self, username: str | None):
        if username is None:
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"--user {username}: no active user of that name")
        return user


def _json_dump(payload: dict) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False)
