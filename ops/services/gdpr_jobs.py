"""Export and erasure jobs of a data-subject request.

The job row is the truth: ``gdpr_job_start`` checks every source first (connection, tables,
columns) and refuses with the problem named, then records a queued job and sends it after
the commit; the worker claims it with a conditional update (queued → running), so a second
delivery of the message does nothing. A source that does not answer puts the job back to
queued and the task retries it later; a configuration problem fails it with the reason.

Export: one ZIP per request, JSON and CSV per source and table plus a manifest (counts,
sha256 per file, each source's schema version), written to a temporary file as the rows are
read and then streamed to the storage; downloadable by the assignee until it expires.

Erasure: one transaction per source, counts per table in the erasure ledger, then a scan of
every configured column of every source for the subject's identifiers."""

import csv
import hashlib
import io
import json
import logging
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from ops.models import DataSource, DataSubjectRequest, ErasureLedgerEntry, GdprJob, Incident
from ops.models.gdpr import JobKind, JobStatus, RequestKind
from ops.services.gdpr import HANDLE, refuse_unless_verified
from ops.services.gdpr_sources import (
    SourceError,
    erase_subject,
    rows_of_subject,
    scan_subject,
    schema_version,
    source_check,
    source_connection,
)
from portal.celery import app
from portal.errors import ActionRefused
from portal.models import AuditEntry
from portal.permissions import require_perm
from portal.secrets import mask_text
from portal.services.audit import audit_record

PORTAL_SOURCE = "portal"
RUN_TASK = "ops.gdpr_job_run"
logger = logging.getLogger(__name__)
# Longer than the task's hard time limit (1 h): a claim this old belongs to a dead worker.
STALE_CLAIM = timedelta(minutes=65)
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class PortalData:
    """Personal data another part of the portal keeps in its own tables (the status page's
    subscribers), exported, erased and scanned with the portal's users: ``rows(dsr)`` the
    subject's rows of ``columns``, ``erase(dsr)`` the rows removed, ``count(dsr)`` the rows
    that still hold an identifier."""

    name: str
    columns: tuple[str, ...]
    rows: Callable[[DataSubjectRequest], list[tuple]]
    erase: Callable[[DataSubjectRequest], int]
    count: Callable[[DataSubjectRequest], int]


# Filled by ops.hooks (AppConfig.ready()), as the external sources are rows of DataSource.
PORTAL_DATA: list[PortalData] = []


def gdpr_portal_data_add(data: PortalData) -> None:
    if any(known.name == data.name for known in PORTAL_DATA):
        raise ImproperlyConfigured(f"Two portal data sources are named {data.name!r}.")
    PORTAL_DATA.append(data)


def export_expiry() -> timedelta:
    return timedelta(days=getattr(settings, "GDPR_EXPORT_DAYS", 7))


def _sources() -> list[DataSource]:
    return list(DataSource.objects.filter(is_active=True).prefetch_related("tables"))


def gdpr_sources_check() -> dict[str, dict]:
    """Every active source reached and its configured tables and columns found: the columns
    per source and table, or a SourceError naming the first problem."""
    found = {}
    for source in _sources():
        with source_connection(source) as connection:
            found[source.name] = source_check(connection, source, list(source.tables.all()))
    return found


