"""Personas and small factories shared by the whole suite."""

import contextlib
import importlib
import os
from datetime import time, timedelta
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.core.management.commands import flush
from django.test import Client
from django.utils import timezone

from ops.models import Cadence, ChecklistItem, ChecklistTemplate
from portal import roles
from portal.history import history_unlocked

PASSWORD = "correct-horse-battery-staple"


NEEDS_POSTGRES = (
    "tests marked `postgres` need a PostgreSQL server and were deselected: DATABASE_URL is "
    "unset (the embedded default). `.ci/run` runs them against PostgreSQL."
)


def _on_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def pytest_collection_modifyitems(config, items):
    if _on_postgres():
        return
    deselected = [item for item in items if item.get_closest_marker("postgres")]
    if deselected:
        items[:] = [item for item in items if not item.get_closest_marker("postgres")]
        config.hook.pytest_deselected(items=deselected)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _on_postgres():
        terminalreporter.write_line(NEEDS_POSTGRES)


@pytest.fixture(scope="session")
def _test_database_from_template(request, django_db_blocker):
    """With xdist on PostgreSQL, each test process used to build its test database by running
    every migration, both at once on two cores (some 20 s each; one alone takes half). Now the
    first process to get here migrates a template database once for the run, under a file
    lock, and every process copies it (CREATE DATABASE … TEMPLATE, a fraction of a second).
    The copy is the migrated database itself: nothing is skipped. --reuse-db keeps Django's
    own path. A process that finishes drops the template (one that has not copied it yet
    would build it again)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not (_on_postgres() and worker):
        yield
        return
    import fcntl
    import tempfile

    from django.conf import settings
    from django.db import connection

    creation = connection.creation
    original = creation.create_test_db
    run = request.config.workerinput["testrunuid"]
    quote = connection.ops.quote_name
    names = {}

    @contextlib.contextmanager
    def locked(template: str):
        with open(Path(tempfile.gettempdir()) / f"{template}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield lock

    def create_test_db(verbosity=1, autoclobber=False, serialize=True, keepdb=False):
        if keepdb:
            return original(verbosity, autoclobber, serialize, keepdb)
        name = creation._get_test_db_name()
        template = names["template"] = f"{name.removesuffix(f'_{worker}')}_template"
        with locked(template) as lock:
            lock.seek(0)
            with creation._nodb_cursor() as cursor:
                built = lock.read().strip() == run and creation._database_exists(cursor, template)
            if not built:
                connection.settings_dict["TEST"]["NAME"] = template
                try:
                    original(verbosity, autoclobber=True, serialize=False, keepdb=False)
                finally:
                    connection.settings_dict["TEST"]["NAME"] = name
                connection.close()
                lock.seek(0)
                lock.truncate()
                lock.write(run)
                lock.flush()
            with creation._nodb_cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)}")
                cursor.execute(f"CREATE DATABASE {quote(name)} TEMPLATE {quote(template)}")
        settings.DATABASES[connection.alias]["NAME"] = name
        connection.settings_dict["NAME"] = name
        if serialize:
            connection._test_serialized_contents = creation.serialize_db_to_string()
        connection.ensure_connection()
        return name

    creation.create_test_db = create_test_db
    yield
    creation.create_test_db = original
    if "template" in names:
        # A process that has not copied it yet builds it again (its lock file names the run).
        with (
            django_db_blocker.unblock(),
            locked(names["template"]),
            creation._nodb_cursor() as cursor,
        ):
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(names['template'])}")


@pytest.fixture(scope="session")
def django_db_setup(_test_database_from_template, django_db_setup):
    """pytest-django's, with the test database copied from a migrated template (above)."""
    return django_db_setup


@pytest.fixture(autouse=True, scope="session")
def _isolated_celery_queue():
    """Parallel test processes share one Redis: each gets its own queue, so a worker started by
    one never takes another's tasks."""
    from portal.celery import app

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    app.conf.task_default_queue = f"tests-{worker}"
    return app


