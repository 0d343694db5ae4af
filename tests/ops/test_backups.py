"""Backups and verified restores against the real PostgreSQL here: a seeded database of a few
tables is dumped (pg_dump -Fc, streamed to storage), restored into a scratch database that is
created and dropped, and compared; a corrupted dump, a dump that fails mid-stream and a full
storage fail with their reasons and leave nothing behind; retention keeps the last verified."""

import hashlib
import os
import secrets
import stat
from datetime import timedelta

import boto3
import psycopg
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.utils import timezone
from moto.server import ThreadedMotoServer
from psycopg import sql

from ops.models import (
    Backup,
    BackupTarget,
    DataSource,
    DataSourceTable,
    DataSubjectRequest,
    Environment,
    ErasureLedgerEntry,
    JobStatus,
    RestoreTest,
)
from ops.selectors.health import kpi_values
from ops.services import backups as backups_module
from ops.services import gdpr
from ops.services.backups import (
    backup_run,
    backup_start,
    backup_storage,
    backup_verify,
    backup_verify_start,
    backups_prune,
    restore_test_run,
    restore_test_start,
    restore_tests_due,
)
from ops.services.gdpr_jobs import gdpr_job_run, gdpr_job_start
from ops.services.releases import deploy_gates
from portal import roles
from portal.errors import ActionRefused
from portal.registry import registry
from tests.conftest import client_for
from tests.fakes import _unused_port
from tests.ops.gdpr_source import SUBJECT, rows, seeded_source

pytestmark = pytest.mark.postgres


def _server_url(database: str) -> str:
    return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture
def seeded(monkeypatch):
    """A database of three tables on this server, dropped afterwards."""
    name = f"h14_seed_{secrets.token_hex(4)}"
    with psycopg.connect(_server_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(_server_url(name), autocommit=True) as seed:
        seed.execute("CREATE TABLE customers (id serial primary key, name text, email text)")
        seed.execute(
            "INSERT INTO customers (name, email) SELECT 'person ' || g, g || '@example.org' "
            "FROM generate_series(1, 500) g"
        )
        seed.execute("CREATE TABLE orders (id serial primary key, customer int, total numeric)")
        seed.execute(
            "INSERT INTO orders (customer, total) SELECT g % 500 + 1, g * 1.5 "
            "FROM generate_series(1, 2000) g"
        )
        seed.execute("CREATE SCHEMA audit")
        seed.execute("CREATE TABLE audit.events (at timestamptz default now(), what text)")
        seed.execute("INSERT INTO audit.events (what) VALUES ('one'), ('two')")
    monkeypatch.setenv("H14_SEED_URL", _server_url(name))
    yield name
    with psycopg.connect(_server_url("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def storage_dir(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "backups")},
        },
    }
    settings.BACKUP_SCRATCH_PREFIX = "h14_verify_"
    return tmp_path / "backups"


@pytest.fixture
def target(db, seeded, storage_dir):
    return BackupTarget.objects.create(name="Seed", slug="seed", url_variable="H14_SEED_URL")


def _take(target, user=None) -> Backup:
    backup = backup_start(target=target, user=user)
    return backup_run(backup_id=backup.pk)


def _scratch_databases() -> list[str]:
    with psycopg.connect(_server_url("postgres")) as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'h14_verify_%'"
        ).fetchall()
    return [row[0] for row in rows]


def test_backup_then_verified_restore(target, storage_dir, operator):
    backup = _take(target, operator)
    assert backup.status == JobStatus.SUCCEEDED, backup.error
    assert backup.table_counts == {
        "audit.events": 2,
        "public.customers": 500,
        "public.orders": 2000,
    }
    assert len(backup.sha256) == 64 and backup.size_bytes > 1000
    assert backup.server_version.split(".")[0].isdigit()
    stored = storage_dir / backup.file_name
    assert stored.stat().st_size == backup.size_bytes
    verification = backup_verify_start(backup=backup, user=operator)
    verification = backup_verify(verification_id=verification.pk)
    assert verification.status == JobStatus.SUCCEEDED, verification.error
    assert verification.restore_seconds > 0 and verification.differences == []
    backup.refresh_from_db()
    assert backup.verified_at is not None
    assert verification.scratch_database not in _scratch_databases()  # dropped
    page = client_for(operator).get(backup.get_absolute_url()).content.decode()
    assert "runbook target 15–30 minutes" in page and "public.orders" in page


