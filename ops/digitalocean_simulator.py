"""A simulated DigitalOcean API on 127.0.0.1 for `make run` without an account and for the
tests (pydo is pointed at it): the App Platform calls the deploy jobs use, in the shapes of
the real API (see ../shared/notes/pydo.md), with deployment phases advancing over time.

Plain standard library, no Django: `manage.py do_simulator` serves it, the tests start it in a
thread. Switches (attributes of the server, or POST /_sim/switches with JSON) make the next
deploy fail, hang in BUILDING, come up unhealthy, the token be refused, or the API answer
429/500 for the next N requests. GET /_sim/apps/<app id>/health is the app's own health
endpoint (200 while its active deployment is healthy, 503 otherwise).

Blue-green: a router app (``add_router``) holds the domain and two services, "blue" and
"green", each backed by one colour's app; its spec's ingress rule names the live one.
`PUT /v2/apps/<router>` (pydo ``apps.update``) with a spec whose rule names the other colour
switches the traffic; the router's health endpoint answers for the colour it routes to."""

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

STEPS = ("build", "deploy", "finalize")
# Which phase a deployment is in while each step runs, and when it has finished them all.
STEP_PHASES = {"build": "BUILDING", "deploy": "DEPLOYING", "finalize": "DEPLOYING"}
RATE_LIMIT = 5000
SIM_TOKEN = "sim-token"  # noqa: S105 - the simulator accepts this one token, it guards nothing


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimDeployment:
    id: str
    app_id: str
    created: float
    cause: str
    fail: bool = False
    stuck: bool = False
    healthy: bool = True
    canceled_at: float | None = None
    superseded: bool = False
    rollback_of: str | None = None

    def elapsed_steps(self, now: float, step_seconds: float) -> float:
        end = self.canceled_at if self.canceled_at is not None else now
        return max(0.0, (end - self.created) / step_seconds)

    def phase(self, now: float, step_seconds: float) -> str:
        done = self.elapsed_steps(now, step_seconds)
        if self.canceled_at is not None:
            return "CANCELED"
        if done < 0.5:
            return "PENDING_BUILD"
        if self.stuck:
            return "BUILDING"
        if self.fail and done >= 1.5:
            return "ERROR"
        if done >= 0.5 + len(STEPS):
            return "SUPERSEDED" if self.superseded else "ACTIVE"
        index = int(done - 0.5)
        return STEP_PHASES[STEPS[min(index, len(STEPS) - 1)]]

    def steps(self, now: float, step_seconds: float) -> list[dict]:
        done = self.elapsed_steps(now, step_seconds) - 0.5
        phase = self.phase(now, step_seconds)
        out = []
        for index, name in enumerate(STEPS):
            started = self.created + (0.5 + index) * step_seconds
            status = "PENDING"
            step = {"name": name, "status": status}
            if done >= index:
                step["started_at"] = _iso(started)
                status = "RUNNING"
                if done >= index + 1 and not (self.stuck and index == 0):
                    status = "SUCCESS"
                    step["ended_at"] = _iso(started + step_seconds)
                if self.stuck and index == 0:
                    status = "RUNNING"
                if self.fail and index == 0 and done >= 1:
                    status = "ERROR"
                    step["ended_at"] = _iso(started + step_seconds)
                    step["reason"] = {"code": "BuildJobFailed", "message": "build step exited 1"}
                if phase == "CANCELED" and status == "RUNNING":
                    status = "ERROR"
                    step["reason"] = {"code": "Canceled", "message": "deployment canceled"}
            if phase == "ERROR" and index > 0:
                status = "PENDING"
            step["status"] = status
            out.append(step)
        return out

    def as_dict(self, now: float, step_seconds: float) -> dict:
        steps = self.steps(now, step_seconds)
        finished = sum(1 for step in steps if step["status"] == "SUCCESS")
        return {
            "id": self.id,
            "cause": self.cause,
            "phase": self.phase(now, step_seconds),
            "created_at": _iso(self.created),
            "updated_at": _iso(now),
            "progress": {
                "success_steps": finished,
                "error_steps": sum(1 for step in steps if step["status"] == "ERROR"),
                "pending_steps": sum(1 for step in steps if step["status"] == "PENDING"),
                "running_steps": sum(1 for step in steps if step["status"] == "RUNNING"),
                "total_steps": len(steps),
                "steps": steps,
            },
        }

    def log_lines(self, now: float, step_seconds: float, kind: str) -> list[str]:
        lines = []
        for step in self.steps(now, step_seconds):
            if step["status"] == "PENDING":
                continue
            if kind == "BUILD" and step["name"] != "build":
                continue
            if kind == "DEPLOY" and step["name"] == "build":
                continue
            lines.append(f"{step.get('started_at', '')} {step['name']}: started")
            if step["status"] == "SUCCESS":
                lines.append(f"{step['ended_at']} {step['name']}: done")
            elif step["status"] == "ERROR":
                lines.append(f"{step['name']}: {step['reason']['message']}")
        return lines


