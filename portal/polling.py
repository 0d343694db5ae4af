""" "Anything new since version N?" answered from the cache, without the database.

A polled object (a checklist run, an incident) has a version that its one writer bumps. The
writer publishes its new version here (``version_publish``) inside its transaction, while it
holds the row's lock, so the cache is ahead of the database before the change commits; a
full answer of
the page or its poll publishes the version it read and grants the user a quick "no change"
for that object (``poll_grant``). A poll whose version is the cached one, from a user granted
recently, is answered 204 from two cache keys (``poll_unchanged``).

The cached version only ever rises (a Lua script on Redis, a lock elsewhere), so a reader that
read an older row before a writer committed can never hide the writer's change. A version
higher than the database's (a rolled-back change, or a cache that outlived a restored
database) only costs full answers.
A grant lasts ``GRANT_SECONDS``: a user whose role is taken away may get "no change" (and
nothing else) for that long; every full answer checks the permission again.
"""

import contextlib
import logging
import threading
import time

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

VERSION_SECONDS = 24 * 3600
GRANT_SECONDS = 300
FOREVER = float("inf")

_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_local_lock = threading.Lock()
logger = logging.getLogger(__name__)


def _version_key(kind: str, pk: int) -> str:
    return f"poll:{kind}:{pk}:version"


def _grant_key(kind: str, pk: int, user_id: int) -> str:
    return f"poll:{kind}:{pk}:user:{user_id}"


def version_publish(kind: str, pk: int, version: int) -> None:
    """Raise the cached version of an object to ``version`` (never lower it)."""
    key = _version_key(kind, pk)
    try:
        client = _redis_client(key)
        if client is not None:
            client.eval(_RAISE, 1, cache.make_and_validate_key(key), int(version), VERSION_SECONDS)
            return
        with _local_lock:  # the embedded default: one machine, file or memory cache
            current = cache.get(key)
            if current is None or current < version:
                cache.set(key, int(version), VERSION_SECONDS)
    except Exception:
        # The cache is down: polls are answered from the database meanwhile. When it comes
        # back it may hold an older version: forget it, or a poll could miss this change.
        logger.warning("cache unreachable; version of %s %s not published", kind, pk)
        with contextlib.suppress(Exception):
            cache.delete(key)


def poll_grant(
    request: HttpRequest, kind: str, pk: int, version: int, *, fresh_until: float = FOREVER
) -> None:
    """A full answer's part: the version it showed, and this user's leave to get "no change"
    from the cache until ``fresh_until`` (a timestamp: a page with clocks that change state at
    a deadline is answered in full from then on)."""
    version_publish(kind, pk, version)
    grant = min(fresh_until, time.time() + GRANT_SECONDS)
    with contextlib.suppress(Exception):  # the cache is down: full answers meanwhile
        cache.set(_grant_key(kind, pk, request.user.pk), grant, GRANT_SECONDS)


def poll_unchanged(request: HttpRequest, kind: str, pk: int, since: int) -> bool:
    """Whether the cache says nothing changed since ``since`` for a user granted recently."""
    version_key, grant_key = _version_key(kind, pk), _grant_key(kind, pk, request.user.pk)
    try:
        found = cache.get_many([version_key, grant_key])
    except Exception:  # the cache is down: the database answers
        return False
    version, grant = found.get(version_key), found.get(grant_key)
    return version is not None and grant is not None and since >= version and time.time() < grant


def poll_since(request: HttpRequest) -> int | None:
    """The ``since`` parameter as a whole number (None when it is not one)."""
    try:
        return max(0, int(request.GET.get("since", "0")))
    except ValueError:
        return None


def _redis_client(key: str):
    """The raw Redis client behind Django's cache, when the cache is Redis (the atomic raise
    needs a script; Django's cache API has no compare-and-set)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    return backend._cache.get_client(key, write=True)
