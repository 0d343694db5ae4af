"""Reading, erasing and scanning a subject's rows in the external PostgreSQL sources.

A source is reached by the connection URL in the environment variable it names (read when a
job runs, never stored). Identifiers match case-insensitively (``lower(column::text)``): an
index on ``lower(column)`` serves the lookups. Table and column names are quoted with
psycopg's ``sql.Identifier``; nothing a user typed is put in SQL text."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from ops.models.gdpr import DataSource, DataSourceTable, ErasureAction
from portal.secrets import UnresolvedSecret, resolve_env, scrub

CONNECT_TIMEOUT = 10
FETCH_ROWS = 2000
TEXT_TYPES = {"text", "character varying", "character", "citext"}


class SourceError(Exception):
    """A source that cannot be used as configured; ``transient`` when trying again later may
    work (the server did not answer)."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.transient = transient


def _url(source: DataSource) -> str:
    try:
        return resolve_env(f"env:{source.connection_env}")
    except UnresolvedSecret as problem:
        raise SourceError(f"Source “{source.name}”: {problem}.") from None


@contextmanager
def source_connection(source: DataSource) -> Iterator[psycopg.Connection]:
    url = _url(source)
    try:
        connection = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=False)
    except psycopg.OperationalError as problem:
        detail = scrub(str(problem).strip().splitlines()[0] if str(problem).strip() else "", [url])
        raise SourceError(
            f"Source “{source.name}”: the connection failed ({detail}).", transient=True
        ) from None
    try:
        yield connection
    finally:
        connection.close()


def _table_name(table: str) -> sql.Composable:
    schema, _, name = table.rpartition(".")
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _split(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return schema or "public", name


def table_columns(connection: psycopg.Connection, table: str) -> dict[str, dict]:
    schema, name = _split(table)
    rows = connection.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return {
        column: {"type": kind, "nullable": nullable == "YES"} for column, kind, nullable in rows
    }


def source_check(
    connection: psycopg.Connection, source: DataSource, tables: list[DataSourceTable]
) -> dict[str, dict[str, dict]]:
    """The columns of every configured table; a SourceError naming the first table or column
    that does not exist."""
    found = {}
    for table in tables:
        columns = table_columns(connection, table.table)
        if not columns:
            raise SourceError(f"Source “{source.name}”: table “{table.table}” does not exist.")
        needed = [*table.scanned_columns]
        if table.erasure_action == ErasureAction.ANONYMIZE:
            needed += table.anonymize_columns
        for column in needed:
            if column not in columns:
                raise SourceError(
                    f"Source “{source.name}”: column “{column}” does not exist in table "
                    f"“{table.table}”."
                )
        found[table.table] = columns
    connection.rollback()
    return found


def schema_version(columns: dict[str, dict[str, dict]]) -> str:
    """A fingerprint of the configured tables' columns and types: it changes when the schema
    the export was read from changes."""
    text = repr(sorted((table, sorted(cols.items())) for table, cols in columns.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _match(column: str) -> sql.Composable:
    return sql.SQL("lower({}::text) = ANY(%s)").format(sql.Identifier(column))


def rows_of_subject(
    connection: psycopg.Connection, table: DataSourceTable, identifiers: list[str]
) -> tuple[list[str], Iterator[tuple]]:
    """The subject's rows of a table (its personal columns), read in batches by a server-side
    cursor so memory stays flat whatever the table's size."""
    columns = table.scanned_columns
    query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        _table_name(table.table),
        _match(table.subject_column),
    )
    lowered = [identifier.lower() for identifier in identifiers]

    def read() -> Iterator[tuple]:
        with connection.cursor(name=f"gdpr_export_{table.pk}") as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(query, [lowered])
            yield from cursor

    return columns, read()


def erase_subject(
    connection: psycopg.Connection,
    table: DataSourceTable,
    identifiers: list[str],
    columns: dict[str, dict],
) -> int:
    """Delete the subject's rows, or anonymize the listed columns: NULL where the column allows
    it, else a random placeholder (text) so unique constraints still hold. Returns the rows."""
    lowered = [identifier.lower() for identifier in identifiers]
    where = _match(table.subject_column)
    if table.erasure_action == ErasureAction.DELETE:
        query = sql.SQL("DELETE FROM {} WHERE {}").format(_table_name(table.table), where)
    else:
        assignments = []
        for column in table.anonymize_columns:
            info = columns[column]
            if info["nullable"]:
                value = sql.SQL("NULL")
            elif info["type"] in TEXT_TYPES:
                value = sql.SQL("'erased-' || md5(random()::text || clock_timestamp()::text)")
            else:
                raise SourceError(
                    f"Column “{column}” of “{table.table}” is NOT NULL and not text: it cannot "
                    "be anonymized; delete the rows instead."
                )
            assignments.append(sql.SQL("{} = {}").format(sql.Identifier(column), value))
        query = sql.SQL("UPDATE {} SET {} WHERE {}").format(
            _table_name(table.table), sql.SQL(", ").join(assignments), where
        )
    return connection.execute(query, [lowered]).rowcount


def _like_pattern(identifier: str) -> str:
    escaped = identifier.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def scan_subject(
    connection: psycopg.Connection, table: DataSourceTable, identifiers: list[str]
) -> dict[str, int]:
    """Rows per configured column that still contain one of the identifiers anywhere in their
    text (case-insensitive): one pass over the table."""
    columns = table.scanned_columns
    patterns = [_like_pattern(identifier) for identifier in identifiers]
    counts = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE lower({}::text) LIKE ANY(%s))").format(
            sql.Identifier(column)
        )
        for column in columns
    )
    query = sql.SQL("SELECT {} FROM {}").format(counts, _table_name(table.table))
    row = connection.execute(query, [patterns] * len(columns)).fetchone()
    connection.rollback()
    return {column: count for column, count in zip(columns, row, strict=True) if count}
