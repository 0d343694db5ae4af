"""Login throttling (django-axes) and the audit of logins, failures, logouts and password
changes."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal import roles
from portal.models import AuditEntry
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ATTACKER = "10.9.8.7"


def _attempt(client, username, password, address=ATTACKER):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_repeated_wrong_passwords_lock_the_username_at_that_address(client, operator, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _attempt(client, "olivia", "wrong")
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    response = _attempt(client, "olivia", "wrong")
    assert response.status_code == 429
    html = response.content.decode()
    assert "Too many failed logins for this username from your address" in html
    assert "Try again in 15 min" in html and "ask an administrator to unlock it" in html
    # The right password no longer helps from this address...
    response = _attempt(client, "olivia", PASSWORD)
    assert response.status_code == 429 and not _logged_in(client)
    # ...while the same user elsewhere, and another user here, still log in.
    elsewhere = Client()
    assert _attempt(elsewhere, "olivia", PASSWORD, address="10.1.1.1").status_code == 302
    assert _logged_in(elsewhere)

    failed = AuditEntry.objects.filter(action="auth.login.failed")
    assert failed.count() == settings.AXES_FAILURE_LIMIT + 1
    assert all(entry.ip_address == ATTACKER for entry in failed)
    assert failed.filter(summary="Failed login as “olivia” (locked out)").exists()
    lockout = AuditEntry.objects.get(action="auth.lockout")
    assert lockout.summary == "“olivia” locked out for 15 min"
    assert lockout.object_id == str(operator.pk)


def test_the_lockout_ends_after_the_cool_off(client, operator, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, "olivia", "wrong")
    assert _attempt(client, "olivia", PASSWORD).status_code == 429
    # Sixteen minutes later (the attempts aged rather than the test sleeping):
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _attempt(client, "olivia", PASSWORD).status_code == 302 and _logged_in(client)


def test_an_admin_unlocks_from_the_admin(client, operator, make_user, settings):
    admin_user = make_user("ada", roles.ADMIN, is_staff=True, is_superuser=True)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, "olivia", "wrong")
    attempt = AccessAttempt.objects.get(username="olivia")
    admin = client_for(admin_user)
    changelist = reverse("admin:axes_accessattempt_changelist")
    assert "olivia" in admin.get(changelist).content.decode()
    response = admin.post(
        changelist, {"action": "unlock", "_selected_action": [attempt.pk]}, follow=True
    )
    assert "Unlocked 1." in response.content.decode()
    entry = AuditEntry.objects.get(action="auth.unlock")
    assert entry.actor == admin_user and entry.summary == f"Unlocked “olivia” from {ATTACKER}"
    assert _attempt(client, "olivia", PASSWORD).status_code == 302 and _logged_in(client)


def test_login_and_logout_are_audited(client, operator):
    response = _attempt(client, "olivia", PASSWORD, address="10.2.2.2")
    assert response.status_code == 302
    login = AuditEntry.objects.get(action="auth.login")
    assert login.actor == operator and login.ip_address == "10.2.2.2"
    client.post(reverse("logout"), REMOTE_ADDR="10.2.2.2")
    logout = AuditEntry.objects.get(action="auth.logout")
    assert logout.actor == operator and logout.summary == "Logged out"


def test_a_failed_login_of_an_unknown_name_is_audited_without_a_target(client, db):
    _attempt(client, "mallory", "guess")
    entry = AuditEntry.objects.get(action="auth.login.failed")
    assert entry.actor is None and entry.object_id == ""
    assert entry.summary == "Failed login as “mallory”"


def test_password_changes_are_audited_with_who_changed_them(operator, make_user):
    admin_user = make_user("ada", roles.ADMIN, is_staff=True, is_superuser=True)
    url = reverse("admin:auth_user_password_change", args=[operator.pk])
    new = "another-long-passphrase-42"
    response = client_for(admin_user).post(
        url, {"password1": new, "password2": new, "usable_password": "true"}
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="auth.password.change")
    assert entry.actor == admin_user and entry.object_id == str(operator.pk)
    assert entry.summary == "Password changed"
    # No secret reaches the log, in that entry or in the admin's own.
    assert new not in str(list(AuditEntry.objects.values()))
    # A silent re-hash at login, a new user and a plain save are not password changes.
    assert User.objects.get(pk=operator.pk).check_password(new)
    make_user("newcomer")
    operator.first_name = "Olivia"
    operator.save()
    assert AuditEntry.objects.filter(action="auth.password.change").count() == 1


def test_a_nul_character_in_the_login_form_is_refused_as_a_mismatch(client, operator):
    response = _attempt(client, "oli\x00via", "wr\x00ng")
    assert response.status_code == 200 and not _logged_in(client)
    assert "didn't match" in response.content.decode()