@transaction.atomic
def gdpr_job_start(
    *, dsr: DataSubjectRequest, user, kind: str, now: datetime | None = None
) -> GdprJob:
    """Queue an export or an erasure of a verified request (an erasure also needs no legal
    hold); refused, with the problem named and nothing recorded, when a source cannot be
    used."""
    require_perm(user, HANDLE, "You may not export or erase a subject's data.")
    dsr = DataSubjectRequest.objects.select_for_update().get(pk=dsr.pk)
    if kind not in JobKind.values:
        raise ActionRefused(f"Unknown job “{kind}”.")
    if dsr.is_closed:
        raise ActionRefused(f"{dsr.reference} is closed.", status=409)
    refuse_unless_verified(dsr, "exported" if kind == JobKind.EXPORT else "erased")
    if kind == JobKind.ERASURE:
        if dsr.legal_hold:
            raise ActionRefused(
                f"{dsr.reference}'s subject is under a legal hold ({dsr.legal_hold_reason}): "
                "nothing is erased until it is lifted.",
                status=409,
            )
        if dsr.kind != RequestKind.ERASURE:
            raise ActionRefused(
                f"{dsr.reference} is a {dsr.get_kind_display().lower()} request, not an erasure.",
                status=409,
            )
    if dsr.jobs.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists():
        raise ActionRefused("A job of this request is still running.", status=409)
    try:
        gdpr_sources_check()
    except SourceError as problem:
        raise ActionRefused(problem.message, status=409 if problem.transient else 400) from None
    sources = _sources()
    job = GdprJob.objects.create(
        request=dsr,
        kind=kind,
        steps_total=1 + sum(len(source.tables.all()) for source in sources),
        created_by=user,
        created_at=now or timezone.now(),
    )
    audit_record(actor=user, action=f"gdpr.{kind}.start", target=job, summary=dsr.reference)
    transaction.on_commit(lambda: _send(job.pk))
    return job


def gdpr_job_claim(*, job_id: int, now: datetime | None = None) -> str | None:
    """Take the job: a token, or None when it is finished or held by a live claim."""
    now = now or timezone.now()
    token = uuid.uuid4().hex
    claim = {"status": JobStatus.RUNNING, "claim": token, "claimed_at": now}
    free = Q(status=JobStatus.QUEUED) | Q(
        status=JobStatus.RUNNING, claimed_at__lt=now - STALE_CLAIM
    )
    if not GdprJob.objects.filter(free, pk=job_id).update(**claim):
        return None
    GdprJob.objects.filter(pk=job_id).update(attempts=F("attempts") + 1)
    return token


def _send(job_id: int) -> None:
    """Send the job to a worker; a broker that is down loses nothing: the periodic sweep
    (gdpr_jobs_resend) sends queued jobs again, and the claim makes a double delivery
    harmless."""
    try:
        app.send_task(RUN_TASK, args=(job_id,))
    except OperationalError:
        logger.warning("The broker did not take GDPR job %d; the sweep sends it later", job_id)


def gdpr_jobs_resend(*, now: datetime | None = None) -> list[int]:
    """Queued jobs nobody took for two minutes (a lost message, a retry) are sent again."""
    now = now or timezone.now()
    waiting = GdprJob.objects.filter(status=JobStatus.QUEUED).filter(
        Q(claimed_at__lt=now - timedelta(minutes=2))
        | Q(claimed_at__isnull=True, created_at__lt=now - timedelta(minutes=2))
    )
    ids = list(waiting.values_list("pk", flat=True))
    for job_id in ids:
        _send(job_id)
    return ids


def _step(job: GdprJob, token: str) -> None:
    GdprJob.objects.filter(pk=job.pk, claim=token).update(steps_done=F("steps_done") + 1)


def _settle(job: GdprJob, token: str, **fields) -> bool:
    return bool(GdprJob.objects.filter(pk=job.pk, claim=token).update(**fields))


class _Hashing(io.RawIOBase):
    """A writable that feeds a sha256 and counts the bytes before passing them on."""

    def __init__(self, target):
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _write_table(archive: zipfile.ZipFile, base: str, columns: list[str], rows) -> dict:
    """``base``.json and ``base``.csv, each with its sha256, from one pass over the rows (the
    CSV is written beside, in a temporary file, then added)."""
    files = {}
    count = 0
    with tempfile.TemporaryFile() as spare:
        csv_text = io.TextIOWrapper(spare, encoding="utf-8", newline="")
        writer = csv.writer(csv_text)
        writer.writerow(columns)
        with archive.open(f"{base}.json", "w") as raw:
            hashing = _Hashing(raw)
            hashing.write(b"[")
            for row in rows:
                record = dict(zip(columns, row, strict=True))
                text = json.dumps(record, default=_json_default, ensure_ascii=False)
                hashing.write((b",\n" if count else b"\n") + text.encode())
                writer.writerow(["" if value is None else _json_default(value) for value in row])
                count += 1
            hashing.write(b"\n]\n")
        files[f"{base}.json"] = {"sha256": hashing.digest.hexdigest(), "bytes": hashing.size}
        csv_text.flush()
        spare.seek(0)
        with archive.open(f"{base}.csv", "w") as raw:
            hashing = _Hashing(raw)
            while chunk := spare.read(1 << 16):
                hashing.write(chunk)
        files[f"{base}.csv"] = {"sha256": hashing.digest.hexdigest(), "bytes": hashing.size}
        csv_text.detach()
    return {"rows": count, "files": files}