@pytest.fixture(autouse=True, scope="session")
def _flush_may_empty_history():
    """Transactional tests (browser, worker) end with a flush of every table. The audit log
    and the timelines refuse DELETE and TRUNCATE in the database (portal.history), so the
    flush runs with history unlocked: the one place outside a retention command that may.

    On PostgreSQL the flush deletes the rows instead of truncating the tables: TRUNCATE makes
    new files for each of some eighty tables and their indexes (a second or more on a busy
    disk, after every such test), while a test leaves a few rows in a few tables. The foreign
    keys Django creates are all deferred to the commit, so the order does not matter, and,
    like Django's own TRUNCATE without RESTART IDENTITY, the sequences go on counting."""
    original = flush.Command.handle
    original_sql_flush = flush.sql_flush

    def handle(self, *args, **options):
        with history_unlocked(reason="test flush", using=options.get("database", "default")):
            return original(self, *args, **options)

    def sql_flush(style, connection, reset_sequences=True, allow_cascade=False):
        if connection.vendor != "postgresql" or reset_sequences or allow_cascade:
            return original_sql_flush(
                style, connection, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        tables = connection.introspection.django_table_names(
            only_existing=True, include_views=False
        )
        return [f"DELETE FROM {connection.ops.quote_name(table)};" for table in tables]  # noqa: S608

    flush.Command.handle = handle
    flush.sql_flush = sql_flush
    yield
    flush.Command.handle = original
    flush.sql_flush = original_sql_flush


# The role groups and their permissions as the migrations made them, by (app label,
# codename): recorded after the first replay in this process, restored after later flushes.
_replayed_roles: dict[str, list[tuple[str, str]]] = {}


def ensure_roles() -> None:
    """Transactional tests (browser, worker) end with a flush that empties every table; the
    role groups come from data migrations, so replay those when they are gone. The replay
    (each migration recreates every permission first) takes a good half second; the groups
    it made are recorded, and put back from that record after later flushes."""
    from django.contrib.auth.models import Permission

    if Group.objects.filter(name__in=roles.ROLES).count() == len(roles.ROLES):
        return
    if _replayed_roles:
        ids = {
            (app_label, codename): pk
            for pk, app_label, codename in Permission.objects.values_list(
                "pk", "content_type__app_label", "codename"
            )
        }
        for name, permissions in _replayed_roles.items():
            group, _ = Group.objects.get_or_create(name=name)
            group.permissions.add(*(ids[key] for key in permissions))
        return
    # The replayed functions mark each app as having models while they create permissions,
    # and most then set the mark to None: on the live app registry that would leave every
    # later flush's post_migrate creating no permissions or content types. Put it back.
    models_modules = {config: config.models_module for config in django_apps.get_app_configs()}
    try:
        for app in ("portal", "images"):
            migrations = sorted((Path(__file__).parents[1] / app / "migrations").glob("0*.py"))
            for path in migrations:
                module = importlib.import_module(f"{app}.migrations.{path.stem}")
                if hasattr(module, "create_roles"):
                    module.create_roles(django_apps, None)
    finally:
        for config, models_module in models_modules.items():
            config.models_module = models_module
    for group in Group.objects.prefetch_related("permissions__content_type"):
        _replayed_roles[group.name] = sorted(
            (permission.content_type.app_label, permission.codename)
            for permission in group.permissions.all()
        )


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hasher():
    """PBKDF2 with Django's million iterations costs a quarter of a CPU second per password
    set or checked; the suite sets one for every persona and checks one at every browser
    login. No test measures hashing, so the tests hash with MD5 (the test-only hasher Django's
    docs recommend); the default hashers stay behind it, so a password a subprocess stored
    with PBKDF2 (setup_portal, run_portal) still checks."""
    from django.conf import settings
    from django.test import override_settings

    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]
    with override_settings(PASSWORD_HASHERS=hashers):
        yield


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache():
    """Parallel test processes share the cache (Redis, or files under var/): each gets its own
    key prefix, so one's heartbeats and counters never show in another's assertions."""
    import copy

    from django.conf import settings
    from django.test import override_settings

    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"tests-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    with override_settings(CACHES=caches):
        yield


@pytest.fixture(autouse=True)
def _fresh_cache_keys(_isolated_cache):
    """Each test its own key prefix too: cached versions and blocks are keyed by primary keys,
    which a rolled-back test (or a new test database) hands out again."""
    import copy
    import uuid

    from django.conf import settings
    from django.test import override_settings

    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] += f"-{uuid.uuid4().hex[:12]}"
    with override_settings(CACHES=caches):
        yield


@pytest.fixture
def make_user(db):
    ensure_roles()

    def make(username: str, role: str | None = None, **extra) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD, **extra)
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def operator(make_user) -> User:
    return make_user("olivia", roles.OPERATOR)


