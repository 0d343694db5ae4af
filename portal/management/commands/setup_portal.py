"""First-run setup used by `make run`: migrate, create the admin (and with --demo one user per
role), run the apps' setup steps (the default runbooks, the demo monitoring, this period's
runs: portal.registry), print generated passwords once."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal import roles
from portal.registry import SetupFailed, registry

DEMO_USERS = [
    ("operator", roles.OPERATOR, False),
    ("manager", roles.MANAGER, True),
    ("imagestaff", roles.IMAGE_STAFF, False),
    ("dpo", roles.DPO, False),
]
CHANGEPASSWORD_COMMAND = ".venv/bin/python manage.py changepassword"


@dataclass(frozen=True)
class SetupUser:
    username: str
    role: str
    password: str | None  # None: the user existed, its password is unchanged


@dataclass(frozen=True)
class SetupResult:
    lines: list[str]  # what each app's setup step did
    users: list[SetupUser]


def portal_setup(*, demo: bool, admin: str = "admin") -> SetupResult:
    """Idempotent: migrate, create the missing users (new ones get a generated password,
    returned once), then the apps' setup steps."""
    call_command("migrate", interactive=False, verbosity=0)
    with transaction.atomic():
        users = [_user(admin, roles.ADMIN, staff=True, superuser=True)]
        if demo:
            users += [_user(name, role, staff=staff) for name, role, staff in DEMO_USERS]
    lines = [line for step in registry.setup_steps if (line := step.run(demo=demo))]
    return SetupResult(lines=lines, users=users)


class Command(BaseCommand):
    help = "Prepare the portal for a first run (idempotent: safe to run every start)."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Also create one user per role.")
        parser.add_argument("--admin", default="admin", help="Username of the admin to create.")

    def handle(self, *args, demo: bool, admin: str, **options):
        try:
            result = portal_setup(demo=demo, admin=admin)
        except SetupFailed as failed:
            raise CommandError(str(failed)) from failed
        for line in result.lines:
            self.stdout.write(line)
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
