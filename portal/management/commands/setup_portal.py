"""First-run setup used by `make run`: migrate, load the default runbooks, create the admin (and
with --demo one user per role), print generated passwords once, open the current runs."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from ops.models import ChecklistItem, ChecklistTemplate, MonitoredService, ServiceKind
from ops.runbooks.files import runbook_files_collect
from ops.runbooks.parser import RunbookError
from ops.selectors.runbooks import runbook_plan_build
from ops.services.checklists import checklist_runs_schedule
from ops.services.runbooks import runbook_plan_apply
from portal import roles

DEFAULT_RUNBOOKS = Path(settings.BASE_DIR) / "ops" / "runbooks" / "defaults"
DEMO_USERS = [
    ("operator", roles.OPERATOR, False),
    ("manager", roles.MANAGER, True),
    ("imagestaff", roles.IMAGE_STAFF, False),
]


class Command(BaseCommand):
    help = "Prepare the portal for a first run (idempotent: safe to run every start)."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Also create one user per role.")
        parser.add_argument("--admin", default="admin", help="Username of the admin to create.")

    def handle(self, *args, demo: bool, admin: str, **options):
        call_command("migrate", interactive=False, verbosity=0)
        # Named by file name alone (as they always were); unchanged files are skipped unread.
        defaults = sorted(str(path) for path in DEFAULT_RUNBOOKS.glob("*.md"))
        try:
            found = runbook_files_collect(paths=defaults, root=str(DEFAULT_RUNBOOKS))
            plans = runbook_plan_build(files=found.files, root=found.root)
        except RunbookError as error:
            raise CommandError(f"A default runbook cannot be read: {error}") from error
        with transaction.atomic():
            runbook_plan_apply(plans=plans)
            created = [self._user(admin, roles.ADMIN, staff=True, superuser=True)]
            if demo:
                created += [self._user(name, role, staff=staff) for name, role, staff in DEMO_USERS]
                monitored = self._monitor_the_portal()
        count = ChecklistTemplate.objects.filter(
            source__name__in=[plan.name for plan in plans], retired_at__isnull=True
        ).count()
        self.stdout.write(f"Default runbooks loaded: {count} checklists.")
        if demo:
            self.stdout.write(f"Monitored services of the portal itself: {monitored}.")
        opened = checklist_runs_schedule()
        self.stdout.write(f"Runs opened for the current period: {len(opened)}.")
        new = [entry for entry in created if entry[1]]
        if new:
            self.stdout.write(self.style.WARNING("\nPasswords (shown this once; store them now):"))
            for username, password, role in new:
                self.stdout.write(f"  {role:<12} {username:<12} {password}")
            self.stdout.write("")
        for username, password, _role in created:
            if not password:
                self.stdout.write(
                    f"User {username} exists; its password is unchanged "
                    f"(reset it: python manage.py changepassword {username})."
                )

    def _monitor_the_portal(self) -> int:
        """Demo monitoring that is real: the portal's own web, workers, database and Redis."""
        services = [
            (
                "Portal web",
                ServiceKind.HTTP,
                f"http://{settings.PORTAL_DEMO_HOST}/api/health",
                {"json_field": "status", "json_value": "ok"},
            ),
            ("Celery workers", ServiceKind.CELERY, "", {}),
        ]
        if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
            services.append(("Portal database", ServiceKind.POSTGRES, settings.DATABASE_URL, {}))
        if settings.REDIS_URL:
            services.append(("Redis", ServiceKind.REDIS, settings.REDIS_URL, {}))
        for name, kind, target, extra in services:
            MonitoredService.objects.get_or_create(
                slug=slugify(name), defaults={"name": name, "kind": kind, "target": target, **extra}
            )
        web = MonitoredService.objects.get(slug="portal-web")
        ChecklistItem.objects.filter(
            text__startswith="Confirm that every component reports healthy",
            evidence_service__isnull=True,
        ).update(evidence_service=web)
        return len(services)

    def _user(self, username: str, role: str, *, staff: bool, superuser: bool = False):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None:
            return username, None, role
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(
            username=username, password=password, is_staff=staff, is_superuser=superuser
        )
        user.groups.add(Group.objects.get(name=role))
        return username, password, role
