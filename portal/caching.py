"""Heavy parts of pages (Today's history, the health tiles' uptimes and sparklines) computed
once per change and shared by every request until the next one.

A part belongs to a *topic* ("checklists", "health") whose generation the services that
change it bump (``topic_changed``); the part's key holds the generation, so the next request
after a change computes it again. Each part also expires after ``seconds`` (what changes with
the clock alone: a run becoming overdue, "the last hour"). The cache is Django's: Redis when
REDIS_URL is set, files under var/ otherwise.
"""

from collections.abc import Callable
from typing import Any

from django.core.cache import cache

GENERATION_SECONDS = 7 * 24 * 3600


def _generation_key(topic: str) -> str:
    return f"topic:{topic}:generation"


def topic_changed(topic: str) -> None:
    """Everything cached for ``topic`` is computed again by the next request."""
    key = _generation_key(topic)
    try:
        cache.incr(key)
    except ValueError:  # not cached yet (or evicted): any new value starts a new generation
        cache.set(key, 1, GENERATION_SECONDS)


def cached_part(topic: str, name: str, scope: str, compute: Callable[[], Any], *, seconds: int):
    """``compute()``'s value for this generation of ``topic``; ``scope`` separates what differs
    by user or period (a user's id, a day)."""
    generation = cache.get_or_set(_generation_key(topic), 0, GENERATION_SECONDS)
    key = f"part:{topic}:{generation}:{name}:{scope}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, seconds)
    return value