def _portal_tables(dsr: DataSubjectRequest) -> list[tuple[str, list[str], list[tuple]]]:
    """The portal's own data about the subject: users with the e-mail (or a key as username),
    the audit entries naming them, incidents whose personal-data text names an identifier."""
    identifiers = dsr.identifiers
    users = get_user_model().objects.filter(
        Q(email__iexact=dsr.subject_email) | Q(username__in=identifiers)
    )
    user_columns = ["username", "first_name", "last_name", "email", "date_joined", "last_login"]
    user_rows = list(users.values_list(*user_columns))
    audit_columns = ["created_at", "action", "object_repr", "summary", "ip_address"]
    audit_rows = list(
        AuditEntry.objects.filter(actor__in=users).order_by("pk").values_list(*audit_columns)
    )
    named = Q()
    for identifier in identifiers:
        named |= Q(summary__icontains=identifier) | Q(customer_impact__icontains=identifier)
    incident_columns = ["title", "detected_at", "summary", "customer_impact"]
    incident_rows = list(Incident.objects.filter(named).values_list(*incident_columns))
    return [
        ("users", user_columns, user_rows),
        ("audit_entries", audit_columns, audit_rows),
        ("incidents", incident_columns, incident_rows),
        *((data.name, list(data.columns), data.rows(dsr)) for data in PORTAL_DATA),
    ]


def _export(job: GdprJob, token: str, now: datetime) -> None:
    dsr = job.request
    manifest = {
        "request": dsr.reference,
        "kind": dsr.kind,
        "created_at": now.isoformat(),
        "sources": {},
    }
    with tempfile.TemporaryFile() as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            portal = {"schema_version": "portal", "tables": {}}
            for name, columns, rows in _portal_tables(dsr):
                portal["tables"][name] = _write_table(
                    archive, f"{PORTAL_SOURCE}/{name}", columns, rows
                )
            manifest["sources"][PORTAL_SOURCE] = portal
            _step(job, token)
            for source in _sources():
                tables = list(source.tables.all())
                with source_connection(source) as connection:
                    columns_found = source_check(connection, source, tables)
                    entry = {"schema_version": schema_version(columns_found), "tables": {}}
                    for table in tables:
                        columns, rows = rows_of_subject(connection, table, dsr.identifiers)
                        entry["tables"][table.table] = _write_table(
                            archive, f"{source.name}/{table.table}", columns, rows
                        )
                        connection.rollback()
                        _step(job, token)
                manifest["sources"][source.name] = entry
            archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        size = spool.tell()
        spool.seek(0)
        digest = hashlib.sha256()
        while chunk := spool.read(1 << 16):
            digest.update(chunk)
        spool.seek(0)
        name = f"gdpr/{dsr.reference}-{job.pk}-{uuid.uuid4().hex[:8]}.zip"
        path = default_storage.save(name, File(spool, name=name))
    counts = {
        f"{source}/{table}": info["rows"]
        for source, entry in manifest["sources"].items()
        for table, info in entry["tables"].items()
    }
    if not _settle(
        job,
        token,
        status=JobStatus.DONE,
        finished_at=timezone.now(),
        file_path=path,
        file_size=size,
        file_sha256=digest.hexdigest(),
        expires_at=timezone.now() + export_expiry(),
        result={"counts": counts, "manifest": manifest},
        error="",
    ):
        default_storage.delete(path)  # another worker took the job over meanwhile
        return
    audit_record(
        actor=None,
        action="gdpr.export.done",
        target=job,
        summary=f"{dsr.reference}: {sum(counts.values())} rows in {len(counts)} tables",
        after={"counts": counts, "sha256": digest.hexdigest()},
    )


