"""Heavy parts of pages computed or rendered once per change and shared by every request
until the next one; the cache is Django's (Redis with REDIS_URL, files under var/ otherwise),
and each helper computes without it when it is down.

- ``cached_part``: one value per *topic* generation ("checklists": Today's history table). The
  services that change the topic bump it (``topic_changed``); each part also expires after
  ``seconds`` (what changes with the clock alone).
- ``cached_each``: one value per row, keyed by what it was computed from (a health tile's
  uptimes and sparkline, by its service's last check): a change to one row costs one value.
- ``render_each``: a template's HTML per context, keyed by a digest of the template and the
  context (the health tiles): nothing to invalidate.
"""

import contextlib
import functools
import hashlib
import logging
import pickle
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.safestring import SafeString, mark_safe

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


def cached_each(
    name: str, scopes: dict[Any, str], compute: Callable[[list], dict], *, seconds: int
) -> dict:
    """One value per id, each cached under its own ``scope`` (what it was computed from: a
    row's last change, a period): ``compute(ids)`` is called once, with the ids whose value is
    not cached, and returns ``{id: value}`` (an id it leaves out has the value None). A change
    to one row costs one value, not all of them."""
    keys = {
        item: f"each:{name}:{hashlib.sha256(scope.encode()).hexdigest()}"
        for item, scope in scopes.items()
    }
    try:
        found = cache.get_many(list(keys.values()))
    except Exception:  # the cache is down: everything is computed for this request
        logger.warning("cache unreachable; %s computed without it", name, exc_info=True)
        return compute(list(scopes))
    missing = [item for item, key in keys.items() if key not in found]
    computed = compute(missing) if missing else {}
    values = {}
    for item, key in keys.items():
        # Stored in a one-element list, so that a None value is cached too.
        values[item] = found[key][0] if key in found else computed.get(item)
    if missing:
        with contextlib.suppress(Exception):
            cache.set_many({keys[item]: [computed.get(item)] for item in missing}, seconds)
    return values


FRAGMENT_SECONDS = 600


@functools.cache
def _template_digest(template_name: str) -> str:
    """The template's source, so a deploy that changes it never serves the old HTML."""
    template = get_template(template_name)
    return hashlib.sha256(template.template.source.encode()).hexdigest()[:16]


def render_each(template_name: str, contexts: list[dict]) -> list[SafeString]:
    """``template_name`` rendered once per context, each HTML cached under a digest of what it
    was rendered from: the template's source and the pickled context. A fragment is rendered
    again only when something it shows changed; there is nothing to invalidate.

    For fragments repeated many times a page (health tiles), whose template depends on its
    context alone: no request, no clock (a time that must tick is rendered as a moment and
    counted by static/portal/app.js), no lazy database access."""
    # The time zone and language the dates and words are rendered in belong to the HTML too.
    prefix = (
        f"fragment:{template_name}:{_template_digest(template_name)}:"
        f"{timezone.get_current_timezone_name()}:{translation.get_language()}:"
    )
    keys = [
        prefix + hashlib.sha256(pickle.dumps(context, pickle.HIGHEST_PROTOCOL)).hexdigest()
        for context in contexts
    ]
    try:
        found = cache.get_many(keys)
    except Exception:  # the cache is down: the fragments are rendered for this request
        logger.warning("cache unreachable; %s rendered without it", template_name, exc_info=True)
        found = {}
    rendered, missing = [], {}
    for key, context in zip(keys, contexts, strict=True):
        html = found.get(key)
        if html is None:
            html = missing[key] = render_to_string(template_name, context)
        rendered.append(mark_safe(html))  # noqa: S308 (rendered and escaped by Django)
    if missing:
        with contextlib.suppress(Exception):
            cache.set_many(missing, FRAGMENT_SECONDS)
    return rendered
