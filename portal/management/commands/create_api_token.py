from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portal.errors import ActionRefused
from portal.services.tokens import api_token_create


class Command(BaseCommand):
    help = "Make an API token for a user and print it once (only its digest is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What will use it.")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named “{username}”.")
        try:
            _token, raw = api_token_create(user=user, name=name)
        except ActionRefused as refused:
            raise CommandError(refused.message) from refused
        self.stdout.write(raw)
