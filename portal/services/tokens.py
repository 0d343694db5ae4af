"""API tokens: made (shown once), checked, revoked."""

import hashlib
import secrets

from django.utils import timezone

from portal.errors import ActionRefused
from portal.models import ApiToken
from portal.services.audit import audit_record

TOKEN_PREFIX = "opt_"  # noqa: S105 - a marker, not a secret


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(*, user, name: str, actor=None) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns the row and the token, which is not stored."""
    name = name.strip()
    if not name:
        raise ActionRefused("Name the token after what will use it.")
    if len(name) > 100:
        raise ActionRefused(f"The name is too long ({len(name)} characters; at most 100).")
    if not user.is_active:
        raise ActionRefused(f"{user.get_username()} is inactive: a token would not work.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:12], digest=_digest(raw))
    audit_record(
        actor=actor, action="api_token.create", target=token, summary=f"for {user.get_username()}"
    )
    return token, raw


def api_token_revoke(*, token: ApiToken, actor) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_record(actor=actor, action="api_token.revoke", target=token)


def api_token_user(raw: str):
    """The active user a live token belongs to, or None."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=_digest(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    # Record use at most once a minute: a busy monitor should not write on every call.
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
