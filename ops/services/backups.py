"""Database backups as jobs: `pg_dump -Fc` streamed to storage (never the whole dump in
memory) with its sha256 and the per-table row counts and checksums taken in the same snapshot;
verification by `pg_restore` into a scratch database created and dropped; grandfather-father-
son retention that never deletes the last verified backup."""

import contextlib
import hashlib
import logging
import os
import secrets
import subprocess
import threading
import time
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import sql

from ops.models import (
    Backup,
    BackupTarget,
    BackupVerification,
    DataSource,
    Environment,
    JobStatus,
    RestoreTest,
)
from ops.services.gdpr_jobs import gdpr_ledger_replay_restored
from ops.services.gdpr_sources import SourceError
from ops.services.releases import DeployFailed, describe_api_error, environment_client
from portal.celery import app
from portal.errors import ActionRefused
from portal.permissions import require_perm
from portal.services.audit import audit_record

logger = logging.getLogger(__name__)
CHUNK = 1024 * 1024
TABLES = """
    SELECT quote_ident(schemaname) || '.' || quote_ident(tablename)
    FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY 1
"""


class BackupFailed(Exception):
    pass


def backup_storage():
    return storages["backups"]


def _database_url(target: BackupTarget) -> str:
    url = os.environ.get(target.url_variable, "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise BackupFailed(
            f"The environment variable {target.url_variable} does not hold a postgres:// URL."
        )
    return url


def _table_facts(connection: psycopg.Connection) -> tuple[dict, dict]:
    """Row count and a checksum of the contents of every table, read in the connection's
    current transaction (the dump's snapshot)."""
    counts, checksums = {}, {}
    for (table,) in connection.execute(TABLES).fetchall():
        query = sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '')"
            " FROM {} t"
        ).format(sql.SQL(table))
        count, checksum = connection.execute(query).fetchone()
        counts[table] = count
        checksums[table] = checksum
    return counts, checksums


class _HashingReader:
    """A pipe read by the storage in chunks, hashed and counted on the way."""

    def __init__(self, raw):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size and size > 0 else CHUNK)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def close(self) -> None:
        self.raw.close()


def managed_backups_list(*, target: BackupTarget) -> tuple[list[dict], str]:
    """DigitalOcean's own backups of a managed database (pydo databases.list_backups), newest
    first; or an empty list and why."""
    if not target.managed_database_id:
        return [], ""
    # Without an environment, the token in the field's default variable (DIGITALOCEAN_TOKEN).
    environment = target.environment or Environment(name="DigitalOcean")
    try:
        client = environment_client(environment=environment)
        answer = client.databases.list_backups(target.managed_database_id)
    except DeployFailed as failed:
        return [], str(failed)
    except Exception as error:  # any API fault is shown beside the list, not raised
        return [], describe_api_error(error, environment=environment)
    if answer.get("id") == "not_found":
        return [], f"DigitalOcean does not know the database {target.managed_database_id} (404)."
    backups = sorted(answer.get("backups") or [], key=lambda b: b.get("created_at", ""))
    return backups[::-1], ""


# Starting


def backup_start(*, target: BackupTarget, user=None, now: datetime | None = None) -> Backup:
    """Queue a backup of ``target`` (one at a time per target); user None is the schedule."""
    if user is not None:
        require_perm(user, "ops.start_backup", "You may not take backups.")
    now = now or timezone.now()
    try:
        with transaction.atomic():
            backup = Backup.objects.create(target=target, created_by=user, created_at=now)
    except IntegrityError:
        raise ActionRefused(f"A backup of {target} is already under way.", status=409) from None
    audit_record(actor=user, action="backup.start", target=backup, summary=str(target))
    transaction.on_commit(lambda: app.send_task("ops.backup_run", args=[backup.pk]))
    return backup


def backup_verify_start(*, backup: Backup, user=None, now: datetime | None = None):
    if user is not None:
        require_perm(user, "ops.start_backup", "You may not verify backups.")
    if backup.status != JobStatus.SUCCEEDED or backup.pruned_at:
        raise ActionRefused(
            "Only a finished backup that is still kept can be verified.", status=409
        )
    if backup.verifications.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists():
        raise ActionRefused("This backup is already being verified.", status=409)
    verification = BackupVerification.objects.create(
        backup=backup, created_by=user, created_at=now or timezone.now()
    )
    audit_record(actor=user, action="backup.verify", target=backup, summary=str(backup))
    transaction.on_commit(lambda: app.send_task("ops.backup_verify", args=[verification.pk]))
    return verification


