"""`make run`: set the portal up, start web + worker + beat (honcho), and once the web server
answers print one banner with the address, who to log in as for what, the new passwords and
how long it took. Ctrl-C stops the three quietly: one line, exit status 0."""

import contextlib
import os
import shlex
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from honcho.manager import Manager
from honcho.printer import Message, Printer

from portal.management.commands.setup_portal import CHANGEPASSWORD_COMMAND, SetupUser, portal_setup

ROLE_USES = {
    "admin": "everything, including the admin",
    "operator": "tick checklists, open and work incidents",
    "manager": "what an operator may, plus templates, reports, the audit log",
    "imagestaff": "image batches and the image API",
    "dpo": "GDPR requests: subject data, exports and erasure",
}
BANNER = "banner"


class _Printer(Printer):
    """Honcho's printer, silent once the portal is stopping (the processes' shutdown lines
    are noise after a Ctrl-C); the banner is printed as it is, without a prefix."""

    stopping = False

    def write(self, message: Message) -> None:
        if self.stopping:
            return
        if message.name == BANNER:
            self.output.write(message.data)
            self.output.flush()
            return
        super().write(message)


class _Manager(Manager):
    """Honcho's manager, whose own lines ("web started (pid=…)", "sending SIGTERM") are left
    out; a signal it receives (Ctrl-C) means a deliberate stop."""

    stopped_by_signal = False

    def _system_print(self, data: str) -> None:
        if data.startswith(("SIGINT received", "SIGTERM received")):
            self.stopped_by_signal = True
            self._printer.stopping = True
        elif " stopped (rc=" in data and not self.stopped_by_signal:
            super()._system_print(data)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own http:// address)
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer, whatever its status
    except (OSError, ValueError):
        return False


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.settimeout(1)
        return probe.connect_ex((host.strip("[]"), port)) == 0


@contextlib.contextmanager
def _own_terminal_group():
    """Ctrl-C goes to the terminal's foreground process group. In a group of our own, `make`
    above us does not receive it, so it neither prints "Error 130" nor fails: we stop the
    processes and exit 0. Nothing to do without a terminal."""
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            raise OSError
        previous = os.tcgetpgrp(fd)
        os.setpgid(0, 0)
    except (OSError, ValueError):
        yield
        return
    ignore = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, os.getpgrp())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, previous)
        signal.signal(signal.SIGTTOU, ignore)


def banner(*, url: str, users: list[SetupUser], seconds: float | None) -> str:
    width = max(len(user.username) for user in users)
    lines = ["", "=" * 72, f"  The portal is ready: {url}"]
    if seconds is not None:
        lines.append(f"  Started in {seconds:.1f} s (from `make run` to the first page).")
    lines += ["", "  Log in as:"]
    for user in users:
        password = user.password or "(unchanged)"
        lines.append(
            f"    {user.username:<{width}}  {password:<18} {ROLE_USES.get(user.username, '')}"
        )
    if any(user.password for user in users):
        lines.append("  Passwords are shown this once: store them now.")
    lines += [
        f"  Forgot one? {CHANGEPASSWORD_COMMAND} NAME",
        "  Ctrl-C stops web, worker and beat.",
        "=" * 72,
        "",
    ]
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "Set the portal up and run web, worker and beat until Ctrl-C (what `make run` does)."

    def add_arguments(self, parser):
        parser.add_argument("--started-at", type=float, default=None, help="Epoch seconds.")

    def handle(self, *args, started_at: float | None, **options):
        host, port = settings.PORTAL_HOST, settings.PORTAL_PORT
        address = settings.PORTAL_DEMO_HOST
        if _port_taken(address.rsplit(":", 1)[0], port):
            raise CommandError(
                f"Port {port} already answers on {address}: another program (or another "
                f"portal) uses it. Stop it, or choose another port: make run PORT={port + 1}"
            )
        result = portal_setup(demo=True)
        call_command("collectstatic", interactive=False, verbosity=0)
        manager = _Manager(printer=_Printer(sys.stdout))
        for name, command in self._commands(host, port).items():
            manager.add_process(name, command, cwd=str(settings.BASE_DIR))
        url = f"http://{address}/"
        self.stdout.write(f"Starting web, worker and beat on {url} …")
        watcher = threading.Thread(
            target=self._announce,
            args=(manager, url, result.users, started_at),
            daemon=True,
        )
        with _own_terminal_group():
            watcher.start()
            manager.loop()
        if manager.stopped_by_signal:
            self.stdout.write("Stopped web, worker and beat.")
            return
        raise CommandError(f"A process stopped (exit status {manager.returncode}); see above.")

    def _commands(self, host: str, port: int) -> dict[str, str]:
        bin_dir = Path(sys.executable).parent
        level = settings.LIBRARY_LOG_LEVEL
        web = [
            str(bin_dir / "gunicorn"),
            "portal.wsgi:application",
            f"--config={settings.BASE_DIR / 'gunicorn.conf.py'}",
            f"--bind={host}:{port}",
            f"--log-level={level.lower()}",
        ]
        if settings.LOG_LEVEL == "DEBUG":
            web.append("--access-logfile=-")
        celery = [str(bin_dir / "celery"), "--app=portal", "--quiet"]
        worker = [
            *celery,
            "worker",
            f"--loglevel={level}",
            f"--concurrency={os.environ.get('CELERY_CONCURRENCY', '2')}",
            "--max-tasks-per-child=200",
        ]
        beat = [*celery, "beat", f"--loglevel={level}"]
        commands = {"web": shlex.join(web), "worker": shlex.join(worker), "beat": shlex.join(beat)}
        # No DigitalOcean account (`make run` points DIGITALOCEAN_API_URL at 127.0.0.1): the
        # simulated DigitalOcean runs beside the portal, by its command's name.
        api = urlsplit(settings.DIGITALOCEAN_API_URL)
        if api.hostname == "127.0.0.1" and api.port:
            simulator = [sys.executable, "manage.py", "do_simulator", f"--port={api.port}"]
            commands["do-simulator"] = shlex.join(simulator)
        return commands

    def _announce(self, manager, url: str, users: list[SetupUser], started_at) -> None:
        while not _answers(url + "accounts/login/"):
            time.sleep(0.25)
        seconds = time.time() - started_at if started_at else None
        text = banner(url=url, users=users, seconds=seconds)
        manager.events.put(Message("line", text, datetime.now(), BANNER, None))