def test_a_corrupted_dump_is_caught_by_verification(target, storage_dir):
    backup = _take(target)
    path = storage_dir / backup.file_name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    verification = backup_verify(verification_id=backup_verify_start(backup=backup).pk)
    assert verification.status == JobStatus.FAILED
    assert "corrupted" in verification.error
    backup.refresh_from_db()
    assert backup.verified_at is None
    assert verification.scratch_database not in _scratch_databases()


def test_a_restore_whose_contents_differ_fails_with_the_tables(target, seeded):
    backup = _take(target)
    # What was recorded at dump time disagrees with the file: one count, one checksum.
    counts = {**backup.table_counts, "public.orders": 1999}
    checksums = {**backup.table_checksums, "audit.events": "0" * 32}
    Backup.objects.filter(pk=backup.pk).update(table_counts=counts, table_checksums=checksums)
    backup.refresh_from_db()
    verification = backup_verify(verification_id=backup_verify_start(backup=backup).pk)
    assert verification.status == JobStatus.FAILED
    assert "public.orders: 2000 rows, 1999 at dump time" in verification.differences
    assert "audit.events: contents differ from dump time" in verification.differences


def test_pg_dump_failing_mid_stream_leaves_no_file_and_the_next_try_works(
    target, storage_dir, tmp_path, monkeypatch
):
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nprintf 'PGDMP partial bytes'\necho 'connection lost' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    real_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{fake.parent}:{real_path}")
    failed = _take(target)
    assert failed.status == JobStatus.FAILED
    assert "pg_dump failed (exit 1): connection lost" in failed.error
    assert not failed.file_name
    assert not any(path.is_file() for path in storage_dir.rglob("*"))
    monkeypatch.setenv("PATH", real_path)
    assert _take(target).status == JobStatus.SUCCEEDED


class FullStorage(FileSystemStorage):
    """A disk that fills after the first megabyte-sized chunk has been written."""

    def _save(self, name, content):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(content.read(1024 * 1024))
        raise OSError(28, "No space left on device")


def test_a_full_storage_fails_the_backup_and_removes_the_partial_file(
    target, storage_dir, settings
):
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "tests.ops.test_backups.FullStorage",
            "OPTIONS": {"location": str(storage_dir)},
        },
    }
    backup = _take(target)
    assert backup.status == JobStatus.FAILED
    assert "could not be written to storage" in backup.error
    assert "No space left on device" in backup.error
    assert not any(path.is_file() for path in storage_dir.rglob("*"))
    assert target.backups.filter(status=JobStatus.SUCCEEDED).count() == 0


def test_one_backup_at_a_time_and_bad_targets(target, monkeypatch):
    backup_start(target=target)
    with pytest.raises(ActionRefused, match="already under way"):
        backup_start(target=target)
    Backup.objects.all().delete()
    monkeypatch.setenv("H14_SEED_URL", "mysql://somewhere/else")
    failed = _take(target)
    assert failed.status == JobStatus.FAILED
    assert "H14_SEED_URL does not hold a postgres:// URL" in failed.error


def test_retention_keeps_grandfather_father_son_and_the_last_verified(db, storage_dir):
    target = BackupTarget.objects.create(
        name="Old", slug="old", url_variable="X", keep_daily=3, keep_weekly=2, keep_monthly=2
    )
    storage = backup_storage()
    now = timezone.now()
    backups = []
    for days in range(0, 120, 2):
        moment = now - timedelta(days=days)
        name = storage.save(f"backups/old/{days}.dump", ContentFile(b"x"))
        backups.append(
            Backup.objects.create(
                target=target,
                status=JobStatus.SUCCEEDED,
                file_name=name,
                created_at=moment,
                finished_at=moment,
                verified_at=moment if days == 100 else None,
            )
        )
    pruned = backups_prune(target=target, now=now)
    kept = Backup.objects.filter(target=target, pruned_at__isnull=True)
    kept_days = sorted((now - b.created_at).days for b in kept)
    assert kept_days[:3] == [0, 2, 4]  # daily
    assert 100 in kept_days  # the last verified, although no rule keeps it
    assert len(kept_days) <= 3 + 2 + 2 + 1
    gone = Backup.objects.filter(pk__in=pruned)
    assert pruned and all(not storage.exists(backup.file_name) for backup in gone)
    assert all(storage.exists(b.file_name) for b in kept)


