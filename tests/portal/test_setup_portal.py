"""`manage.py setup_portal`, the first step of `make run`."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from ops.models import ChecklistRun, ChecklistTemplate, MonitoredService
from portal import roles
from portal.management.commands.run_portal import banner
from portal.management.commands.setup_portal import SetupUser
from portal.models import AuditEntry

pytestmark = pytest.mark.django_db


def setup(*args) -> str:
    out = StringIO()
    call_command("setup_portal", *args, stdout=out)
    return out.getvalue()


def test_first_run_creates_users_with_generated_passwords_shown_once():
    out = setup("--demo")
    assert "Monitored services of the portal itself: " in out
    assert MonitoredService.objects.filter(slug="portal-web", kind="http").exists()
    passwords = dict(
        re.findall(
            r"^\s+\S+(?: \S+)?\s+(admin|operator|manager|imagestaff|dpo)\s+(\S+)$",
            out,
            re.MULTILINE,
        )
    )
    assert set(passwords) == {"admin", "operator", "manager", "imagestaff", "dpo"}
    assert len(set(passwords.values())) == 5 and all(len(p) >= 16 for p in passwords.values())
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(passwords["admin"])
    assert User.objects.get(username="operator").groups.get().name == roles.OPERATOR
    assert ChecklistTemplate.objects.filter(source__name="daily-operations.md").exists()
    # Which runs open depends on the hour (a check already past its deadline waits for its next
    # period); the command reports what it opened.
    assert f"Runs opened for the current period: {ChecklistRun.objects.count()}." in out

    again = setup("--demo")
    assert passwords["admin"] not in again and "password is unchanged" in again
    assert User.objects.count() == 5
    assert ChecklistTemplate.objects.count() == len(
        set(ChecklistTemplate.objects.values_list("source_key", flat=True))
    )
    # Unchanged default runbooks are skipped on every start: one audit entry per runbook file
    # from the first run, none from the second.
    defaults = Path(settings.BASE_DIR) / "ops" / "runbooks" / "defaults"
    imported = AuditEntry.objects.filter(action="runbook.import").count()
    assert imported == len(list(defaults.glob("*.md")))


def test_the_demo_web_check_follows_host_and_port(settings):
    settings.PORTAL_DEMO_HOST = "127.0.0.1:8000"  # what `make run` has unless PORT says else
    setup("--demo")
    settings.PORTAL_DEMO_HOST = "127.0.0.1:8101"
    setup("--demo")
    web = MonitoredService.objects.get(slug="portal-web")
    assert web.target == "http://127.0.0.1:8101/api/health"
    entry = AuditEntry.objects.get(action="service.update", object_id=str(web.pk))
    assert entry.before == {"target": "http://127.0.0.1:8000/api/health"}


def test_the_portals_checks_of_itself_wait_until_it_has_started():
    """Overdue since the portal stopped, they would run while web and worker boot."""
    setup("--demo")
    MonitoredService.objects.update(next_check_at=timezone.now() - timedelta(hours=3))
    started = timezone.now()
    setup("--demo")
    later = started + timedelta(seconds=30)
    due = dict(MonitoredService.objects.values_list("slug", "next_check_at"))
    assert due["portal-web"] >= later and due["celery-workers"] >= later


def test_banner_names_the_address_the_users_and_the_reset():
    users = [
        SetupUser(username="admin", role=roles.ADMIN, password="s3cret-admin"),
        SetupUser(username="operator", role=roles.OPERATOR, password=None),
    ]
    text = banner(url="http://127.0.0.1:8101/", users=users, seconds=12.34)
    assert "http://127.0.0.1:8101/" in text and "Started in 12.3 s" in text
    assert "s3cret-admin" in text and "(unchanged)" in text
    assert "manage.py changepassword NAME" in text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("LOG_LEVEL", "loud", "LOG_LEVEL must be one of"), ("PORT", "80000", "PORT must be at most")],
)
def test_malformed_run_settings_stop_the_start(variable, value, message):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", variable: value},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and message in result.stderr
