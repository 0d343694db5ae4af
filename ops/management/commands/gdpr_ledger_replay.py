"""After restoring a source from a backup: erase again everyone the erasure ledger says was
erased, so they do not come back (counts per table are printed, never values)."""

from django.core.management.base import BaseCommand, CommandError

from ops.models import DataSource
from ops.services.gdpr_jobs import gdpr_ledger_replay
from ops.services.gdpr_sources import SourceError


class Command(BaseCommand):
    help = "Replay the GDPR erasure ledger on restored sources."

    def add_arguments(self, parser):
        parser.add_argument("--source", help="Only this source (its name); default: all active.")

    def handle(self, *args, source=None, **options):
        chosen = None
        if source:
            chosen = DataSource.objects.filter(name=source).first()
            if chosen is None:
                names = ", ".join(DataSource.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"No source named “{source}” (configured: {names}).")
        try:
            removed = gdpr_ledger_replay(source=chosen)
        except SourceError as problem:
            raise CommandError(problem.message) from None
        for table, rows in sorted(removed.items()):
            self.stdout.write(f"{table}: {rows} row{'s' if rows != 1 else ''} erased again")
        self.stdout.write(f"Ledger replayed: {sum(removed.values())} rows erased again.")
