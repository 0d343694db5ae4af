"""Keeping secrets off pages and out of the audit log: credentials in URLs (``user:pass@``,
``?password=``, ``?token=``…) and fields whose name says they hold one are shown as ***; a
setting that needs one names the environment variable that holds it (``env:DATABASE_URL``)."""

import re
from itertools import pairwise
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from portal.env import env_str

MASK = "***"
# Names of query parameters and fields that hold a secret, by their words (api_key, apiKey and
# X-Auth-Token hold one; author_name and assigned_to do not).
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "digest",
        "signature",
        "sig",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "apikey",
        "cookie",
        "session",
        "sessionid",
    }
)
SECRET_PAIRS = frozenset({"apikey", "accesskey", "privatekey", "secretkey", "clientsecret"})
URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def is_secret_name(name: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    # Digits at the end of a word go (password1, token2).
    words = [word.rstrip("0123456789") for word in re.split(r"[^a-z0-9]+", spaced) if word]
    if words == ["key"]:
        return True
    pairs = {first + second for first, second in pairwise(words)}
    return bool(SECRET_WORDS.intersection(words) or SECRET_PAIRS.intersection(pairs))


def url_has_secret(url: str) -> bool:
    """Whether a URL carries a password in its user part or a secret query parameter."""
    parts = urlsplit(url)
    try:
        if parts.password:
            return True
    except ValueError:
        return False
    return any(is_secret_name(name) and value for name, value in parse_qsl(parts.query, True))


def mask_url(url: str) -> str:
    """The URL with the password of its user part and its secret query parameters masked."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    netloc = parts.netloc
    if password:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(is_secret_name(name) for name, _ in pairs):
        query = urlencode(
            [(name, MASK if is_secret_name(name) else value) for name, value in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_text(text: str) -> str:
    """Free text (a detail, a message, an old value) with every URL in it masked."""
    return URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)


def scrub(text: str, secrets: list[str]) -> str:
    """The text with each of the given secret strings replaced by *** and its URLs masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return mask_text(text)


ENV_PREFIX = "env:"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class UnresolvedSecret(ValueError):
    """An ``env:NAME`` reference whose name is malformed or whose variable is not set."""


def env_reference(value: str) -> str | None:
    """The variable name of an ``env:NAME`` reference, or None for a literal value."""
    value = value.strip()
    return value[len(ENV_PREFIX) :].strip() if value.startswith(ENV_PREFIX) else None


def resolve_env(value: str) -> str:
    """A literal value as it is; an ``env:NAME`` reference read from the environment now (from
    the file NAME_FILE names, when that is set, as the settings read secrets)."""
    name = env_reference(value)
    if name is None:
        return value
    if not ENV_NAME.fullmatch(name):
        raise UnresolvedSecret(f"“{name}” is not an environment variable name (env:NAME)")
    resolved = (env_str(name) or "").strip()
    if not resolved:
        raise UnresolvedSecret(f"the environment variable {name} is not set")
    return resolved
