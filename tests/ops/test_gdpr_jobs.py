"""Export and erasure against a real PostgreSQL source: a second database on the suite's
server, seeded here with a subject in several tables (one row with the e-mail in other case),
and a bystander who must stay untouched."""

import hashlib
import io
import json
import zipfile
from datetime import timedelta

import psycopg
import pytest
from celery.contrib.testing.worker import start_worker
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.urls import reverse

from ops.models import DataSource, DataSourceTable, ErasureLedgerEntry, GdprJob
from ops.services import gdpr as services
from ops.services.gdpr_jobs import (
    gdpr_exports_expire,
    gdpr_job_run,
    gdpr_job_start,
    gdpr_ledger_replay,
    gdpr_scan,
)
from portal import roles
from portal.celery import app
from portal.errors import ActionRefused
from tests.conftest import client_for
from tests.fakes import closed_port
from tests.ops.gdpr_source import (
    OTHER,
    SAME_CASE_DIFFERENT,
    SUBJECT,
    copy_database,
    drop_database,
    rows,
    seeded_source,
    server_url,
    source_name,
)

pytestmark = pytest.mark.postgres
ENV = "H13_TEST_SOURCE_URL"


def wait_for(condition, seconds: float = 60):
    """Poll a condition until it holds or the deadline passes (no blind sleeps)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met before the deadline")


@pytest.fixture
def source_url(monkeypatch):
    with seeded_source() as url:
        monkeypatch.setenv(ENV, url)
        yield url


@pytest.fixture
def source(db, source_url):
    crm = DataSource.objects.create(name="crm", connection_env=ENV)
    DataSourceTable.objects.create(
        source=crm,
        table="customers",
        subject_column="email",
        personal_columns=["name", "phone", "customer_no"],
        erasure_action="anonymize",
        anonymize_columns=["email", "name", "phone", "customer_no"],
    )
    DataSourceTable.objects.create(
        source=crm, table="orders", subject_column="customer_email", personal_columns=["address"]
    )
    DataSourceTable.objects.create(source=crm, table="newsletter", subject_column="email")
    return crm


@pytest.fixture
def dpo(make_user):
    return make_user("dora", roles.DPO, email="dora@example.com")


def verified(dpo, kind="access", **extra):
    dsr = services.gdpr_request_receive(
        user=dpo, kind=kind, subject_email=SUBJECT, assignee=dpo, **extra
    )
    services.gdpr_identity_verify(dsr=dsr, user=dpo, method="account e-mail", evidence="ok")
    return dsr


def test_bad_sources_are_refused_naming_the_problem(source, dpo, monkeypatch):
    dsr = verified(dpo)
    table = source.tables.get(table="orders")
    table.personal_columns = ["address", "iban"]
    table.save()
    with pytest.raises(ActionRefused, match="column “iban” does not exist in table “orders”"):
        gdpr_job_start(dsr=dsr, user=dpo, kind="export")
    table.personal_columns = ["address"]
    table.table = "order"
    table.save()
    with pytest.raises(ActionRefused, match="table “order” does not exist"):
        gdpr_job_start(dsr=dsr, user=dpo, kind="export")
    table.table = "orders"
    table.save()
    with closed_port() as port:
        monkeypatch.setenv(ENV, f"postgresql://postgres:s3cret-pw@127.0.0.1:{port}/x")
        with pytest.raises(ActionRefused, match="the connection failed") as refused:
            gdpr_job_start(dsr=dsr, user=dpo, kind="export")
    assert "s3cret-pw" not in refused.value.message
    monkeypatch.delenv(ENV)
    with pytest.raises(ActionRefused, match=f"environment variable {ENV} is not set"):
        gdpr_job_start(dsr=dsr, user=dpo, kind="export")
    assert not GdprJob.objects.exists()


def test_a_source_down_during_the_job_leaves_it_queued_for_a_retry(source, dpo, monkeypatch):
    dsr = verified(dpo)
    job = gdpr_job_start(dsr=dsr, user=dpo, kind="export")
    good = server_url(source_name())
    with closed_port() as port:
        monkeypatch.setenv(ENV, f"postgresql://postgres@127.0.0.1:{port}/x")
        assert gdpr_job_run(job_id=job.pk) == "retry"
    job.refresh_from_db()
    assert job.status == "queued" and "connection failed" in job.error
    monkeypatch.setenv(ENV, good)
    assert gdpr_job_run(job_id=job.pk) == "done"
    assert gdpr_job_run(job_id=job.pk) == "skipped"  # a second delivery does nothing
    job.refresh_from_db()
    assert job.status == "done" and job.result["counts"]["crm/orders"] == 2


@pytest.mark.django_db(transaction=True)
def test_export_by_a_worker_zip_with_manifest_download_and_expiry(source, dpo, make_user):
    dsr = verified(dpo, subject_keys="cust-4711")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        job = gdpr_job_start(dsr=dsr, user=dpo, kind="export")
        wait_for(lambda: GdprJob.objects.get(pk=job.pk).is_finished)
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert job.steps_done == job.steps_total == 4
    assert job.result["counts"] == {
        "portal/users": 0,
        "portal/audit_entries": 0,
        "portal/incidents": 0,
        "portal/status_subscribers": 0,
        "crm/customers": 1,
        "crm/orders": 2,
        "crm/newsletter": 1,
    }
    data = default_storage.open(job.file_path).read()
    assert hashlib.sha256(data).hexdigest() == job.file_sha256
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    for name, info in manifest["sources"]["crm"]["tables"]["orders"]["files"].items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == info["sha256"]
    assert manifest["sources"]["crm"]["schema_version"]
    orders = json.loads(archive.read("crm/orders.json"))
    assert sorted(row["customer_email"] for row in orders) == sorted([SUBJECT, SAME_CASE_DIFFERENT])
    assert OTHER not in data.decode("latin-1")
    assert "Hauptstr. 1" in archive.read("crm/orders.csv").decode()

    url = reverse("ops:gdpr_export_download", args=[job.pk])
    response = client_for(dpo).get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    other_dpo = make_user("dave", roles.DPO)
    assert client_for(other_dpo).get(url).status_code == 403

    later = job.expires_at + timedelta(seconds=1)
    assert job.expires_at - job.finished_at == pytest.approx(
        timedelta(days=7), abs=timedelta(minutes=1)
    )
    assert gdpr_exports_expire(now=later) == [job.pk]
    assert not default_storage.exists(job.file_path)
    response = client_for(dpo).get(url)
    assert response.status_code == 410 and "expired" in response.content.decode()


def test_review_and_delivery_follow_the_export(source, dpo):
    dsr = verified(dpo)
    with pytest.raises(ActionRefused, match="no finished export"):
        services.gdpr_request_review(dsr=dsr, user=dpo)
    with pytest.raises(ActionRefused, match="not reviewed"):
        services.gdpr_request_deliver(dsr=dsr, user=dpo)
    job = gdpr_job_start(dsr=dsr, user=dpo, kind="export")
    gdpr_job_run(job_id=job.pk)
    with pytest.raises(ActionRefused, match="not been delivered"):
        services.gdpr_request_complete(dsr=dsr, user=dpo)
    services.gdpr_request_review(dsr=dsr, user=dpo)
    services.gdpr_request_deliver(dsr=dsr, user=dpo, note="sent by secure link")
    services.gdpr_request_complete(dsr=dsr, user=dpo)
    dsr.refresh_from_db()
    assert dsr.status == "completed"


def test_erasure_ledger_verification_and_replay_on_a_restored_copy(
    source, source_url, dpo, monkeypatch
):
    dsr = verified(dpo, kind="erasure", subject_keys="cust-4711")
    restored = f"{source_name()}_restored"
    copy_database(source_name(), restored)  # the backup, taken before the erasure
    try:
        with pytest.raises(ActionRefused, match="not an erasure"):
            gdpr_job_start(dsr=verified(dpo, kind="access"), user=dpo, kind="erasure")
        job = gdpr_job_start(dsr=dsr, user=dpo, kind="erasure")
        assert gdpr_job_run(job_id=job.pk) == "done"
        job.refresh_from_db()
        assert job.result["hits"] == {}
        assert job.result["counts"] == {
            "portal/users": 0,
            "portal/status_subscribers": 0,
            "crm/customers": 1,
            "crm/orders": 2,
            "crm/newsletter": 1,
        }
        ledger = {
            (e.table, e.action, e.rows) for e in ErasureLedgerEntry.objects.filter(request=dsr)
        }
        assert ledger == {
            ("customers", "anonymize", 1),
            ("orders", "delete", 2),
            ("newsletter", "delete", 1),
        }
        assert rows(source_url, "SELECT email FROM customers WHERE name = 'Bob Other'") == [
            (OTHER,)
        ]
        assert rows(source_url, "SELECT count(*) FROM orders") == [(1,)]
        left = rows(source_url, "SELECT email, phone, customer_no FROM customers WHERE id = 1")
        assert len(left) == 1 and left[0][0].startswith("erased-") and left[0][1:] == (None, None)
        dsr.refresh_from_db()
        assert dsr.erasure_verified_at is not None
        assert gdpr_scan(dsr=dsr) == {}

        # Restore: the backup brings the subject back; the ledger's replay removes them again.
        restored_url = server_url(restored)
        monkeypatch.setenv(ENV, restored_url)
        assert gdpr_scan(dsr=dsr) != {}
        removed = gdpr_ledger_replay()
        assert removed == {"crm/customers": 1, "crm/orders": 2, "crm/newsletter": 1}
        assert gdpr_scan(dsr=dsr) == {}
        assert rows(restored_url, "SELECT count(*) FROM orders") == [(1,)]
    finally:
        drop_database(restored)


def test_erasure_that_leaves_identifiers_keeps_the_request_open(source, source_url, dpo):
    """Anonymizing the name but not the e-mail: the scan lists the hits."""
    table = source.tables.get(table="customers")
    table.anonymize_columns = ["name", "phone"]
    table.save()
    dsr = verified(dpo, kind="erasure")
    job = gdpr_job_start(dsr=dsr, user=dpo, kind="erasure")
    gdpr_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.result["hits"] == {"crm/customers": {"email": 1}}
    dsr.refresh_from_db()
    assert dsr.erasure_verified_at is None
    with pytest.raises(ActionRefused, match="erasure is not verified"):
        services.gdpr_request_complete(dsr=dsr, user=dpo)
    page = client_for(dpo).get(dsr.get_absolute_url()).content.decode()
    assert "still in" in page and "crm/customers" in page


def test_replay_command_names_an_unknown_source(source):
    with pytest.raises(CommandError, match=r"No source named “nope” \(configured: crm\)"):
        call_command("gdpr_ledger_replay", "--source", "nope")


def test_a_table_gone_before_the_job_runs_fails_it_with_the_reason(source, source_url, dpo):
    dsr = verified(dpo)
    job = gdpr_job_start(dsr=dsr, user=dpo, kind="export")
    with psycopg.connect(source_url) as connection:
        connection.execute("DROP TABLE newsletter")
    assert gdpr_job_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and "table “newsletter” does not exist" in job.error
    assert not job.file_path