def _erase_portal(dsr: DataSubjectRequest) -> int:
    """The portal's users with the subject's e-mail lose their name and e-mail and are
    deactivated; audit entries keep the username they were written with (a legal record)."""
    users = get_user_model().objects.filter(email__iexact=dsr.subject_email)
    return users.update(first_name="", last_name="", email="", is_active=False)


def gdpr_erase_source(
    *, source: DataSource, dsr: DataSubjectRequest, job: GdprJob | None = None
) -> dict[str, int]:
    """Erase the subject from one source in one transaction and add the ledger entries in the
    portal's (committed after the source's, so a crash between them only repeats an erasure,
    which finds nothing the second time)."""
    tables = list(source.tables.all())
    counts = {}
    with source_connection(source) as connection:
        columns = source_check(connection, source, tables)
        with connection.transaction():
            for table in tables:
                counts[table.table] = erase_subject(
                    connection, table, dsr.identifiers, columns[table.table]
                )
        connection.commit()
    with transaction.atomic():
        for table in tables:
            ErasureLedgerEntry.objects.create(
                request=dsr,
                job=job,
                source_name=source.name,
                table=table.table,
                action=table.erasure_action,
                rows=counts[table.table],
            )
    return counts


def gdpr_scan(*, dsr: DataSubjectRequest) -> dict[str, dict[str, int]]:
    """Hits per "source/table" and column of the subject's identifiers left anywhere in a
    configured column; empty when none is left."""
    hits = {}
    users = get_user_model().objects.filter(email__iexact=dsr.subject_email).count()
    if users:
        hits[f"{PORTAL_SOURCE}/users"] = {"email": users}
    for data in PORTAL_DATA:
        left = data.count(dsr)
        if left:
            hits[f"{PORTAL_SOURCE}/{data.name}"] = {"email": left}
    for source in _sources():
        with source_connection(source) as connection:
            for table in source.tables.all():
                found = scan_subject(connection, table, dsr.identifiers)
                if found:
                    hits[f"{source.name}/{table.table}"] = found
    return hits


def _erase(job: GdprJob, token: str, now: datetime) -> None:
    dsr = job.request
    counts = dict(job.result.get("counts", {}))
    with transaction.atomic():
        counts[f"{PORTAL_SOURCE}/users"] = _erase_portal(dsr)
        for data in PORTAL_DATA:
            counts[f"{PORTAL_SOURCE}/{data.name}"] = data.erase(dsr)
    _step(job, token)
    done_sources = set(job.result.get("sources_done", []))
    for source in _sources():
        if source.name in done_sources:
            continue
        for table, rows in gdpr_erase_source(source=source, dsr=dsr, job=job).items():
            counts[f"{source.name}/{table}"] = rows
            _step(job, token)
        done_sources.add(source.name)
        _settle(job, token, result={"counts": counts, "sources_done": sorted(done_sources)})
    hits = gdpr_scan(dsr=dsr)
    finished = timezone.now()
    with transaction.atomic():
        if not _settle(
            job,
            token,
            status=JobStatus.DONE,
            finished_at=finished,
            result={"counts": counts, "sources_done": sorted(done_sources), "hits": hits},
            error="",
        ):
            return
        if not hits:
            DataSubjectRequest.objects.filter(pk=dsr.pk).update(erasure_verified_at=finished)
        audit_record(
            actor=None,
            action="gdpr.erasure.done",
            target=job,
            summary=f"{dsr.reference}: {sum(counts.values())} rows; "
            + ("verified, no identifier left" if not hits else f"{len(hits)} tables still hold it"),
            after={"counts": counts, "hits": hits},
        )


def gdpr_job_run(*, job_id: int, now: datetime | None = None) -> str:
    """Run a claimed job: "done", "failed", "retry" (a source did not answer: queued again)
    or "skipped" (not ours to run)."""
    now = now or timezone.now()
    token = gdpr_job_claim(job_id=job_id, now=now)
    if token is None:
        return "skipped"
    job = GdprJob.objects.select_related("request").get(pk=job_id)
    try:
        if job.kind == JobKind.EXPORT:
            _export(job, token, now)
        else:
            _erase(job, token, now)
    except psycopg.OperationalError as problem:
        # The server went away mid-job (a restart, the network): as transient as a failed
        # connection, so the job is retried.
        text = mask_text(str(problem).strip())[:300]
        return _failed_or_retry(
            job, token, SourceError(f"A source stopped answering: {text}", transient=True)
        )
    except psycopg.Error as problem:
        text = mask_text(str(problem).strip())[:300]
        return _failed_or_retry(job, token, SourceError(f"A source refused a query: {text}"))
    except SourceError as problem:
        return _failed_or_retry(job, token, problem)
    return "done"


