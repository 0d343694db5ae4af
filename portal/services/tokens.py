"""Secret tokens stored as digests (API tokens here; the apps' own, such as calendar feed
URLs, through the same two helpers): made and shown once, checked, revoked."""

import hashlib
import secrets

from django.utils import timezone

from portal.errors import ActionRefused
from portal.models import ApiToken
from portal.services.audit import audit_record

TOKEN_PREFIX = "opt_"  # noqa: S105 - a marker, not a secret


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def secret_token_new(*, prefix: str) -> tuple[str, str]:
    """A new token starting with ``prefix``, and the digest to store instead of it."""
    raw = prefix + secrets.token_urlsafe(32)
    return raw, _digest(raw)


def secret_token_user(*, model, raw: str, prefix: str):
    """The active user a live token of ``model`` (a row with user, digest, revoked_at and
    last_used_at) belongs to, or None. Use is recorded at most once a minute: a busy caller
    should not write on every request."""
    if not raw.startswith(prefix):
        return None
    token = (
        model.objects.select_related("user")
        .filter(digest=_digest(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        model.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_create(*, user, name: str, actor=None) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns the row and the token, which is not stored."""
    name = name.strip()
    if not name:
        raise ActionRefused("Name the token after what will use it.")
    if len(name) > 100:
        raise ActionRefused(f"The name is too long ({len(name)} characters; at most 100).")
    if not user.is_active:
        raise ActionRefused(f"{user.get_username()} is inactive: a token would not work.")
    raw, digest = secret_token_new(prefix=TOKEN_PREFIX)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:12], digest=digest)
    audit_record(
        actor=actor, action="api_token.create", target=token, summary=f"for {user.get_username()}"
    )
    return token, raw


def api_token_revoke(*, token: ApiToken, actor) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_record(actor=actor, action="api_token.revoke", target=token)


def api_token_user(raw: str):
    """The active user a live token belongs to, or None."""
    return secret_token_user(model=ApiToken, raw=raw, prefix=TOKEN_PREFIX)
