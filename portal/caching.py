"""Heavy parts of pages (Today's history, the health tiles' uptimes and sparklines) computed
once per change and shared by every request until the next one.

A part belongs to a *topic* ("checklists", "health") whose generation the services that
change it bump (``topic_changed``); the part's key holds the generation, so the next request
after a change computes it again. Each part also expires after ``seconds`` (what changes with
the clock alone: a run becoming overdue, "the last hour"). The cache is Django's: Redis when
REDIS_URL is set, files under var/ otherwise.
"""

import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

GENERATION_SECONDS = 7 * 24 * 3600
logger = logging.getLogger(__name__)


def _generation_key(topic: str) -> str:
    return f"topic:{topic}:generation"


def topic_changed(topic: str) -> None:
    """Everything cached for ``topic`` is computed again by the next request."""
    key = _generation_key(topic)
    try:
        cache.incr(key)
    except ValueError:  # not cached yet (or evicted): any new value starts a new generation
        cache.set(key, 1, GENERATION_SECONDS)
    except Exception:  # the cache is down: nothing in it to invalidate until it is back
        logger.warning("cache unreachable; %s not invalidated", topic, exc_info=True)


def cached_part(topic: str, name: str, scope: str, compute: Callable[[], Any], *, seconds: int):
    """``compute()``'s value for this generation of ``topic``; ``scope`` separates what differs
    by user or period (a user's id, a day)."""
    try:
        generation = cache.get_or_set(_generation_key(topic), 0, GENERATION_SECONDS)
        key = f"part:{topic}:{generation}:{name}:{hashlib.sha256(scope.encode()).hexdigest()}"
        value = cache.get(key)
    except Exception:  # the cache is down: the page still shows, computed for this request
        logger.warning("cache unreachable; %s computed without it", name, exc_info=True)
        return compute()
    if value is None:
        value = compute()
        with contextlib.suppress(Exception):
            cache.set(key, value, seconds)
    return value