@dataclass
class SimApp:
    id: str
    name: str
    deployments: list[SimDeployment] = field(default_factory=list)
    pinned: str | None = None  # the rollback deployment until it is committed or reverted
    pinned_previous: str | None = None
    spec: dict = field(default_factory=dict)
    colours: dict[str, str] = field(default_factory=dict)  # router: colour → app id

    def routed_colour(self) -> str:
        """A router's live colour: the component its "/" ingress rule names."""
        for rule in (self.spec.get("ingress") or {}).get("rules") or []:
            if ((rule.get("match") or {}).get("path") or {}).get("prefix") == "/":
                return (rule.get("component") or {}).get("name", "")
        return ""


def ingress_to(colour: str) -> dict:
    """The ingress rule that sends all traffic ("/") to one colour's service."""
    return {"rules": [{"match": {"path": {"prefix": "/"}}, "component": {"name": colour}}]}


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, *, step_seconds: float = 2.0, token: str = SIM_TOKEN):
        super().__init__(("127.0.0.1", port), _Handler)
        self.lock = threading.RLock()
        self.step_seconds = step_seconds
        self.token = token
        self.apps: dict[str, SimApp] = {}
        self.databases: set[str] = {"portal-db"}
        # Switches.
        self.fail_next = False
        self.stuck_next = False
        self.unhealthy_next = False
        self.refuse_token = False
        self.rate_limited = 0  # answer 429 to the next N API requests
        self.server_errors = 0  # answer 500 to the next N API requests
        self.requests = 0
        self.created = 0  # deployments created, over all apps
        self.traffic_switches = 0  # router spec updates that moved the traffic
        # Apps whose own health endpoint fails although DigitalOcean calls them HEALTHY.
        self.broken_endpoints: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def add_app(self, app_id: str, name: str) -> SimApp:
        """An app with one ACTIVE, healthy deployment already there."""
        with self.lock:
            app = SimApp(app_id, name, spec={"name": name})
            first = SimDeployment(
                str(uuid.uuid4()), app_id, time.time() - 10 * self.step_seconds, "initial"
            )
            app.deployments.append(first)
            self.apps[app_id] = app
            return app

    def add_router(self, app_id: str, name: str, *, blue: str, green: str) -> SimApp:
        """A blue-green router: the domain, a service per colour, traffic on blue."""
        with self.lock:
            app = self.add_app(app_id, name)
            app.colours = {"blue": blue, "green": green}
            app.spec = {
                "name": name,
                "domains": [{"domain": f"{name}.example.com", "type": "PRIMARY"}],
                "services": [
                    {"name": colour, "app_id": target} for colour, target in app.colours.items()
                ],
                "ingress": ingress_to("blue"),
            }
            return app

    def routed_app(self, app: SimApp) -> SimApp:
        """The app whose deployment answers on this app's domain (a router: its live colour)."""
        if app.colours:
            return self.apps.get(app.colours.get(app.routed_colour(), ""), app)
        return app

    def switches(self) -> dict:
        names = ("fail_next", "stuck_next", "unhealthy_next", "refuse_token")
        values = {name: getattr(self, name) for name in names}
        values.update(rate_limited=self.rate_limited, server_errors=self.server_errors)
        values["step_seconds"] = self.step_seconds
        return values

    def set_switches(self, values: dict) -> None:
        with self.lock:
            for name in ("fail_next", "stuck_next", "unhealthy_next", "refuse_token"):
                if name in values:
                    setattr(self, name, bool(values[name]))
            for name in ("rate_limited", "server_errors"):
                if name in values:
                    setattr(self, name, int(values[name]))
            if "step_seconds" in values:
                self.step_seconds = max(0.01, float(values["step_seconds"]))

    def active(self, app: SimApp, now: float) -> SimDeployment | None:
        if app.pinned:
            pinned = self.find(app, app.pinned)
            if pinned and pinned.phase(now, self.step_seconds) == "ACTIVE":
                return pinned
        live = [d for d in app.deployments if d.phase(now, self.step_seconds) in ("ACTIVE",)]
        return live[-1] if live else None

    @staticmethod
    def find(app: SimApp, deployment_id: str) -> SimDeployment | None:
        return next((d for d in app.deployments if d.id == deployment_id), None)

    def refresh(self, app: SimApp, now: float) -> None:
        """Older ACTIVE deployments become SUPERSEDED once a newer one is ACTIVE."""
        active = self.active(app, now)
        for deployment in app.deployments:
            replaced = active and deployment is not active and not app.pinned
            if replaced and deployment.phase(now, self.step_seconds) == "ACTIVE":
                deployment.superseded = True

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: SimulatorServer

    def log_message(self, *args):
        pass

    def _send(self, status: int, payload, *, text: bool = False) -> None:
        data = (payload if text else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Simulated-DigitalOcean", "1")
        remaining = max(0, RATE_LIMIT - self.server.requests)
        self.send_header("ratelimit-limit", str(RATE_LIMIT))
        self.send_header("ratelimit-remaining", str(remaining))
        self.send_header("ratelimit-reset", str(int(time.time()) + 60))
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self):
        message = "The resource you requested could not be found."
        return self._send(404, {"id": "not_found", "message": message})

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    def _route(self, method: str):
        server = self.server
        url = urlparse(self.path)
        parts = [part for part in url.path.split("/") if part]
        if parts[:1] == ["_sim"]:
            return self._control(method, parts[1:], parse_qs(url.query))
        with server.lock:
            server.requests += 1
            if server.refuse_token or self.headers.get("Authorization") != f"Bearer {server.token}":
                return self._send(
                    401, {"id": "unauthorized", "message": "Unable to authenticate you"}
                )
            if server.rate_limited > 0:
                server.rate_limited -= 1
                message = "API rate limit exceeded."
                return self._send(429, {"id": "too_many_requests", "message": message})
            if server.server_errors > 0:
                server.server_errors -= 1
                return self._send(500, {"id": "server_error", "message": "Server Error"})
            if parts[:2] == ["v2", "databases"] and parts[3:] == ["backups"]:
                return self._database_backups(parts[2])
            if parts[:2] != ["v2", "apps"] or len(parts) < 3:
                return self._not_found()
            app = server.apps.get(parts[2])
            if app is None:
                return self._not_found()
            now = time.time()
            server.refresh(app, now)
            rest = parts[3:]
            step = server.step_seconds
            if not rest and method == "GET":
                active = server.active(app, now)
                body = {"id": app.id, "spec": app.spec}
                if active:
                    body["active_deployment"] = active.as_dict(now, step)
                if app.pinned:
                    body["pinned_deployment"] = {"id": app.pinned}
                return self._send(200, {"app": body})
            if not rest and method == "PUT":
                return self._update(app, self._body())
            if rest == ["deployments"] and method == "GET":
                listed = [d.as_dict(now, step) for d in reversed(app.deployments)]
                meta = {"total": len(listed)}
                return self._send(
                    200, {"deployments": listed, "links": {"pages": {}}, "meta": meta}
                )
            if rest == ["deployments"] and method == "POST":
                self._body()
                if app.pinned:
                    message = "The app is pinned by a rollback; commit or revert it first."
                    return self._send(409, {"id": "conflict", "message": message})
                deployment = SimDeployment(
                    str(uuid.uuid4()),
                    app.id,
                    now,
                    "manual",
                    fail=server.fail_next,
                    stuck=server.stuck_next,
                    healthy=not server.unhealthy_next,
                )
                server.fail_next = server.stuck_next = server.unhealthy_next = False
                app.deployments.append(deployment)
                server.created += 1
                return self._send(200, {"deployment": deployment.as_dict(now, step)})
            if len(rest) >= 2 and rest[0] == "deployments":
                deployment = server.find(app, rest[1])
                if deployment is None:
                    return self._not_found()
                if len(rest) == 2 and method == "GET":
                    return self._send(200, {"deployment": deployment.as_dict(now, step)})
                if rest[2:] == ["cancel"] and method == "POST":
                    if deployment.phase(now, step) not in ("ACTIVE", "ERROR", "SUPERSEDED"):
                        deployment.canceled_at = now
                    return self._send(200, {"deployment": deployment.as_dict(now, step)})
                if rest[2:] == ["logs"] and method == "GET":
                    kind = (parse_qs(url.query).get("type") or ["BUILD"])[0]
                    live = f"{server.url}/_sim/logs/{app.id}/{deployment.id}/{kind}"
                    return self._send(200, {"live_url": live, "historic_urls": [live]})
            if rest == ["health"] and method == "GET":
                active = server.active(app, now)
                state = "HEALTHY" if active and active.healthy else "UNHEALTHY"
                component = {"name": app.name, "state": state, "cpu_usage_percent": 12.5}
                return self._send(200, {"app_health": {"components": [component]}})
            if rest[:1] == ["rollback"] and method == "POST":
                return self._rollback(app, rest[1:], self._body(), now)
            return self._not_found()

    def _update(self, app: SimApp, body: dict):
        """apps.update: a new spec; on a router, an ingress rule must name one of its services
        (400 otherwise), and a changed colour moves the traffic."""
        spec = body.get("spec")
        if not isinstance(spec, dict) or not spec.get("name"):
            return self._send(400, {"id": "bad_request", "message": "spec.name is required"})
        if app.colours:
            names = {service.get("name") for service in spec.get("services") or []}
            for rule in (spec.get("ingress") or {}).get("rules") or []:
                component = (rule.get("component") or {}).get("name")
                if component not in names:
                    message = f"ingress rule component {component!r} is not a service of the app"
                    return self._send(400, {"id": "bad_request", "message": message})
        before = app.routed_colour()
        app.spec = spec
        if app.colours and app.routed_colour() != before:
            self.server.traffic_switches += 1
        return self._send(200, {"app": {"id": app.id, "spec": app.spec}})

    def _database_backups(self, database_id: str):
        """A managed database's daily backups: any id the simulator's databases list knows."""
        if database_id not in self.server.databases:
            return self._not_found()
        now = time.time()
        backups = [
            {"created_at": _iso(now - day * 86400 - 3600), "size_gigabytes": 0.42 + day / 100}
            for day in range(7)
        ]
        schedule = {"backup_hour": 1, "backup_minute": 0, "backup_interval_hours": 24}
        return self._send(200, {"backups": backups, "scheduled_backup_time": schedule})

    def _rollback(self, app: SimApp, rest: list[str], body: dict, now: float):
        server = self.server
        step = server.step_seconds
        if rest == ["validate"]:
            target = server.find(app, body.get("deployment_id", ""))
            if target is None:
                error = {"code": "deployment_not_found", "message": "no such deployment"}
                return self._send(200, {"valid": False, "error": error, "warnings": []})
            if target.phase(now, step) not in ("ACTIVE", "SUPERSEDED"):
                error = {"code": "deployment_not_rollbackable", "message": "never went live"}
                return self._send(200, {"valid": False, "error": error, "warnings": []})
            return self._send(200, {"valid": True, "warnings": []})
        if rest == []:
            target = server.find(app, body.get("deployment_id", ""))
            if target is None:
                return self._not_found()
            active = server.active(app, now)
            deployment = SimDeployment(
                str(uuid.uuid4()),
                app.id,
                now,
                "rollback",
                healthy=target.healthy,
                rollback_of=target.id,
            )
            app.deployments.append(deployment)
            server.created += 1
            if not body.get("skip_pin"):
                app.pinned = deployment.id
                app.pinned_previous = active.id if active else None
            return self._send(200, {"deployment": deployment.as_dict(now, step)})
        if rest == ["commit"]:
            if not app.pinned:
                return self._send(200, {"id": "not_found", "message": "no rollback to commit"})
            pinned = server.find(app, app.pinned)
            app.pinned = app.pinned_previous = None
            for deployment in app.deployments:
                if deployment is not pinned and deployment.phase(now, step) == "ACTIVE":
                    deployment.superseded = True
            return self._send(200, {})
        if rest == ["revert"]:
            if not app.pinned:
                return self._send(200, {"id": "not_found", "message": "no rollback to revert"})
            pinned = server.find(app, app.pinned)
            pinned.superseded = True
            app.pinned = app.pinned_previous = None
            return self._send(200, {"deployment": pinned.as_dict(now, step)})
        return self._not_found()

    def _control(self, method: str, parts: list[str], query: dict):
        server = self.server
        with server.lock:
            if parts == ["switches"]:
                if method == "POST":
                    server.set_switches(self._body())
                return self._send(200, server.switches())
            if parts == ["apps"] and method == "POST":
                body = self._body()
                app = server.add_app(str(body.get("id") or uuid.uuid4()), body.get("name", "app"))
                return self._send(200, {"id": app.id})
            if len(parts) == 3 and parts[0] == "apps" and parts[2] == "health":
                app = server.apps.get(parts[1])
                if app is None:
                    return self._send(404, {"status": "unknown app"})
                app = server.routed_app(app)
                active = server.active(app, time.time())
                if active and active.healthy and app.id not in server.broken_endpoints:
                    return self._send(200, {"status": "ok", "deployment": active.id})
                return self._send(503, {"status": "unhealthy"})
            if len(parts) == 4 and parts[0] == "logs":
                app = server.apps.get(parts[1])
                deployment = server.find(app, parts[2]) if app else None
                if deployment is None:
                    return self._send(404, "no such log\n", text=True)
                lines = deployment.log_lines(time.time(), server.step_seconds, parts[3])
                return self._send(200, "".join(f"{line}\n" for line in lines), text=True)
        return self._send(404, {"id": "not_found", "message": "unknown simulator path"})


def start_in_thread(**options) -> tuple[SimulatorServer, threading.Thread]:
    server = SimulatorServer(**options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
