"""A second database on the suite's PostgreSQL server, seeded with personal data: the
external source of the GDPR tests (and the benchmark). Created per test process
(h13_source_<xdist worker>), dropped afterwards."""

import os
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

SUBJECT = "Anna.Subject@example.org"
SAME_CASE_DIFFERENT = "ANNA.SUBJECT@EXAMPLE.ORG"
OTHER = "bob@example.org"
SCHEMA = """
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
                        phone text, customer_no text);
CREATE TABLE orders (id serial PRIMARY KEY, customer_email text NOT NULL, address text,
                     total numeric NOT NULL);
CREATE TABLE newsletter (id serial PRIMARY KEY, email text NOT NULL, signed_up date);
"""
SEED = [
    (
        "INSERT INTO customers (email, name, phone, customer_no) VALUES (%s, %s, %s, %s)",
        [
            (SUBJECT, "Anna Subject", "+49 30 1234", "cust-4711"),
            (OTHER, "Bob Other", "+49 30 9999", "cust-0002"),
        ],
    ),
    (
        "INSERT INTO orders (customer_email, address, total) VALUES (%s, %s, %s)",
        [
            (SUBJECT, "Hauptstr. 1", 10),
            (SAME_CASE_DIFFERENT, "Hauptstr. 1", 20),
            (OTHER, "Nebenweg 2", 30),
        ],
    ),
    (
        "INSERT INTO newsletter (email, signed_up) VALUES (%s, %s)",
        [(SAME_CASE_DIFFERENT, "2025-05-01"), (OTHER, "2025-06-01")],
    ),
]


def server_url(database: str) -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return parts._replace(path=f"/{database}").geturl()


def source_name() -> str:
    return f"h13_source_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def _admin():
    return psycopg.connect(server_url("postgres"), autocommit=True)


def drop_database(name: str) -> None:
    with _admin() as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def copy_database(source: str, target: str) -> None:
    """A restored copy (CREATE DATABASE … TEMPLATE): what a backup taken now gives back."""
    drop_database(target)
    with _admin() as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(target), sql.Identifier(source)
            )
        )


@contextmanager
def seeded_source(name: str | None = None, *, seed: bool = True):
    """Yields the source database's URL."""
    name = name or source_name()
    drop_database(name)
    with _admin() as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = server_url(name)
    try:
        if seed:
            with psycopg.connect(url) as connection:
                connection.execute(SCHEMA)
                with connection.cursor() as cursor:
                    for statement, rows in SEED:
                        cursor.executemany(statement, rows)
        yield url
    finally:
        drop_database(name)


def rows(url: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(query, params).fetchall()