def _failed_or_retry(job: GdprJob, token: str, problem: SourceError) -> str:
    if problem.transient and job.attempts < MAX_ATTEMPTS:
        _settle(job, token, status=JobStatus.QUEUED, claim="", error=problem.message)
        return "retry"
    _settle(job, token, status=JobStatus.FAILED, finished_at=timezone.now(), error=problem.message)
    audit_record(actor=None, action=f"gdpr.{job.kind}.fail", target=job, summary=problem.message)
    return "failed"


def gdpr_exports_expire(*, now: datetime | None = None) -> list[int]:
    """Delete the ZIPs whose download time has passed."""
    now = now or timezone.now()
    expired = []
    for job in GdprJob.objects.filter(
        kind=JobKind.EXPORT, expires_at__lte=now, file_deleted_at__isnull=True
    ).exclude(file_path=""):
        default_storage.delete(job.file_path)
        if GdprJob.objects.filter(pk=job.pk, file_deleted_at__isnull=True).update(
            file_deleted_at=now
        ):
            audit_record(actor=None, action="gdpr.export.expire", target=job)
            expired.append(job.pk)
    return expired


def gdpr_export_open(*, job: GdprJob, user, now: datetime | None = None):
    """The export's file for its assignee while it has not expired (audited)."""
    now = now or timezone.now()
    dsr = job.request
    require_perm(user, "ops.view_subject_data", "Only the DPO and admins see exported data.")
    if dsr.assignee_id != user.pk:
        raise ActionRefused(
            f"Only the assignee of {dsr.reference} may download its export.", status=403
        )
    if not job.is_downloadable(now):
        raise ActionRefused("This export has expired and was deleted.", status=410)
    handle = default_storage.open(job.file_path, "rb")
    audit_record(actor=user, action="gdpr.export.download", target=job, summary=dsr.reference)
    return handle


def gdpr_ledger_replay(*, source: DataSource | None = None) -> dict[str, int]:
    """After a restore: erase again, per ledger entry's request, everyone the ledger says was
    erased, in the given source or all. Returns rows removed per "source/table"."""
    removed: dict[str, int] = {}
    sources = [source] if source else _sources()
    for current in sources:
        requests = (
            DataSubjectRequest.objects.filter(ledger_entries__source_name=current.name)
            .distinct()
            .order_by("pk")
        )
        for dsr in requests:
            for table, rows in gdpr_erase_source(source=current, dsr=dsr).items():
                key = f"{current.name}/{table}"
                removed[key] = removed.get(key, 0) + rows
    audit_record(
        actor=None,
        action="gdpr.ledger.replay",
        summary=f"{sum(removed.values())} rows erased again",
        after=removed,
    )
    return removed


def gdpr_ledger_replay_restored(
    *, source: DataSource, connection: psycopg.Connection
) -> tuple[int, dict[str, int], int]:
    """Replay ``source``'s erasure ledger on a restored copy of it (a backup verification's
    scratch database, reached by ``connection``): every request the ledger names is erased
    again, in one transaction, and nothing is added to the ledger (the copy is thrown away).
    Returns (requests replayed, rows erased again per table, identifiers still found after)."""
    tables = list(source.tables.all())
    columns = source_check(connection, source, tables)
    requests = list(
        DataSubjectRequest.objects.filter(ledger_entries__source_name=source.name)
        .distinct()
        .order_by("pk")
    )
    removed = {table.table: 0 for table in tables}
    with connection.transaction():
        for dsr in requests:
            for table in tables:
                removed[table.table] += erase_subject(
                    connection, table, dsr.identifiers, columns[table.table]
                )
    connection.commit()
    left = sum(
        sum(scan_subject(connection, table, dsr.identifiers).values())
        for dsr in requests
        for table in tables
    )
    return len(requests), removed, left
