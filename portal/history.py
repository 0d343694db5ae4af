"""Append-only tables in the database: triggers that refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL) of history rows, on PostgreSQL and SQLite alike, created by migrations.

The one way past them is ``history_unlocked()``: it puts a row in ``portal_history_unlock``
inside a transaction, so only that transaction sees it. Nothing in the portal uses it today;
a retention command would, and would audit what it removed. A user's deletion may still set
the history's user column to NULL (the username is kept beside it).

SQLite rebuilds a table for most ALTERs and drops its triggers with it: a migration that
alters an append-only table must create them again (the history tests would fail otherwise).
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import connections, transaction

UNLOCK_TABLE = "portal_history_unlock"

_POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION portal_append_only() RETURNS trigger AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    col text;
BEGIN
    IF EXISTS (SELECT 1 FROM portal_history_unlock) THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        old_row := to_jsonb(OLD);
        new_row := to_jsonb(NEW);
        FOREACH col IN ARRAY TG_ARGV LOOP
            IF new_row -> col = 'null'::jsonb THEN
                old_row := old_row - col;
                new_row := new_row - col;
            END IF;
        END LOOP;
        IF old_row = new_row THEN RETURN NEW; END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$ LANGUAGE plpgsql;
"""


def _columns(schema_editor, table: str) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        return [col.name for col in connection.introspection.get_table_description(cursor, table)]


def _sqlite_statements(table: str, columns: Sequence[str], detachable: Sequence[str]) -> list:
    unlocked = f"EXISTS (SELECT 1 FROM {UNLOCK_TABLE})"  # noqa: S608
    kept = [f'NEW."{col}" IS OLD."{col}"' for col in columns if col not in detachable]
    kept += [f'(NEW."{col}" IS NULL OR NEW."{col}" IS OLD."{col}")' for col in detachable]
    return [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"WHEN NOT {unlocked} AND NOT ({' AND '.join(kept)}) "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} WHEN NOT {unlocked} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END",
    ]


def _postgres_statements(table: str, detachable: Sequence[str]) -> list:
    arguments = ", ".join(f"'{col}'" for col in detachable)
    return [
        _POSTGRES_FUNCTION,
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION portal_append_only({arguments})",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION portal_append_only()",
    ]


def create_unlock_table(apps, schema_editor) -> None:
    schema_editor.execute(
        f"CREATE TABLE IF NOT EXISTS {UNLOCK_TABLE} (id integer PRIMARY KEY, reason text)"
    )


def drop_unlock_table(apps, schema_editor) -> None:
    schema_editor.execute(f"DROP TABLE IF EXISTS {UNLOCK_TABLE}")


def append_only_triggers(table: str, *, detachable: Sequence[str] = ()):
    """RunPython functions (forward, backward) that make ``table`` append-only; the columns in
    ``detachable`` (a deleted user's) may still be set to NULL."""

    def forward(apps, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            statements = _postgres_statements(table, detachable)
        elif vendor == "sqlite":
            statements = _sqlite_statements(table, _columns(schema_editor, table), detachable)
        else:
            raise RuntimeError(
                f"Append-only triggers exist for PostgreSQL and SQLite, not {vendor}."
            )
        for statement in statements:
            schema_editor.execute(statement, params=None)

    def backward(apps, schema_editor) -> None:
        names = [f"{table}_no_update", f"{table}_no_delete"]
        if schema_editor.connection.vendor == "postgresql":
            names = [f"{table}_append_only", f"{table}_no_truncate"]
            for name in names:
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            return
        for name in names:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")

    return forward, backward


@contextmanager
def history_unlocked(*, reason: str, using: str = "default") -> Iterator[None]:
    """Within this block (one transaction) this connection may change history rows."""
    # On an error the transaction rolls back and the row with it.
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            cursor.execute(f"INSERT INTO {UNLOCK_TABLE} (id, reason) VALUES (1, %s)", [reason])  # noqa: S608
        yield
        with connections[using].cursor() as cursor:
            cursor.execute(f"DELETE FROM {UNLOCK_TABLE} WHERE id = 1")  # noqa: S608
