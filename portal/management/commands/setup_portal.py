"""First-run setup used by `make run`: migrate, load the default runbooks, create the admin (and
with --demo one user per role), print generated passwords once, open the current runs."""

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.text import slugify

from ops.management.commands.import_runbook import read_runbooks
from ops.models import ChecklistItem, MonitoredService, ServiceKind
from ops.services.checklists import checklist_runs_schedule
from ops.services.runbooks import runbook_import
from portal import roles
from portal.services.audit import audit_record

DEFAULT_RUNBOOKS = Path(settings.BASE_DIR) / "ops" / "runbooks" / "defaults"
DEMO_USERS = [
    ("operator", roles.OPERATOR, False),
    ("manager", roles.MANAGER, True),
    ("imagestaff", roles.IMAGE_STAFF, False),
]
CHANGEPASSWORD_COMMAND = ".venv/bin/python manage.py changepassword"


@dataclass(frozen=True)
class SetupUser:
    username: str
    role: str
    password: str | None  # None: the user existed, its password is unchanged


@dataclass(frozen=True)
class SetupResult:
    checklists: int
    monitored: int
    runs_opened: int
    users: list[SetupUser]


def portal_setup(*, demo: bool, admin: str = "admin") -> SetupResult:
    """Idempotent: migrate, load the default runbooks, create the missing users (new ones get
    a generated password, returned once) and, for the demo, monitor the portal itself."""
    call_command("migrate", interactive=False, verbosity=0)
    runbooks = read_runbooks(sorted(str(path) for path in DEFAULT_RUNBOOKS.glob("*.md")))
    monitored = 0
    with transaction.atomic():
        for source, checklists in runbooks:
            runbook_import(source_file=source, checklists=checklists)
        users = [_user(admin, roles.ADMIN, staff=True, superuser=True)]
        if demo:
            users += [_user(name, role, staff=staff) for name, role, staff in DEMO_USERS]
            monitored = _monitor_the_portal()
    return SetupResult(
        checklists=sum(len(checklists) for _source, checklists in runbooks),
        monitored=monitored,
        runs_opened=len(checklist_runs_schedule()),
        users=users,
    )


class Command(BaseCommand):
    help = "Prepare the portal for a first run (idempotent: safe to run every start)."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Also create one user per role.")
        parser.add_argument("--admin", default="admin", help="Username of the admin to create.")

    def handle(self, *args, demo: bool, admin: str, **options):
        result = portal_setup(demo=demo, admin=admin)
        self.stdout.write(f"Default runbooks loaded: {result.checklists} checklists.")
        if demo:
            self.stdout.write(f"Monitored services of the portal itself: {result.monitored}.")
        self.stdout.write(f"Runs opened for the current period: {result.runs_opened}.")
        new = [user for user in result.users if user.password]
        if new:
            self.stdout.write(self.style.WARNING("\nPasswords (shown this once; store them now):"))
            for user in new:
                self.stdout.write(f"  {user.role:<12} {user.username:<12} {user.password}")
            self.stdout.write("")
        for user in result.users:
            if not user.password:
                self.stdout.write(
                    f"User {user.username} exists; its password is unchanged "
                    f"(reset it: {CHANGEPASSWORD_COMMAND} {user.username})."
                )


def _monitor_the_portal() -> int:
    """Demo monitoring that is real: the portal's own web, workers, database and Redis. The
    web check follows HOST and PORT, so a portal started on another port checks itself and not
    whatever answers on the old one."""
    web_target = f"http://{settings.PORTAL_DEMO_HOST}/api/health"
    services = [
        ("Portal web", ServiceKind.HTTP, web_target, {"json_field": "status", "json_value": "ok"}),
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
    if web.target != web_target:
        before = {"target": web.target}
        web.target = web_target
        web.next_check_at = None
        web.save(update_fields=["target", "next_check_at"])
        audit_record(
            actor=None,
            action="service.update",
            target=web,
            summary="target follows HOST and PORT",
            before=before,
            after={"target": web_target},
        )
    ChecklistItem.objects.filter(
        text__startswith="Confirm that every component reports healthy",
        evidence_service__isnull=True,
    ).update(evidence_service=web)
    return len(services)


def _user(username: str, role: str, *, staff: bool, superuser: bool = False) -> SetupUser:
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        return SetupUser(username=username, role=role, password=None)
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(
        username=username, password=password, is_staff=staff, is_superuser=superuser
    )
    user.groups.add(Group.objects.get(name=role))
    return SetupUser(username=username, role=role, password=password)
