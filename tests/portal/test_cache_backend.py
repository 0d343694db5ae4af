"""portal.cache: Django's Redis cache with one redis-py client per pool."""

import os

import pytest
from django.core.cache import caches
from django.test import override_settings

pytestmark = pytest.mark.postgres  # the suite's Redis comes with the PostgreSQL run


def test_one_client_serves_every_call_and_the_values_are_right(settings):
    shared = {
        "BACKEND": "portal.cache.SharedClientRedisCache",
        "LOCATION": os.environ["REDIS_URL"],
        "KEY_PREFIX": "shared-client-test",
    }
    with override_settings(CACHES={"default": settings.CACHES["default"], "shared": shared}):
        cache = caches["shared"]
        cache.set("answer", {"value": 42}, 30)
        assert cache.get("answer") == {"value": 42}
        assert cache.get_many(["answer", "missing"]) == {"answer": {"value": 42}}
        client = cache._cache.get_client()
        assert cache._cache.get_client(write=True) is client  # one pool, one client
        cache.delete("answer")
        assert cache.get("answer") is None
