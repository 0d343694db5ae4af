"""python manage.py do_simulator [--port 8790] [--step-seconds 3] [--app ID:NAME ...]

Serves the simulated DigitalOcean API on 127.0.0.1 (ops.digitalocean_simulator) so deploys can
be tried with `make run` and no account: point the portal at it with
DIGITALOCEAN_API_URL=http://127.0.0.1:PORT and DIGITALOCEAN_TOKEN=sim-token."""

from django.core.management.base import BaseCommand, CommandError

from ops.digitalocean_simulator import SIM_TOKEN, SimulatorServer


class Command(BaseCommand):
    help = "Serve a simulated DigitalOcean App Platform API on 127.0.0.1."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8790)
        parser.add_argument("--step-seconds", type=float, default=3.0)
        parser.add_argument(
            "--app",
            action="append",
            default=[],
            metavar="ID:NAME",
            help="An app to serve (repeatable). "
            "Default: staging-app:staging, production-app:production.",
        )

    def handle(self, *args, port: int, step_seconds: float, app: list[str], **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {port}.")
        if step_seconds <= 0:
            raise CommandError("--step-seconds must be more than 0.")
        apps = []
        for value in app or ["staging-app:staging", "production-app:production"]:
            app_id, sep, name = value.partition(":")
            if not sep or not app_id.strip() or not name.strip():
                raise CommandError(f"--app takes ID:NAME, not {value!r}.")
            apps.append((app_id.strip(), name.strip()))
        try:
            server = SimulatorServer(port, step_seconds=step_seconds)
        except OSError as error:
            raise CommandError(f"Cannot serve on 127.0.0.1:{port}: {error}") from error
        for app_id, name in apps:
            server.add_app(app_id, name)
        self.stdout.write(
            f"Simulated DigitalOcean on {server.url} (token {SIM_TOKEN}); apps: "
            + ", ".join(app_id for app_id, _name in apps)
            + f"\nSwitches: POST {server.url}/_sim/switches "
            '{"fail_next": true | "stuck_next" | "unhealthy_next" | "refuse_token" | '
            '"rate_limited": N | "server_errors": N}'
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
