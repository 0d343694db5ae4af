"""A shift's load on gunicorn, as the Procfile starts it, with PostgreSQL and Redis.

    DATABASE_URL=postgres://…/NAME REDIS_URL=redis://…/N python bench/load.py [--seconds 30]

Builds (once, then reuses) the database ``NAME_load`` with the data of the other benchmarks:
20 daily templates with a year of runs and today's runs open (bench/checklists.py), 50
services with 30 days of results (bench/health.py), 10,000 incidents (bench/incidents.py) and
five open ones. Sessions for 100 operators, watchers and managers are made in the database
(nobody logs in during the run). Then starts the Procfile's ``web`` command (gunicorn with
gunicorn.conf.py) on 127.0.0.1, its ``worker`` and ``beat`` (the 50 services are checked at
their intervals against a local server answering 200, so results arrive and caches are
invalidated as on a shift), and runs Locust headless (bench/locustfile.py) against it:

- operators: Today, today's run, a tick every few seconds, the run page polling every
  CHECKLIST_POLL_SECONDS; watchers: the health page polling every 10 s and an open incident's
  page polling; managers: the incident list with filters, the report, the audit log;
- 10, 50 and 100 users (6 : 3 : 1), ``--seconds`` each after the users have started;
- then 20 users polling an unchanged run without pause: the "no change" answers per second.

Prints requests/s, P50/P95/P99 per endpoint and the errors for each level, the largest level
whose P95 stays under 250 ms for every endpoint, and the "no change" rate. Locust's own CSV
files are left in var/bench-load/. The load generator runs on the same machine.
"""

import argparse
import csv
import http.server
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "bench-load"
LEVELS = (10, 50, 100)
P95_TARGET_MS = 250
NO_CHANGE_USERS = 20
STAGGER_SECONDS = 20  # about one operator's cycle: Today, the run page, six polls and ticks
OPEN_INCIDENTS = 5


def _load_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_load"))


def _create_database(url: str) -> bool:
    """Create the load database when missing; True when it was created."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.strip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if exists.fetchone():
            return False
        connection.execute(f'CREATE DATABASE "{name}"')
    return True


def build(plan_path: Path) -> None:
    """In a child process with DATABASE_URL pointing at the load database."""
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    import random
    from datetime import timedelta

    import checklists
    import health
    import incidents
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.utils import timezone

    from ops.models import ChecklistRun, ChecklistTemplate, Incident, MonitoredService
    from ops.services.checklists import checklist_run_start, checklist_runs_schedule
    from portal.sessions import SessionStore

    call_command("migrate", verbosity=0)
    now = timezone.now()
    started = time.perf_counter()
    if not ChecklistTemplate.objects.filter(slug="check-00").exists():
        print("Building the load database (once) …", flush=True)
        owner = User.objects.create_user("bench-load-owner")
        owner.groups.add(Group.objects.get(name="Operator"))
        templates = checklists.build_templates(now)
        checklists.add_history(templates, owner, now, days=checklists.DAYS)
        services = health.build_services(now)
        health.fill(services, now, raw_hours=48, rollup_hours=24 * 30)
        incidents.add_incidents(10_000, [owner], now, random.Random(4))
        print(f"Built in {time.perf_counter() - started:.0f} s", flush=True)
    # The services are checked during the run, as on a real shift (worker and beat run beside
    # gunicorn): against a small local server that answers 200, due at once.
    target = os.environ["LOAD_CHECK_TARGET"]
    for service in MonitoredService.objects.filter(slug__startswith="service-"):
        service.target = f"{target}/{service.slug}"
        service.next_check_at = now
        service.save(update_fields=["target", "next_check_at"])
    # Today's runs (the periods move with the days), and a quiet run for the "no change" polls.
    checklist_runs_schedule(now=now)
    owner = User.objects.get(username="bench-load-owner")
    quiet = ChecklistRun.objects.filter(label="bench quiet run").first()
    if quiet is None:
        quiet = checklist_run_start(
            template=ChecklistTemplate.objects.get(slug="check-00"),
            user=owner,
            label="bench quiet run",
        )
    open_incidents = list(
        Incident.objects.filter(status="investigating").values_list("pk", flat=True)
    )
    for number in range(OPEN_INCIDENTS - len(open_incidents)):
        template = Incident.objects.filter(status="closed").first()
        template.pk = None
        template.title = f"Open incident {number}"
        template.status = "investigating"
        template.acknowledged_at = template.resolved_at = template.closed_at = None
        template.detected_at = template.started_at = now - timedelta(minutes=10)
        template.response_due_at = now + timedelta(hours=2)
        template.escalation_due_at = now + timedelta(hours=4)
        template.save()
        open_incidents.append(template.pk)
    today = [
        run
        for run in ChecklistRun.objects.filter(status="open", period_start__isnull=False)
        .order_by("template__slug")
        .prefetch_related("items")
        if run.period_start <= now < run.period_end
    ]

    def sessions(role: str, group: str, count: int) -> list[str]:
        keys = []
        for number in range(count):
            user, created = User.objects.get_or_create(username=f"bench-{role}-{number:03}")
            if created:
                user.set_unusable_password()  # nobody logs in: hashing 180 passwords takes minutes
                user.save()
                user.groups.add(Group.objects.get(name=group))
            store = SessionStore()
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
            keys.append(store.session_key)
        return keys

    plan = {
        "runs": [
            {"id": run.pk, "items": [item.pk for item in run.items.order_by("position")]}
            for run in today
        ],
        "quiet_run": {"id": quiet.pk, "version": ChecklistRun.objects.get(pk=quiet.pk).version},
        "incidents": open_incidents,
        "sessions": {
            "operator": sessions("operator", "Operator", 100),
            "watcher": sessions("watcher", "Operator", 60),
            "manager": sessions("manager", "Manager", 20),
        },
        "checklist_poll_seconds": settings.CHECKLIST_POLL_SECONDS,
        "health_poll_seconds": settings.HEALTH_POLL_SECONDS,
        "incident_poll_seconds": settings.INCIDENT_POLL_SECONDS,
        "counts": {
            "runs": ChecklistRun.objects.count(),
            "services": MonitoredService.objects.count(),
            "incidents": Incident.objects.count(),
        },
    }
    plan_path.write_text(json.dumps(plan))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _procfile(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            # The access log goes to stdout: not here, where it would be most of the output.
            return line.removeprefix(f"{name}:").strip().replace(" --access-logfile -", "")
    raise SystemExit(f"The Procfile has no {name} process")


def _web_command() -> str:
    return _procfile("web")


class _Ok(http.server.BaseHTTPRequestHandler):
    """The monitored services' stand-in: every check gets 200 at once."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def _check_target() -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 (127.0.0.1 only)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer {url} within {seconds:.0f} s")


