"""`manage.py setup_portal`, the first step of `make run`."""

import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from ops.models import ChecklistRun, ChecklistTemplate, MonitoredService
from portal import roles
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
            r"^\s+\S+(?: \S+)?\s+(admin|operator|manager|imagestaff)\s+(\S+)$", out, re.MULTILINE
        )
    )
    assert set(passwords) == {"admin", "operator", "manager", "imagestaff"}
    assert len(set(passwords.values())) == 4 and all(len(p) >= 16 for p in passwords.values())
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(passwords["admin"])
    assert User.objects.get(username="operator").groups.get().name == roles.OPERATOR
    assert ChecklistTemplate.objects.filter(source__name="daily-operations.md").exists()
    # Which runs open depends on the hour (a check already past its deadline waits for its next
    # period); the command reports what it opened.
    assert f"Runs opened for the current period: {ChecklistRun.objects.count()}." in out

    again = setup("--demo")
    assert passwords["admin"] not in again and "password is unchanged" in again
    assert User.objects.count() == 4
    assert ChecklistTemplate.objects.count() == len(
        set(ChecklistTemplate.objects.values_list("source_key", flat=True))
    )
    # Unchanged default runbooks are skipped on every start: no audit entry, no write.
    assert AuditEntry.objects.filter(action="runbook.import").count() == 4