def test_missing_and_failed_backups_warn_on_today_and_gate_production(
    db, storage_dir, operator, manager
):
    production = Environment.objects.create(
        name="Production", slug="production", app_id="p", requires_manager=True
    )
    target = BackupTarget.objects.create(
        name="Prod DB", slug="prod-db", url_variable="NOPE_URL", environment=production
    )
    page = client_for(operator).get("/").content.decode()
    assert "Backup warning" in page and "No backup has been taken." in page
    failed = _take(target)
    assert failed.status == JobStatus.FAILED
    page = client_for(operator).get("/").content.decode()
    assert "The latest backup failed: The environment variable NOPE_URL" in page
    gate = deploy_gates(environment=production, version="v1")[-1]
    assert not gate.passed and "No backup of Prod DB" in gate.evidence


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 in server mode on 127.0.0.1: boto3 talks HTTP to it, nothing leaves."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    port = _unused_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_backup_and_verify_through_s3_storage(db, seeded, settings, s3_server):
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **credentials)
    s3.create_bucket(Bucket="h14-backups")
    settings.BACKUP_SCRATCH_PREFIX = "h14_verify_"
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "h14-backups",
                "endpoint_url": s3_server,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "location": "portal",
                "file_overwrite": False,
            },
        },
    }
    target = BackupTarget.objects.create(name="Seed", slug="seed", url_variable="H14_SEED_URL")
    backup = _take(target)
    assert backup.status == JobStatus.SUCCEEDED, backup.error
    stored = s3.get_object(Bucket="h14-backups", Key=f"portal/{backup.file_name}")["Body"].read()
    assert len(stored) == backup.size_bytes
    assert hashlib.sha256(stored).hexdigest() == backup.sha256
    verification = backup_verify(verification_id=backup_verify_start(backup=backup).pk)
    assert verification.status == JobStatus.SUCCEEDED, verification.error


@pytest.fixture
def crm(db, storage_dir, monkeypatch):
    """The GDPR register's CRM source, which is also a backup target (the same variable)."""
    with seeded_source(f"h14_crm_{secrets.token_hex(4)}") as url:
        monkeypatch.setenv("H14_CRM_URL", url)
        source = DataSource.objects.create(name="crm", connection_env="H14_CRM_URL")
        DataSourceTable.objects.create(
            source=source,
            table="customers",
            subject_column="email",
            personal_columns=["name", "phone", "customer_no"],
            erasure_action="anonymize",
            anonymize_columns=["email", "name", "phone", "customer_no"],
        )
        DataSourceTable.objects.create(
            source=source, table="orders", subject_column="customer_email"
        )
        DataSourceTable.objects.create(source=source, table="newsletter", subject_column="email")
        target = BackupTarget.objects.create(name="CRM", slug="crm", url_variable="H14_CRM_URL")
        yield source, target, url


def _erase_subject(make_user) -> DataSubjectRequest:
    dpo = make_user("dora", roles.DPO, email="dora@example.com")
    dsr = gdpr.gdpr_request_receive(user=dpo, kind="erasure", subject_email=SUBJECT, assignee=dpo)
    gdpr.gdpr_identity_verify(dsr=dsr, user=dpo, method="account e-mail", evidence="ok")
    job = gdpr_job_start(dsr=dsr, user=dpo, kind="erasure")
    assert gdpr_job_run(job_id=job.pk) == "done"
    return dsr


def test_verify_replays_the_erasure_ledger_so_erased_people_stay_erased(
    crm, make_user, operator, monkeypatch
):
    _source, target, url = crm
    before = _take(target)  # taken while Anna is still in the CRM
    assert before.table_counts["public.orders"] == 3
    dsr = _erase_subject(make_user)
    assert rows(url, "SELECT count(*) FROM orders") == [(1,)]
    ledger = ErasureLedgerEntry.objects.count()

    # The restored copy, kept for the test: the backup brings Anna back, the replay removes her.
    kept = []
    original = backups_module._replay_ledger

    def replay_and_look(target, url, scratch_url):
        answer = original(target, url, scratch_url)
        kept.append(rows(scratch_url, "SELECT count(*) FROM orders")[0][0])
        kept.append(rows(scratch_url, "SELECT lower(email) FROM customers ORDER BY id"))
        return answer

    monkeypatch.setattr(backups_module, "_replay_ledger", replay_and_look)
    verification = backup_verify(
        verification_id=backup_verify_start(backup=before, user=operator).pk
    )
    assert verification.status == JobStatus.SUCCEEDED, verification.error
    assert verification.differences == []  # compared with dump time before the replay
    assert verification.erasures_replayed == 1
    assert verification.erasure_rows == {"crm/customers": 1, "crm/orders": 2, "crm/newsletter": 1}
    orders_left, emails = kept
    assert orders_left == 1
    assert emails[0][0].startswith("erased-") and emails[1] == ("bob@example.org",)
    assert ErasureLedgerEntry.objects.count() == ledger  # a scratch replay adds nothing
    assert rows(url, "SELECT count(*) FROM orders") == [(1,)]  # the source is untouched
    assert verification.scratch_database not in _scratch_databases()
    assert dsr.ledger_entries.count() == 3
    page = client_for(operator).get(before.get_absolute_url()).content.decode()
    assert "GDPR erasure ledger replayed on the restored copy: 1 erasure, 4 rows erased" in page


