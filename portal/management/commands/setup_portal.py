"""First-run setup used by `make run`: migrate, create the admin (and with --demo one user per
role), run the apps' setup steps (the default runbooks, the demo monitoring, this period's
runs: portal.registry), print generated passwords once."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from portal import roles
from portal.registry import registry

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
        with transaction.atomic():
            created = [self._user(admin, roles.ADMIN, staff=True, superuser=True)]
            if demo:
                created += [self._user(name, role, staff=staff) for name, role, staff in DEMO_USERS]
        for step in registry.setup_steps:
            line = step.run(demo=demo)
            if line:
                self.stdout.write(line)
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