@pytest.fixture
def second_operator(make_user) -> User:
    return make_user("oscar", roles.OPERATOR)


@pytest.fixture
def manager(make_user) -> User:
    return make_user("maria", roles.MANAGER, is_staff=True)


@pytest.fixture
def image_staff(make_user) -> User:
    return make_user("ines", roles.IMAGE_STAFF)


@pytest.fixture
def outsider(make_user) -> User:
    """Logged in, but in no role."""
    return make_user("nobody")


@pytest.fixture(autouse=True)
def _no_startup_grace(settings):
    """Every test process has just started: /api/health would say "starting" instead of what
    failed. The grace period has its own test."""
    settings.HEALTH_STARTUP_GRACE_SECONDS = 0


@pytest.fixture(autouse=True)
def _no_status_page_cache(settings):
    """The status pages' server cache outlives a test's database: a page rendered in one test
    would be served in the next. Its own tests turn it back on."""
    settings.STATUS_CACHE_SECONDS = 0


@pytest.fixture
def htmx() -> dict:
    """The header htmx sends with each of its requests: ``client.get(url, **htmx)``."""
    return {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sent_tasks():
    """What the code sends to the broker, as (task name, args), recorded by Celery's own
    before_task_publish signal (the message still goes out, to this test process's queue,
    which is emptied afterwards)."""
    from celery.signals import before_task_publish

    from portal.celery import app

    sent: list[tuple[str, tuple]] = []

    def record(sender=None, headers=None, body=None, **kwargs):
        sent.append((sender, tuple(body[0])))

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)
    with app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_purge(app.conf.task_default_queue)


def sent_ids(sent: list[tuple[str, tuple]], task: str) -> list[int]:
    """The image (or other row) ids sent to ``task``, in order."""
    return [args[0] for name, args in sent if name == task]


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def make_template(db):
    def make(
        name: str = "Morning check",
        items: list = ("Services healthy", "No critical errors in logs"),
        cadence: str = Cadence.DAILY,
        due_time: time | None = None,
        **extra,
    ) -> ChecklistTemplate:
        """By default due a few minutes ago, so the scheduler opens a run that is not yet
        overdue, whatever the time of day the suite runs."""
        if due_time is None:
            recent = timezone.localtime() - timedelta(minutes=5)
            due_time = recent.time().replace(second=0, microsecond=0)
        from django.utils.text import slugify

        template = ChecklistTemplate.objects.create(
            name=name,
            slug=extra.pop("slug", slugify(name)),
            cadence=cadence,
            due_time=due_time,
            **extra,
        )
        _add_items(template, list(items), parent=None)
        return template

    return make


def _add_items(template, items, parent):
    """Items as strings, or (text, [children]) pairs, or dicts with text/command/children."""
    for position, spec in enumerate(items):
        if isinstance(spec, str):
            spec = {"text": spec}
        elif isinstance(spec, tuple):
            spec = {"text": spec[0], "children": spec[1]}
        item = ChecklistItem.objects.create(
            template=template,
            parent=parent,
            position=position,
            text=spec["text"],
            command=spec.get("command", ""),
            help_text=spec.get("help_text", ""),
        )
        _add_items(template, spec.get("children", []), parent=item)


RESPONSE_ITEMS = [
    "Acknowledge the alert",
    "Open an incident channel",
    "Assess the impact and set the severity",
    "Mitigate first",
    "Update the status page",
    "Find the root cause",
    "Deploy the fix",
    "Write the postmortem",
]


@pytest.fixture
def severities(db):
    """P0-P3 as the migration seeds them (replayed: a transactional test's flush empties them)."""
    from ops.models import Severity

    module = importlib.import_module("ops.migrations.0003_incidents")
    module.seed_severities(django_apps, None)
    return {severity.code: severity for severity in Severity.objects.all()}


@pytest.fixture
def response_checklist(make_template):
    return make_template(
        "Incident response checklist", items=RESPONSE_ITEMS, cadence=Cadence.ON_DEMAND
    )


@pytest.fixture
def make_incident(severities, response_checklist):
    from ops.services.incidents import incident_open

    def make(user, title: str = "Login errors", severity: str = "P1", **extra):
        return incident_open(user=user, title=title, severity=severity, **extra)

    return make
