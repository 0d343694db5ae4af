"""Export and erasure of one data subject across a PostgreSQL source of 1 million rows, with
and without an index on the subject column: time and peak memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/NAME python bench/gdpr.py [--rows N]

Needs PostgreSQL (the source is a second database on the same server, created and dropped
here, as the tests do). Builds a throw-away portal database, a source with a ``customers``
table of N rows (default 1,000,000; the subject in 3 of them, one with the e-mail in upper
case) and an ``orders`` table of N/2 rows (the subject in 2; in a third run in N/5, a company
account, to show that memory stays flat as the export streams); then, without and with an index on
``lower(email)``: the export job (ZIP to storage), the erasure of the source (one
transaction) and the verification scan (every configured column, a full pass by design).
Peak memory is this process's resident high-water mark (VmHWM), reset before each step.
"""

import argparse
import os
import time
from urllib.parse import urlsplit

import psycopg
from harness import throwaway_database, user_in
from psycopg import sql

from ops.models import DataSource, DataSourceTable, DataSubjectRequest, GdprJob
from ops.services.gdpr import gdpr_identity_verify, gdpr_request_receive
from ops.services.gdpr_jobs import gdpr_erase_source, gdpr_job_run, gdpr_scan

SUBJECT = "anna.subject@example.org"
ENV = "BENCH_GDPR_SOURCE_URL"


def _url(database: str) -> str:
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{database}").geturl()


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(_url("postgres"), autocommit=True) as connection:
        connection.execute(statement)


def seed(url: str, rows: int, subject_orders: int = 2) -> None:
    with psycopg.connect(url) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS customers (id bigserial PRIMARY KEY, email text NOT NULL,"
            " name text, phone text);"
            "CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, customer_email text"
            " NOT NULL, address text, total numeric);"
            "TRUNCATE customers, orders;"
        )
        connection.execute(
            "INSERT INTO customers (email, name, phone) SELECT 'user' || i || '@example.org',"
            " 'Name ' || i, '+49 ' || i FROM generate_series(1, %s) AS i",
            [rows - 3],
        )
        connection.execute(
            "INSERT INTO customers (email, name, phone) VALUES (%s, 'Anna', '1'),"
            " (upper(%s), 'Anna', '2'), (%s, 'Anna', '3')",
            [SUBJECT, SUBJECT, SUBJECT],
        )
        connection.execute(
            "INSERT INTO orders (customer_email, address, total) SELECT"
            " 'user' || i || '@example.org', 'Street ' || i, i FROM generate_series(1, %s) AS i",
            [rows // 2 - 2],
        )
        connection.execute(
            "INSERT INTO orders (customer_email, address, total) SELECT"
            " CASE WHEN i %% 2 = 0 THEN %s ELSE upper(%s) END, 'Home ' || i, i"
            " FROM generate_series(1, %s) AS i",
            [SUBJECT, SUBJECT, subject_orders],
        )
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(label: str, call):
    _reset_peak()
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    peak = _status_mb("VmHWM")
    print(f"  {label:<28} {seconds:8.2f} s   peak RSS {peak:7.1f} MB (+{peak - before:.1f} MB)")
    return result


def run(url: str, rows: int, indexed: bool, user, subject_orders: int = 2) -> None:
    print(
        f"{'with' if indexed else 'without'} an index on lower(email), {rows:,} customers, "
        f"the subject in {subject_orders + 3:,} rows:"
    )
    dsr = gdpr_request_receive(user=user, kind="erasure", subject_email=SUBJECT, assignee=user)
    gdpr_identity_verify(dsr=dsr, user=user, method="bench", evidence="bench")
    job = GdprJob.objects.create(request=dsr, kind="export", steps_total=3)
    outcome = measure("export (ZIP to storage)", lambda: gdpr_job_run(job_id=job.pk))
    job.refresh_from_db()
    assert outcome == "done", job.error
    counts = {name: rows for name, rows in job.result["counts"].items() if rows}
    print(f"  {'':<28} rows {counts}, ZIP {job.file_size:,} bytes")
    source = DataSource.objects.get()
    counts = measure("erasure (one transaction)", lambda: gdpr_erase_source(source=source, dsr=dsr))
    hits = measure(
        "verification scan", lambda: gdpr_scan(dsr=DataSubjectRequest.objects.get(pk=dsr.pk))
    )
    print(f"  {'':<28} erased {counts}, hits left {hits or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        print("bench/gdpr.py skipped: set DATABASE_URL to a PostgreSQL server (the source).")
        return
    name = f"{urlsplit(os.environ['DATABASE_URL']).path.lstrip('/')}_gdpr_bench_source"
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _url(name)
    os.environ[ENV] = url
    try:
        with throwaway_database():
            user = user_in("bench-dpo", "DPO")
            source = DataSource.objects.create(name="crm", connection_env=ENV)
            DataSourceTable.objects.create(
                source=source,
                table="customers",
                subject_column="email",
                personal_columns=["name", "phone"],
            )
            DataSourceTable.objects.create(
                source=source,
                table="orders",
                subject_column="customer_email",
                personal_columns=["address"],
            )
            started = time.perf_counter()
            seed(url, args.rows)
            print(f"seeded in {time.perf_counter() - started:.1f} s")
            run(url, args.rows, False, user)
            seed(url, args.rows)
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("CREATE INDEX ON customers (lower(email))")
                connection.execute("CREATE INDEX ON orders (lower(customer_email))")
            run(url, args.rows, True, user)
            # A subject with many rows (a company account): memory stays flat while streaming.
            heavy = args.rows // 5
            seed(url, args.rows, subject_orders=heavy)
            run(url, args.rows, True, user, subject_orders=heavy)
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