# The backup job


def _dump(url: str, snapshot: str, name: str) -> tuple[str, int, str]:
    """pg_dump into storage; returns (stored name, size, sha256). A failure removes what was
    written, so a partial file is never left behind."""
    storage = backup_storage()
    command = ["pg_dump", "-Fc", f"--snapshot={snapshot}", f"--dbname={url}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    drain.start()
    reader = _HashingReader(process.stdout)
    stored = ""
    try:
        stored = storage.save(name, File(reader, name=name))
        code = process.wait()
        drain.join(timeout=10)
        if code != 0:
            message = b"".join(errors).decode(errors="replace").strip()
            raise BackupFailed(f"pg_dump failed (exit {code}): {message[-500:]}")
    except BaseException as error:
        process.kill()
        process.wait()
        if stored and storage.exists(stored):
            storage.delete(stored)
        elif storage.exists(name):
            storage.delete(name)
        if isinstance(error, OSError):
            raise BackupFailed(f"The backup could not be written to storage: {error}") from error
        raise
    return stored, reader.size, reader.sha256.hexdigest()


def _claim(model, pk: int, now: datetime) -> bool:
    return bool(
        model.objects.filter(pk=pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=now
        )
    )


def backup_run(*, backup_id: int, now: datetime | None = None) -> Backup | None:
    now = now or timezone.now()
    if not _claim(Backup, backup_id, now):
        return None
    backup = Backup.objects.select_related("target").get(pk=backup_id)
    target = backup.target
    started = time.monotonic()
    try:
        url = _database_url(target)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
            version = connection.execute("SHOW server_version").fetchone()[0]
            counts, checksums = _table_facts(connection)
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
            name = f"{settings.BACKUP_STORAGE_PREFIX}/{target.slug}/{stamp}-{backup.pk}.dump"
            stored, size, digest = _dump(url, snapshot, name)
            connection.execute("COMMIT")
    except (BackupFailed, psycopg.Error, OSError) as error:
        Backup.objects.filter(pk=backup.pk).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), error=str(error)[:2000]
        )
        audit_record(actor=None, action="backup.failed", target=backup, summary=str(error)[:300])
        backup.refresh_from_db()
        return backup
    Backup.objects.filter(pk=backup.pk).update(
        status=JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
        file_name=stored,
        size_bytes=size,
        sha256=digest,
        server_version=version,
        table_counts=counts,
        table_checksums=checksums,
        log=f"{len(counts)} tables, {size} bytes in {time.monotonic() - started:.1f} s",
    )
    backup.refresh_from_db()
    audit_record(actor=None, action="backup.succeeded", target=backup, summary=backup.file_name)
    backups_prune(target=target)
    return backup


# Verification


