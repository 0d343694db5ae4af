"""The incident permissions of each role (portal migration 0003) and the incident settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from portal import roles

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_roles_hold_their_incident_permissions():
    perms = {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.prefetch_related("permissions__content_type")
    }
    operator = {"ops.view_incident", "ops.open_incident", "ops.update_incident"}
    manager_only = {
        "ops.close_incident",
        "ops.edit_postmortem",
        "ops.view_incident_report",
        "ops.change_severity",
    }
    assert operator <= perms[roles.OPERATOR]
    assert not manager_only & perms[roles.OPERATOR]
    assert operator | manager_only <= perms[roles.MANAGER]
    assert not {"ops.view_incident", "ops.open_incident"} & perms[roles.IMAGE_STAFF]
    assert operator | manager_only <= perms[roles.ADMIN]


def test_a_webhook_url_that_is_not_http_stops_the_start(tmp_path):
    env = {**os.environ, "PORTAL_VAR_DIR": str(tmp_path), "INCIDENT_WEBHOOK_URL": "file:///etc"}
    result = subprocess.run(
        [sys.executable, "-c", "import portal.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "INCIDENT_WEBHOOK_URL must start with http:// or https://" in result.stderr
