"""Importing 2,000 checklists of 20,000 items: time, peak memory, longest write-lock hold.

    python bench/runbook_import.py          # the configured database (DATABASE_URL or SQLite)

Writes 100 runbooks of 20 checklists of 10 items each (nested items, commands, help texts,
links and code spans, as real runbooks have) to a temporary directory, and imports them into a
throw-away test database with `manage.py import_runbook` three times: first (everything new),
again unchanged (every source skipped), and after editing a tenth of the files (items reworded,
added and removed, a checklist renamed, one deleted).

The write lock: on SQLite a second connection tries `BEGIN IMMEDIATE` every 2 ms while the
import runs, as a scheduler tick elsewhere would, and the longest time it could not is the
longest hold. On PostgreSQL (row locks, no database lock) the figure is the longest write
transaction. Targets: the first import under 10 s, the lock never held 2 s.
"""

import argparse
import io
import resource
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from harness import throwaway_database

from ops.management.commands import import_runbook as command
from ops.models import ChecklistItem, ChecklistTemplate, RunbookSource
from ops.services import runbooks as runbook_services
from portal.models import AuditEntry

FILES = 100
CHECKLISTS = 20
ITEMS = 10
TARGET_SECONDS = 10.0
TARGET_LOCK_SECONDS = 2.0
CADENCES = ["Daily", "Weekly (Friday 16:00)", "Monthly (on the 15th)", "Nightly", "Pre-release"]


def runbook(file: int, *, edited: bool = False) -> str:
    lines = [f"# Runbook {file}", "", "Lead-in prose that says what these checklists are for.", ""]
    for number in range(CHECKLISTS):
        if edited and number == 3:
            continue  # a deleted section: retired
        title = f"Checks {number} {CADENCES[number % len(CADENCES)]}"
        if edited and number == 5:
            title = f"Renamed checks {number} {CADENCES[number % len(CADENCES)]}"
        lines += [f"## {title}", ""]
        for item in range(ITEMS - 2):
            text = f"Verify component {item} of area {number} in [the dashboard](https://ops.test/d/{file}/{item})"
            if edited and item == 2:
                text += " before noon"  # reworded
            lines.append(f"- [ ] {text}")
            if item == 1:
                lines += ["  ```bash", f"  curl -s https://ops.test/{file}/{number}", "  ```"]
            if item == 4:
                lines += ["", "  Help: compare with `last week` and note **anything** odd.", ""]
        lines += ["- [ ] Parent step", "  - [ ] Child step one", ""]
        if edited:
            lines += ["- [ ] A step added in the edit", ""]
    return "\n".join(lines) + "\n"


def write_runbooks(root: Path, *, edited_every: int = 0) -> None:
    for file in range(FILES):
        edited = bool(edited_every) and file % edited_every == 0
        (root / f"team{file % 10}").mkdir(exist_ok=True)
        (root / f"team{file % 10}" / f"runbook-{file:03}.md").write_text(
            runbook(file, edited=edited)
        )


class LockProbe(threading.Thread):
    """Another SQLite connection that keeps trying to take the write lock, as a tick would."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stopped = threading.Event()
        self.longest = 0.0

    def run(self) -> None:
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        blocked_since = None
        while not self.stopped.is_set():
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
                if blocked_since is not None:
                    self.longest = max(self.longest, time.perf_counter() - blocked_since)
                    blocked_since = None
            except sqlite3.OperationalError:
                if blocked_since is None:
                    blocked_since = time.perf_counter()
            time.sleep(0.002)
        if blocked_since is not None:  # still blocked when told to stop: count it all
            self.longest = max(self.longest, time.perf_counter() - blocked_since)
        db.close()


class TransactionTimer:
    """The longest write transaction of the import: from its first statement (the check that
    nothing changed since the plan) to the commit, which ends runbook_plan_apply."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._apply = command.runbook_plan_apply
        self._check = runbook_services._check_still_current
        self._started = None

    def __enter__(self):
        def timed_check(plans):
            self._started = time.perf_counter()
            return self._check(plans)

        def timed_apply(**kwargs):
            self._started = None
            try:
                return self._apply(**kwargs)
            finally:
                if self._started is not None:
                    held = time.perf_counter() - self._started
                    self.longest = max(self.longest, held)

        runbook_services._check_still_current = timed_check
        command.runbook_plan_apply = timed_apply
        return self

    def __exit__(self, *exc):
        runbook_services._check_still_current = self._check
        command.runbook_plan_apply = self._apply


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_once(root: Path) -> tuple[float, float]:
    """Seconds of one `import_runbook DIR`, and the longest write-lock hold in it."""
    sqlite = connection.vendor == "sqlite"
    probe = LockProbe(connection.settings_dict["NAME"]) if sqlite else None
    if probe:
        probe.start()
    with TransactionTimer() as timer:
        started = time.perf_counter()
        call_command("import_runbook", str(root), root=str(root), stdout=io.StringIO())
        elapsed = time.perf_counter() - started
    if probe:
        time.sleep(0.05)  # time to see the lock released after the last commit
        probe.stopped.set()
        probe.join()
    return elapsed, probe.longest if probe else timer.longest


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    results = {}
    with throwaway_database(), tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_runbooks(root)
        before = peak_rss_mb()
        results["first import"] = import_once(root)
        peak = peak_rss_mb()
        templates = ChecklistTemplate.objects.count()
        items = ChecklistItem.objects.count()
        audits = AuditEntry.objects.filter(action="runbook.import").count()
        results["unchanged re-import"] = import_once(root)
        unchanged_audits = AuditEntry.objects.filter(action="runbook.import").count() - audits
        write_runbooks(root, edited_every=10)
        results["10% of files edited"] = import_once(root)
        retired = ChecklistTemplate.objects.filter(retired_at__isnull=False).count()
        sources = RunbookSource.objects.count()
    lock = "write lock (SQLite)" if connection.vendor == "sqlite" else "write transaction"
    print(
        f"Database: {connection.vendor}; {FILES} runbooks x {CHECKLISTS} checklists x {ITEMS} "
        f"items = {templates} templates, {items} items, {sources} sources"
    )
    print(f"{'import':24}{'seconds':>10}{'longest ' + lock:>32}")
    for label, (seconds, held) in results.items():
        print(f"{label:24}{seconds:>10.2f}{held:>31.2f}s")
    print(f"Peak memory (max RSS): {before:.0f} MB before, {peak:.0f} MB after the first import")
    print(
        f"Audit entries: {audits} for the first import, {unchanged_audits} for the unchanged "
        f"one; {retired} templates retired by the edit"
    )
    checks = [
        ("first import < 10 s", results["first import"][0] < TARGET_SECONDS),
        ("unchanged writes no audit entry", unchanged_audits == 0),
    ]
    if connection.vendor == "sqlite":  # PostgreSQL locks rows, not the database
        longest = max(held for _, held in results.values())
        checks.append(("SQLite write lock never held 2 s", longest < TARGET_LOCK_SECONDS))
    for label, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {label}")


if __name__ == "__main__":
    main()