def test_a_backup_without_a_register_source_replays_nothing(target, operator):
    backup = _take(target, operator)
    verification = backup_verify(
        verification_id=backup_verify_start(backup=backup, user=operator).pk
    )
    assert verification.status == JobStatus.SUCCEEDED, verification.error
    assert verification.erasures_replayed is None and verification.erasure_rows == {}
    page = client_for(operator).get(backup.get_absolute_url()).content.decode()
    assert "GDPR erasure ledger replayed" not in page


def test_a_ledger_table_missing_from_the_restore_fails_the_verification(crm, make_user, operator):
    _source, target, url = crm
    _erase_subject(make_user)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ALTER TABLE newsletter RENAME TO mailing")
    backup = _take(target)
    verification = backup_verify(
        verification_id=backup_verify_start(backup=backup, user=operator).pk
    )
    assert verification.status == JobStatus.FAILED
    assert verification.error == (
        "GDPR ledger replay: Source “crm”: table “newsletter” does not exist."
    )
    backup.refresh_from_db()
    assert backup.verified_at is None
    assert verification.scratch_database not in _scratch_databases()


@pytest.fixture
def staging_db(db, monkeypatch):
    """The staging database a restore test overwrites: it holds a table of its own first."""
    name = f"h14_staging_{secrets.token_hex(4)}"
    with psycopg.connect(_server_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(_server_url(name), autocommit=True) as staging:
        staging.execute("CREATE TABLE leftover (id int)")
    monkeypatch.setenv("H14_STAGING_URL", _server_url(name))
    staging_env = Environment.objects.create(name="Staging", slug="staging", app_id="s")
    yield BackupTarget.objects.create(
        name="Staging DB",
        slug="staging-db",
        url_variable="H14_STAGING_URL",
        environment=staging_env,
    )
    with psycopg.connect(_server_url("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _verified(target, user=None) -> Backup:
    backup = _take(target, user)
    verification = backup_verify(verification_id=backup_verify_start(backup=backup).pk)
    assert verification.status == JobStatus.SUCCEEDED, verification.error
    backup.refresh_from_db()
    return backup


def test_restore_test_overwrites_staging_with_the_latest_verified_backup(
    target, staging_db, operator, make_template
):
    BackupTarget.objects.filter(pk=target.pk).update(restore_test_target=staging_db)
    target.refresh_from_db()
    _take(target)  # newer but never verified: not the one restored
    backup = _verified(target)
    newer = _take(target)
    assert newer.verified_at is None
    client = client_for(operator)
    page = client.get(target.get_absolute_url()).content.decode()
    assert "Type <code>staging-db</code> to confirm" in page
    # A wrong confirmation changes nothing.
    response = client.post(f"/backups/targets/{target.slug}/restore-test/", {"confirm": "yes"})
    assert response.status_code == 303
    assert not RestoreTest.objects.exists()
    assert "Type staging-db to confirm" in client.get(target.get_absolute_url()).content.decode()
    response = client.post(
        f"/backups/targets/{target.slug}/restore-test/", {"confirm": "staging-db"}
    )
    assert response.status_code == 303
    restore = RestoreTest.objects.get()
    assert restore.backup == backup and restore.destination == staging_db
    restore = restore_test_run(restore_id=restore.pk)
    assert restore.status == JobStatus.SUCCEEDED, restore.error
    assert restore.table_counts == backup.table_counts and restore.differences == []
    assert 0 < restore.restore_seconds < 1800 and restore.within_target
    assert restore_test_run(restore_id=restore.pk) is None  # a second delivery does nothing
    with psycopg.connect(os.environ["H14_STAGING_URL"]) as staging:
        tables = {row[0] for row in staging.execute("SELECT tablename FROM pg_tables").fetchall()}
        assert "leftover" not in tables and "customers" in tables
        assert staging.execute("SELECT count(*) FROM orders").fetchone() == (2000,)
    page = client.get(target.get_absolute_url()).content.decode()
    assert "(target 15–30 minutes: within)" in page
    # Evidence: the checklist item about the restore test gets the KPI, which reads it.
    template = make_template(items=["Test restore procedure (on staging)"])
    step = next(step for step in registry.setup_steps if step.name == "backup-evidence")
    step.run(demo=False)
    item = template.items.get()
    assert item.evidence_kpi.metric == "restore_test_age"
    value = next(v for v in kpi_values() if v.kpi.metric == "restore_test_age")
    assert value.value == 0.0 and value.state == "ok"
    assert value.source.startswith("Seed into Staging DB: recovered in ")
    assert value.source.endswith("(runbook target 15–30 minutes)")


def test_restore_tests_are_scheduled_quarterly(target, staging_db):
    assert restore_tests_due() == []  # no restore target configured: nothing
    BackupTarget.objects.filter(pk=target.pk).update(restore_test_target=staging_db)
    assert restore_tests_due() == []  # no verified backup yet: waits (logged)
    _verified(target)
    first = restore_tests_due()
    assert len(first) == 1 and restore_tests_due() == []  # one live at a time
    restore = restore_test_run(restore_id=first[0])
    assert restore.status == JobStatus.SUCCEEDED, restore.error
    assert restore.created_by is None
    assert restore_tests_due() == []  # done this quarter
    later = timezone.now() + timedelta(days=92)
    assert len(restore_tests_due(now=later)) == 1


def test_restore_test_bad_inputs_are_refused_and_change_nothing(
    target, staging_db, operator, outsider
):
    with pytest.raises(ActionRefused, match="No restore-test database is configured for Seed"):
        restore_test_start(target=target, user=operator, confirm="staging-db")
    BackupTarget.objects.filter(pk=target.pk).update(restore_test_target=staging_db)
    target.refresh_from_db()
    with pytest.raises(ActionRefused, match="Seed has no verified backup to restore"):
        restore_test_start(target=target, user=operator, confirm="staging-db")
    _verified(target)
    with pytest.raises(ActionRefused, match="Type staging-db to confirm"):
        restore_test_start(target=target, user=operator, confirm="")
    response = client_for(outsider).post(
        f"/backups/targets/{target.slug}/restore-test/", {"confirm": "staging-db"}
    )
    assert response.status_code == 403
    # Never into itself, never into production.
    BackupTarget.objects.filter(pk=target.pk).update(restore_test_target=target)
    target.refresh_from_db()
    with pytest.raises(ActionRefused, match="never overwrites the database it tests"):
        restore_test_start(target=target, user=operator, confirm="seed")
    production = Environment.objects.create(
        name="Production", slug="production", app_id="p", requires_manager=True
    )
    BackupTarget.objects.filter(pk=staging_db.pk).update(environment=production)
    BackupTarget.objects.filter(pk=target.pk).update(restore_test_target=staging_db)
    target.refresh_from_db()
    with pytest.raises(ActionRefused, match="restore tests go to staging"):
        restore_test_start(target=target, user=operator, confirm="staging-db")
    assert not RestoreTest.objects.exists()
    with psycopg.connect(os.environ["H14_STAGING_URL"]) as staging:
        assert staging.execute("SELECT count(*) FROM leftover").fetchone() == (0,)


def test_a_restore_target_pointing_at_the_same_database_fails_the_job(
    target, staging_db, operator, monkeypatch
):
    BackupTarget.objects.filter(pk=target.pk).update(restore_test_target=staging_db)
    target.refresh_from_db()
    _verified(target)
    restore = restore_test_start(target=target, user=operator, confirm="staging-db")
    monkeypatch.setenv("H14_STAGING_URL", os.environ["H14_SEED_URL"])
    restore = restore_test_run(restore_id=restore.pk)
    assert restore.status == JobStatus.FAILED
    assert restore.error == "Staging DB and Seed are the same database: refused."
    with psycopg.connect(os.environ["H14_SEED_URL"]) as seed:
        assert seed.execute("SELECT count(*) FROM orders").fetchone() == (2000,)
