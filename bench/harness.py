"""What the Django benchmarks share: settings, a throw-away test database, a logged-in client
and a timer that reports the median server time and the query count of a request."""

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402


@contextlib.contextmanager
def throwaway_database() -> Iterator[None]:
    """A fresh, migrated test database for the configured backend, dropped afterwards."""
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def user_in(username: str, role: str) -> User:
    user = User.objects.create_user(username, password="x" * 20)
    user.groups.add(Group.objects.get(name=role))
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def timed(call: Callable, *, repeat: int, warmup: int = 3) -> tuple[float, int]:
    """Median milliseconds of ``call`` (a test-client request) and its query count, after a
    few untimed calls that warm caches and connections."""
    for _ in range(warmup):
        call()
    samples, queries = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = call()
            samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        queries = len(captured)
    return statistics.median(samples) * 1000, queries
