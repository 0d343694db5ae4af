"""The public status pages' server-side cache: the views keep each rendered page for
STATUS_CACHE_SECONDS under a version; a public update or an override of a component changes
the version after its commit, so customers read it at once. Health and maintenance changes
show within the cache time, as they would behind a CDN."""

import uuid

from django.core.cache import cache
from django.db import transaction

VERSION_KEY = "status-page:version"


def status_cache_version() -> str:
    return cache.get(VERSION_KEY) or "0"


def status_cache_bump() -> None:
    """After the commit of the change (a rolled-back change leaves the pages as they were)."""
    transaction.on_commit(lambda: cache.set(VERSION_KEY, uuid.uuid4().hex[:12], None))
