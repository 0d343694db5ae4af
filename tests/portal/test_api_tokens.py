"""API tokens: shown once, stored as a digest, refused when revoked or malformed."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import JsonResponse

from portal.auth import login_or_token_required
from portal.errors import ActionRefused
from portal.models import ApiToken, AuditEntry
from portal.services.tokens import api_token_create, api_token_revoke, api_token_user

pytestmark = pytest.mark.django_db


@login_or_token_required
def whoami(request):
    return JsonResponse({"user": request.user.get_username()})


def test_token_is_stored_as_a_digest_and_identifies_its_user(operator, manager, rf):
    token, raw = api_token_create(user=operator, name="uptime robot", actor=manager)
    assert raw.startswith("opt_") and raw not in token.digest and token.prefix == raw[:12]
    assert api_token_user(raw) == operator
    response = whoami(_request(rf, f"Bearer {raw}"))
    assert response.status_code == 200 and b'"olivia"' in response.content
    assert AuditEntry.objects.filter(action="api_token.create", actor=manager).exists()

    api_token_revoke(token=token, actor=manager)
    assert api_token_user(raw) is None
    response = whoami(_request(rf, f"Bearer {raw}"))
    assert response.status_code == 401 and b"Invalid or revoked" in response.content


def _request(rf, authorization=None):
    from django.contrib.auth.models import AnonymousUser

    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    request = rf.get("/api/x", **headers)
    request.user = AnonymousUser()
    return request


@pytest.mark.parametrize(
    "header", [None, "Bearer ", "Bearer nonsense", "Basic b3A6cHc=", "Bearer opt_" + "x" * 43]
)
def test_missing_or_bad_tokens_get_401(rf, header):
    response = whoami(_request(rf, header))
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_bad_names_and_inactive_users_are_refused(operator):
    with pytest.raises(ActionRefused, match="Name the token"):
        api_token_create(user=operator, name="  ")
    with pytest.raises(ActionRefused, match="too long"):
        api_token_create(user=operator, name="n" * 101)
    operator.is_active = False
    operator.save()
    with pytest.raises(ActionRefused, match="inactive"):
        api_token_create(user=operator, name="robot")
    assert ApiToken.objects.count() == 0


def test_command_prints_the_token_once(operator):
    out = StringIO()
    call_command("create_api_token", "olivia", "--name", "grafana", stdout=out)
    raw = out.getvalue().strip()
    assert api_token_user(raw) == operator
    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_token", "ghost", "--name", "x")
