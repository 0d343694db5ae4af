"""The personas of bench/load.py (run by it; `locust -f bench/locustfile.py` also works with
LOAD_PLAN pointing at the plan it writes). Sessions are made by the build step, so no one
logs in during the run (a login is a password hash: half a second of CPU by design).

Locust starts every user within a few seconds, and the operators' cycles are all alike: left
as they start, 30 operators would open Today in the same second every 20 s, a burst no shift
produces. So each user begins at a random moment within ``LOAD_STAGGER_SECONDS`` (one
operator's cycle), and the statistics are reset once all of them have begun
(``LOAD_RESET_AFTER``): the figures are those of the steady load."""

import itertools
import json
import os
import random
import re
import time

import gevent
from locust import FastHttpUser, HttpUser, between, constant, events, task

PLAN = json.loads(open(os.environ["LOAD_PLAN"]).read())  # noqa: SIM115 (read once at import)
SINCE = re.compile(r"\?since=(\d+)")
CSRF = "benchloadcsrftoken0123456789abcd"  # 32 characters: Django accepts it unmasked
_numbers = itertools.count()
STAGGER_SECONDS = float(os.environ.get("LOAD_STAGGER_SECONDS", "0"))
RESET_AFTER = float(os.environ.get("LOAD_RESET_AFTER", "0"))


@events.test_start.add_listener
def _reset_when_everyone_has_begun(environment, **_kwargs) -> None:
    if RESET_AFTER:
        gevent.spawn_later(RESET_AFTER, environment.stats.reset_all)


class PortalUser(HttpUser):
    abstract = True
    role = ""

    def on_start(self) -> None:
        time.sleep(random.uniform(0, STAGGER_SECONDS))
        self.number = next(_numbers)
        sessions = PLAN["sessions"][self.role]
        session = sessions[self.number % len(sessions)]
        self.client.cookies.set("sessionid", session)
        self.client.cookies.set("csrftoken", CSRF)

    def htmx(self) -> dict:
        return {"HX-Request": "true", "X-CSRFToken": CSRF}

    def poll(self, url: str, name: str, version: int) -> int:
        with self.client.get(
            f"{url}?since={version}", headers=self.htmx(), name=name, catch_response=True
        ) as response:
            if response.status_code in (200, 204, 286):
                response.success()
                found = SINCE.search(response.text or "")
                return int(found.group(1)) if found else version
            response.failure(f"HTTP {response.status_code}")
        return version


class Operator(PortalUser):
    """Today, today's run, a tick every few seconds, the run page polling meanwhile."""

    role = "operator"
    weight = 6
    wait_time = between(1, 3)

    @task
    def shift(self) -> None:
        runs = PLAN["runs"]
        run = runs[self.number % len(runs)]
        # Each operator on a run has its own item, and the last item is nobody's: the runs
        # stay open however long the shift.
        item = run["items"][(self.number // len(runs)) % (len(run["items"]) - 1)]
        self.client.get("/", name="Today")
        page = self.client.get(f"/runs/{run['id']}/", name="run page")
        found = SINCE.search(page.text or "")
        version = int(found.group(1)) if found else 0
        poll_url = f"/runs/{run['id']}/poll/"
        done = False
        for step in range(6):
            time.sleep(PLAN["checklist_poll_seconds"])
            version = self.poll(poll_url, "run poll", version)
            if step % 2 == 1:
                done = not done
                self.tick(run["id"], item, done=done)
        if done:
            self.tick(run["id"], item, done=False)

    def tick(self, run: int, item: int, *, done: bool) -> None:
        self.client.post(
            f"/runs/{run}/items/{item}/tick/",
            data={"done": "1"} if done else {},
            headers=self.htmx(),
            name="tick",
        )


class Watcher(PortalUser):
    """The health page polling every 10 s, an open incident's page polling."""

    role = "watcher"
    weight = 3
    wait_time = between(1, 2)

    @task
    def watch(self) -> None:
        incident = random.choice(PLAN["incidents"])
        self.client.get("/health/", name="health page")
        page = self.client.get(f"/incidents/{incident}/", name="incident page")
        found = SINCE.search(page.text or "")
        version = int(found.group(1)) if found else 0
        health_every = PLAN["health_poll_seconds"]
        incident_every = PLAN["incident_poll_seconds"]
        started, next_health, next_incident = time.time(), 0.0, 0.0
        while time.time() - started < 30:
            now = time.time() - started
            if now >= next_health:
                self.client.get("/health/", headers=self.htmx(), name="health poll")
                next_health += health_every
            if now >= next_incident:
                version = self.poll(f"/incidents/{incident}/poll/", "incident poll", version)
                next_incident += incident_every
            time.sleep(max(0.05, min(next_health, next_incident) - (time.time() - started)))


class Manager(PortalUser):
    """The incident list with filters, the report, the audit log."""

    role = "manager"
    weight = 1
    wait_time = between(5, 15)

    @task(3)
    def incidents(self) -> None:
        severity = random.choice(["P0", "P1", "P2", "P3"])
        self.client.get(f"/incidents/?severity={severity}&q=login", name="incident list (filtered)")

    @task(2)
    def report(self) -> None:
        self.client.get("/incidents/report/", name="incident report")

    @task(1)
    def audit(self) -> None:
        self.client.get("/audit/", name="audit log")


class Poller(FastHttpUser):
    """Only for the "no change" figure: polls of an unchanged run as fast as they are answered,
    through Locust's cheaper HTTP client, so that the figure is the server's rather than the
    load generator's (it shares the machine's two cores)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        number = next(_numbers)
        sessions = PLAN["sessions"]["operator"]
        self.headers = {
            "Cookie": f"sessionid={sessions[number % len(sessions)]}; csrftoken={CSRF}",
            "HX-Request": "true",
            "X-CSRFToken": CSRF,
        }

    @task
    def poll_unchanged(self) -> None:
        run = PLAN["quiet_run"]
        with self.client.get(
            f"/runs/{run['id']}/poll/?since={run['version']}",
            headers=self.headers,
            name="no-change poll",
            catch_response=True,
        ) as response:
            if response.status_code == 204:
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}, not 204")