def _locust(env: dict, host: str, users: int, seconds: int, classes: list[str], name: str):
    prefix = OUT / name
    # Measured from the moment every user has begun (bench/locustfile.py staggers them).
    stagger = STAGGER_SECONDS if "Poller" not in classes else 0
    reset_after = users / max(5, users // 3) + stagger + 1
    env = {**env, "LOAD_STAGGER_SECONDS": str(stagger), "LOAD_RESET_AFTER": str(reset_after)}
    command = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(ROOT / "bench" / "locustfile.py"),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(max(5, users // 3)),
        "--run-time",
        f"{seconds + reset_after:.0f}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "ERROR",
        "--stop-timeout",
        "5",
        *classes,
    ]
    subprocess.run(
        command, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _row(stats: dict) -> tuple:
    return (
        int(stats["Request Count"]),
        float(stats["Requests/s"]),
        float(stats["50%"] or 0),
        float(stats["95%"] or 0),
        float(stats["99%"] or 0),
        int(stats["Failure Count"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="measured time per level")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.plan:
        build(Path(arguments.plan))
        return
    database, redis = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not database.startswith(("postgres://", "postgresql://")) or not redis:
        print("bench/load.py needs PostgreSQL and Redis: set DATABASE_URL=postgres://… REDIS_URL=…")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    var = OUT / "var"
    env = {
        **os.environ,
        "DATABASE_URL": _load_url(database),
        "CACHE_KEY_PREFIX": "bench-load",
        "PORTAL_VAR_DIR": str(var),
        "LOG_LEVEL": "WARNING",
        "LOAD_PLAN": str(OUT / "plan.json"),
        "PORTAL_STATIC_MANIFEST": "1",  # hashed names, as after the release step
        "LOAD_CHECK_TARGET": _check_target(),
    }
    if _create_database(env["DATABASE_URL"]):
        print(f"Created {urlsplit(env['DATABASE_URL']).path.strip('/')}")
    python = sys.executable
    subprocess.run([python, __file__, "--plan", env["LOAD_PLAN"]], env=env, check=True)
    if arguments.build_only:
        return
    subprocess.run(
        [python, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        env=env,
        cwd=ROOT,
        check=True,
    )
    plan = json.loads(Path(env["LOAD_PLAN"]).read_text())
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    web = _web_command() + f" --bind 127.0.0.1:{port}"
    bin_dir = str(Path(python).parent)
    env_web = {
        **env,
        "PATH": f"{bin_dir}:{env.get('PATH', '')}",
        "GUNICORN_CMD_ARGS": "--log-level warning",
    }
    server = subprocess.Popen(
        ["bash", "-c", f"exec {web}"], env=env_web, cwd=ROOT, start_new_session=True
    )
    # Worker and beat as the Procfile starts them: the checks run and their results arrive
    # during the load, so every cache is invalidated as it would be on a shift.
    with open(OUT / "background.log", "w") as log:
        background = [
            subprocess.Popen(
                ["bash", "-c", f"exec {_procfile(name)}"],
                env=env_web,
                cwd=ROOT,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for name in ("worker", "beat")
        ]
    load_started = time.time()
    try:
        _wait_for(f"{host}/api/health", 60)
        manifest = json.loads((var / "staticfiles" / "staticfiles.json").read_text())
        hashed = manifest["paths"]["portal/portal.css"]
        static = urllib.request.urlopen(f"{host}/static/{hashed}")  # noqa: S310
        print(
            f"gunicorn: {web}\n  ({shlex.quote(os.environ.get('WEB_WORKER_CLASS', ''))} "
            f"WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', 'default')} "
            f"WEB_THREADS={os.environ.get('WEB_THREADS', 'default')}); "
            f"static files (hashed names): Cache-Control {static.headers.get('Cache-Control')}"
        )
        print(
            f"Data: {plan['counts']['runs']} checklist runs, {plan['counts']['services']} "
            f"services, {plan['counts']['incidents']} incidents; {len(plan['runs'])} runs open "
            f"today; Locust on the same machine, {arguments.seconds} s per level"
        )
        # Warm up: the workers' first requests import templates and fill the caches.
        _locust(env, host, 10, 10, ["Operator", "Watcher", "Manager"], "warm-up")
        results = {}
        for users in map(int, arguments.levels.split(",")):
            rows = _locust(
                env, host, users, arguments.seconds, ["Operator", "Watcher", "Manager"], f"u{users}"
            )
            results[users] = rows
            _print_level(users, rows)
        passing = [
            users
            for users, rows in results.items()
            if all(_row(r)[3] < P95_TARGET_MS and _row(r)[5] == 0 for r in rows)
        ]
        print(
            f"Largest level with P95 < {P95_TARGET_MS} ms on every endpoint and no errors: "
            + (f"{max(passing)} users" if passing else "none of the levels")
        )
        rows = _locust(env, host, NO_CHANGE_USERS, 15, ["Poller"], "no-change")
        polls = [r for r in rows if r["Name"] == "no-change poll"]
        if not polls:
            print('"No change" poll answers: none answered within the 15 s FAIL')
            return
        _count, rate, p50, p95, _p99, errors = _row(polls[0])
        print(
            f'"No change" poll answers: {rate:.0f}/s ({NO_CHANGE_USERS} users without pause, '
            f"P50 {p50:.0f} ms, P95 {p95:.0f} ms, {errors} errors) "
            + ("PASS" if rate >= 500 else "FAIL")
            + " (target >= 500/s)"
        )
        print(
            f"Health checks during the run: {_results_since(env['DATABASE_URL'], load_started)} "
            "results stored by the worker"
        )
    finally:
        for process in (server, *background):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (server, *background):
            process.wait(timeout=30)


def _results_since(url: str, started: float) -> int:
    import psycopg

    with psycopg.connect(url) as connection:
        query = "SELECT count(*) FROM ops_checkresult WHERE checked_at >= to_timestamp(%s)"
        return connection.execute(query, [started]).fetchone()[0]


def _print_level(users: int, rows: list[dict]) -> None:
    print(f"\n{users} users")
    print(f"{'endpoint':28}{'requests':>9}{'req/s':>8}{'P50':>8}{'P95':>8}{'P99':>8}{'errors':>8}")
    for stats in rows:
        count, rate, p50, p95, p99, errors = _row(stats)
        name = "all" if stats["Name"] == "Aggregated" else stats["Name"]
        print(f"{name:28}{count:>9}{rate:>8.1f}{p50:>6.0f}ms{p95:>6.0f}ms{p99:>6.0f}ms{errors:>8}")


if __name__ == "__main__":
    main()
