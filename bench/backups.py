"""Backup and verified restore of a large database (1 GB by default) through the portal's jobs,
against a plain `pg_dump -Fc | pg_restore` of the same database measured in the same run, with
the peak memory of the worker process.

    python bench/backups.py [--size-mb 1024] [--server postgres://postgres@127.0.0.1:5432]
                            [--prefix bench_] [--quick]

The source database ({prefix}backup_source) is built once and kept for later runs (rebuilt when
it is smaller than asked); scratch databases are created and dropped. The jobs run in a child
process (a worker as Celery would run it) whose peak resident set is reported."""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
ROW_BYTES = 300


def server_url(server: str, database: str) -> str:
    return f"{server.rstrip('/')}/{database}"


def database_size(url: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def build_source(server: str, name: str, size_mb: int) -> str:
    url = server_url(server, name)
    with psycopg.connect(server_url(server, "postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and database_size(url) >= size_mb * 1024 * 1024 * 0.95:
            return url
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"Building {name} ({size_mb} MB) …", flush=True)
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as source:
        source.execute("CREATE TABLE customers (id serial primary key, name text, email text)")
        source.execute(
            "INSERT INTO customers (name, email) SELECT 'person ' || g, g || '@example.org' "
            "FROM generate_series(1, 100000) g"
        )
        source.execute(
            "CREATE TABLE events (id bigserial primary key, customer int, at timestamptz, "
            "payload text)"
        )
        batch = 200_000
        # md5 text is only 2:1 compressible: the dump is not trivially small.
        payload = " || ".join(f"md5((g * {k})::text)" for k in (1, 3, 7, 11, 13, 17, 19, 23))
        while database_size(url) < size_mb * 1024 * 1024:
            source.execute(
                f"INSERT INTO events (customer, at, payload) SELECT g % 100000 + 1, "  # noqa: S608
                f"now() - g * interval '1 second', {payload} "
                f"FROM generate_series(1, {batch}) g"
            )
        source.execute("VACUUM ANALYZE")
    print(f"  built in {time.monotonic() - started:.0f} s", flush=True)
    return url


def reference(server: str, source_url: str, prefix: str) -> float:
    """Plain pg_dump -Fc | pg_restore into a new database: the floor the jobs are held to."""
    scratch = f"{prefix}backup_reference"
    with psycopg.connect(server_url(server, "postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    started = time.monotonic()
    dump = subprocess.Popen(["pg_dump", "-Fc", f"--dbname={source_url}"], stdout=subprocess.PIPE)
    subprocess.run(
        ["pg_restore", "--no-owner", f"--dbname={server_url(server, scratch)}"],
        stdin=dump.stdout,
        check=True,
    )
    dump.wait()
    seconds = time.monotonic() - started
    with psycopg.connect(server_url(server, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))
    return seconds


def child(source_url: str, prefix: str) -> None:
    """In a process of its own: the portal's backup job, then its verification."""
    sys.path.insert(0, str(ROOT))
    os.environ["BENCH_SOURCE_URL"] = source_url
    from django.conf import settings

    # Imported here: Django is set up by bench.harness, in this child process only.
    from bench.harness import throwaway_database
    from ops.models import BackupTarget
    from ops.services.backups import backup_run, backup_start, backup_verify, backup_verify_start

    settings.BACKUP_SCRATCH_PREFIX = f"{prefix}verify_"
    with throwaway_database(), tempfile.TemporaryDirectory() as folder:
        settings.STORAGES = {
            **settings.STORAGES,
            "backups": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": folder},
            },
        }
        baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        target = BackupTarget.objects.create(
            name="Bench", slug="bench", url_variable="BENCH_SOURCE_URL"
        )
        started = time.monotonic()
        backup = backup_run(backup_id=backup_start(target=target).pk)
        backup_seconds = time.monotonic() - started
        assert backup.status == "succeeded", backup.error
        started = time.monotonic()
        verification = backup_verify(verification_id=backup_verify_start(backup=backup).pk)
        verify_seconds = time.monotonic() - started
        assert verification.status == "succeeded", verification.error
        result = {
            "backup_seconds": backup_seconds,
            "verify_seconds": verify_seconds,
            "restore_seconds": verification.restore_seconds,
            "dump_bytes": backup.size_bytes,
            "worker_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "baseline_kb": baseline_kb,
        }
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="64 MB instead")
    default_server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x")
    parser.add_argument("--server", default=default_server.rsplit("/", 1)[0])
    parser.add_argument("--prefix", default="bench_")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.prefix)
        return
    size_mb = 64 if args.quick else args.size_mb
    source_url = build_source(args.server, f"{args.prefix}backup_source", size_mb)
    size = database_size(source_url)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["PORTAL_VAR_DIR"] = str(ROOT / "var" / "bench" / "backups")
    output = subprocess.run(
        [sys.executable, __file__, "--child", source_url, "--prefix", args.prefix],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(output.split("RESULT ", 1)[1])
    reference_seconds = reference(args.server, source_url, args.prefix)
    mb = size / 1024 / 1024
    jobs = result["backup_seconds"] + result["restore_seconds"]
    print(f"Database: {mb:.0f} MB on disk; dump {result['dump_bytes'] / 1024 / 1024:.0f} MB")
    print(f"{'':34}{'seconds':>10}{'MB/s':>10}")
    rows = [
        ("backup job (dump+sha256+counts)", result["backup_seconds"]),
        ("verify job (restore+compare)", result["verify_seconds"]),
        ("  of which restore", result["restore_seconds"]),
        ("backup + restore", jobs),
        ("reference pg_dump | pg_restore", reference_seconds),
    ]
    for name, seconds in rows:
        print(f"{name:34}{seconds:10.1f}{mb / seconds:10.1f}")
    print(f"jobs / reference: {jobs / reference_seconds:.2f}x")
    # The child's own peak: pg_dump and pg_restore are other processes (their rusage would
    # count the pre-exec copy of this one, so it is not shown).
    print(
        f"Worker peak RSS: {result['worker_peak_kb'] / 1024:.0f} MB "
        f"({result['baseline_kb'] / 1024:.0f} MB before the jobs; the dump is "
        f"{result['dump_bytes'] / 1024 / 1024:.0f} MB)"
    )


if __name__ == "__main__":
    main()