def _server_url(url: str, database: str) -> str:
    """The same server, another database."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)


def _stored_chunks(name: str):
    """The stored dump in chunks: from S3 the object's body is streamed (S3File would first
    copy it whole into a temporary file), from a file system the file is read."""
    storage = backup_storage()
    bucket = getattr(storage, "bucket", None)
    if bucket is not None:
        # The key with the storage's location prefix, as S3Storage itself names it.
        body = bucket.Object(storage._normalize_name(name)).get()["Body"]
        yield from body.iter_chunks(CHUNK)
        return
    with storage.open(name, "rb") as stored:
        while chunk := stored.read(CHUNK):
            yield chunk


def _restore(backup: Backup, scratch_url: str) -> None:
    """Stream the stored dump into pg_restore, checking its sha256 on the way."""
    process = subprocess.Popen(
        ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", f"--dbname={scratch_url}"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    digest = hashlib.sha256()
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    drain.start()
    try:
        for chunk in _stored_chunks(backup.file_name):
            digest.update(chunk)
            process.stdin.write(chunk)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
    code = process.wait()
    drain.join(timeout=10)
    if digest.hexdigest() != backup.sha256:
        raise BackupFailed(
            f"The stored file's sha256 is {digest.hexdigest()[:16]}…, not the "
            f"{backup.sha256[:16]}… recorded at dump time: the file is corrupted."
        )
    if code != 0:
        message = b"".join(errors).decode(errors="replace").strip()
        raise BackupFailed(f"pg_restore failed (exit {code}): {message[-500:]}")


def _differences(backup: Backup, counts: dict, checksums: dict) -> list[str]:
    found = []
    for table in sorted(set(backup.table_counts) | set(counts)):
        if table not in counts:
            found.append(f"{table}: missing after restore")
        elif table not in backup.table_counts:
            found.append(f"{table}: not in the backup's record")
        elif counts[table] != backup.table_counts[table]:
            found.append(
                f"{table}: {counts[table]} rows, {backup.table_counts[table]} at dump time"
            )
        elif checksums.get(table) != backup.table_checksums.get(table):
            found.append(f"{table}: contents differ from dump time")
    return found


def _ledger_sources(target: BackupTarget, url: str) -> list[DataSource]:
    """The GDPR register's data sources that are this target's database: the same variable,
    or a variable holding the same URL."""
    return [
        source
        for source in DataSource.objects.filter(is_active=True).prefetch_related("tables")
        if source.connection_env == target.url_variable
        or os.environ.get(source.connection_env, "") == url
    ]


def _replay_ledger(target: BackupTarget, url: str, scratch_url: str) -> tuple[int | None, dict]:
    """Erase again, in the restored copy, everyone the GDPR erasure ledger says was erased
    (so a restore never brings them back). (None, {}) when no data source is this database;
    a BackupFailed when the replay fails or leaves an identifier behind."""
    sources = _ledger_sources(target, url)
    if not sources:
        return None, {}
    replayed, rows = 0, {}
    with psycopg.connect(scratch_url) as restored:
        for source in sources:
            try:
                count, removed, left = gdpr_ledger_replay_restored(
                    source=source, connection=restored
                )
            except SourceError as problem:
                raise BackupFailed(f"GDPR ledger replay: {problem.message}") from None
            replayed += count
            rows.update({f"{source.name}/{table}": n for table, n in removed.items()})
            if left:
                raise BackupFailed(
                    f"GDPR ledger replay: {left} value(s) of erased people are still in "
                    f"{source.name} after replaying {count} erasure(s)."
                )
    return replayed, rows


def backup_verify(*, verification_id: int, now: datetime | None = None):
    now = now or timezone.now()
    if not _claim(BackupVerification, verification_id, now):
        return None
    verification = BackupVerification.objects.select_related("backup__target").get(
        pk=verification_id
    )
    backup = verification.backup
    scratch = f"{settings.BACKUP_SCRATCH_PREFIX}{backup.pk}_{secrets.token_hex(4)}"
    BackupVerification.objects.filter(pk=verification.pk).update(scratch_database=scratch)
    status, error, differences, seconds = JobStatus.FAILED, "", [], None
    replayed, erasure_rows = None, {}
    try:
        url = _database_url(backup.target)
        admin_url = _server_url(url, "postgres")
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        try:
            started = time.monotonic()
            scratch_url = _server_url(url, scratch)
            _restore(backup, scratch_url)
            seconds = time.monotonic() - started
            with psycopg.connect(scratch_url) as restored:
                counts, checksums = _table_facts(restored)
            differences = _differences(backup, counts, checksums)
            if differences:
                error = f"{len(differences)} table(s) differ from dump time."
            else:
                # After the comparison: the replay changes what was restored, on purpose.
                replayed, erasure_rows = _replay_ledger(backup.target, url, scratch_url)
                status = JobStatus.SUCCEEDED
        finally:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(scratch)
                    )
                )
    except (BackupFailed, psycopg.Error, OSError) as failure:
        error = str(failure)[:2000]
    finished = timezone.now()
    BackupVerification.objects.filter(pk=verification.pk).update(
        status=status,
        finished_at=finished,
        restore_seconds=seconds,
        differences=differences,
        erasures_replayed=replayed,
        erasure_rows=erasure_rows,
        error=error,
    )
    if status == JobStatus.SUCCEEDED:
        Backup.objects.filter(pk=backup.pk).update(verified_at=finished)
    audit_record(
        actor=None,
        action=f"backup.verify_{status}",
        target=backup,
        summary=error
        or f"restored in {seconds:.1f} s, all tables match"
        + (f", {replayed} GDPR erasure(s) replayed" if replayed is not None else ""),
    )
    verification.refresh_from_db()
    return verification


# Restore tests on staging


def _latest_verified(target: BackupTarget) -> Backup | None:
    return (
        target.backups.filter(status=JobStatus.SUCCEEDED, pruned_at__isnull=True)
        .exclude(verified_at__isnull=True)
        .order_by("-created_at")
        .first()
    )


def restore_test_start(
    *, target: BackupTarget, user=None, confirm: str = "", now: datetime | None = None
) -> RestoreTest:
    """Queue a restore of ``target``'s latest verified backup into its configured restore-test
    database (staging), which is overwritten: by hand the person types that target's slug to
    confirm; user None is the schedule."""
    if user is not None:
        require_perm(user, "ops.start_backup", "You may not run restore tests.")
    destination = target.restore_test_target
    if destination is None:
        raise ActionRefused(
            f"No restore-test database is configured for {target}: choose its staging target "
            "in the admin (Restore test target).",
            status=409,
        )
    try:
        target.clean()
    except ValidationError as invalid:
        raise ActionRefused(" ".join(invalid.messages), status=409) from None
    backup = _latest_verified(target)
    if backup is None:
        raise ActionRefused(
            f"{target} has no verified backup to restore: verify one first.", status=409
        )
    if user is not None and (confirm or "").strip() != destination.slug:
        raise ActionRefused(
            f"Type {destination.slug} to confirm: the restore overwrites the whole "
            f"{destination} database.",
            field="confirm",
        )
    try:
        with transaction.atomic():
            restore = RestoreTest.objects.create(
                source=target,
                destination=destination,
                backup=backup,
                created_by=user,
                created_at=now or timezone.now(),
            )
    except IntegrityError:
        raise ActionRefused(
            f"A restore into {destination} is already under way.", status=409
        ) from None
    audit_record(
        actor=user,
        action="backup.restore_test",
        target=restore,
        summary=f"{backup} into {destination} (overwritten)",
    )
    transaction.on_commit(lambda: app.send_task("ops.restore_test_run", args=[restore.pk]))
    return restore


def _same_database(first: str, second: str) -> bool:
    keys = ("host", "port", "dbname")
    one = psycopg.conninfo.conninfo_to_dict(first)
    other = psycopg.conninfo.conninfo_to_dict(second)
    return all(str(one.get(key) or "") == str(other.get(key) or "") for key in keys)


def restore_test_run(*, restore_id: int, now: datetime | None = None) -> RestoreTest | None:
    """The job: drop and create the staging database, stream the backup into it (sha256
    checked), compare every table with the dump's record, replay the GDPR erasure ledger;
    the recovery time is all of it."""
    now = now or timezone.now()
    if not _claim(RestoreTest, restore_id, now):
        return None
    restore = RestoreTest.objects.select_related("source", "destination", "backup").get(
        pk=restore_id
    )
    backup = restore.backup
    status, error, differences, counts, seconds, replayed = JobStatus.FAILED, "", [], {}, None, None
    try:
        source_url = _database_url(restore.source)
        url = _database_url(restore.destination)
        if _same_database(source_url, url):
            raise BackupFailed(
                f"{restore.destination} and {restore.source} are the same database: refused."
            )
        database = psycopg.conninfo.conninfo_to_dict(url).get("dbname")
        if not database:
            raise BackupFailed(f"The URL in {restore.destination.url_variable} names no database.")
        started = time.monotonic()
        with psycopg.connect(_server_url(url, "postgres"), autocommit=True) as admin:
            name = sql.Identifier(database)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
        _restore(backup, url)
        with psycopg.connect(url) as restored:
            counts, checksums = _table_facts(restored)
        differences = _differences(backup, counts, checksums)
        if differences:
            error = f"{len(differences)} table(s) differ from dump time."
        else:
            replayed, _rows = _replay_ledger(restore.source, source_url, url)
            status = JobStatus.SUCCEEDED
        seconds = time.monotonic() - started
    except (BackupFailed, psycopg.Error, OSError) as failure:
        error = str(failure)[:2000]
    RestoreTest.objects.filter(pk=restore.pk).update(
        status=status,
        finished_at=timezone.now(),
        restore_seconds=seconds,
        table_counts=counts,
        differences=differences,
        erasures_replayed=replayed,
        error=error,
    )
    restore.refresh_from_db()
    audit_record(
        actor=None,
        action=f"backup.restore_test_{status}",
        target=restore,
        summary=error or f"recovered in {seconds:.1f} s (runbook target 15–30 minutes)",
    )
    return restore


def restore_tests_due(*, now: datetime | None = None) -> list[int]:
    """Beat (daily): a restore test of every target with a restore-test database and none in
    its period (quarterly by default); refusals (no verified backup yet) wait for the next day."""
    now = now or timezone.now()
    started = []
    for target in BackupTarget.objects.filter(restore_test_target__isnull=False):
        since = now - timedelta(days=target.restore_test_days)
        recent = target.restore_tests.filter(
            Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
            | Q(status=JobStatus.SUCCEEDED, created_at__gte=since)
        )
        if recent.exists():
            continue
        try:
            with transaction.atomic():
                started.append(restore_test_start(target=target, now=now).pk)
        except ActionRefused as refused:
            logger.warning("Restore test of %s not started: %s", target, refused.message)
    return started


# Retention and schedules


def _kept(backups: list[Backup], target: BackupTarget) -> set[int]:
    """Grandfather-father-son: the newest backup of each of the last N days, weeks, months."""
    keep: set[int] = set()
    for count, key in (
        (target.keep_daily, lambda moment: moment.date()),
        (target.keep_weekly, lambda moment: tuple(moment.isocalendar()[:2])),
        (target.keep_monthly, lambda moment: (moment.year, moment.month)),
    ):
        seen = []
        for backup in backups:  # newest first
            period = key(timezone.localtime(backup.created_at))
            if period not in seen:
                seen.append(period)
                if len(seen) > count:
                    break
                keep.add(backup.pk)
    return keep


def backups_prune(*, target: BackupTarget, now: datetime | None = None) -> list[int]:
    """Delete the files of backups retention no longer keeps; never the last verified one."""
    now = now or timezone.now()
    backups = list(
        Backup.objects.filter(
            target=target, status=JobStatus.SUCCEEDED, pruned_at__isnull=True
        ).order_by("-created_at")
    )
    keep = _kept(backups, target)
    verified = next((b for b in backups if b.verified_at), None)
    if verified is not None:
        keep.add(verified.pk)
    pruned = []
    storage = backup_storage()
    for backup in backups:
        if backup.pk in keep:
            continue
        if backup.file_name and storage.exists(backup.file_name):
            storage.delete(backup.file_name)
        Backup.objects.filter(pk=backup.pk).update(pruned_at=now)
        audit_record(actor=None, action="backup.prune", target=backup, summary=backup.file_name)
        pruned.append(backup.pk)
    return pruned


def backups_run_due(*, now: datetime | None = None) -> list[int]:
    """Beat (daily): a backup of every target without one in the last 20 hours."""
    now = now or timezone.now()
    started = []
    for target in BackupTarget.objects.all():
        recent = target.backups.filter(
            Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
            | Q(status=JobStatus.SUCCEEDED, created_at__gte=now - timedelta(hours=20))
        )
        if not recent.exists():
            with transaction.atomic():
                started.append(backup_start(target=target, now=now).pk)
    return started


def backups_verify_latest(*, now: datetime | None = None) -> list[int]:
    """Beat (weekly): verify the newest good backup of every target."""
    started = []
    for target in BackupTarget.objects.all():
        latest = target.backups.filter(status=JobStatus.SUCCEEDED, pruned_at__isnull=True).first()
        if latest is not None and not latest.verified_at:
            try:
                with transaction.atomic():
                    started.append(backup_verify_start(backup=latest, now=now).pk)
            except ActionRefused:
                continue
    return started
