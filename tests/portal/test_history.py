"""History is append-only: audit entries and incident timelines refuse changes in the ORM
(one by one and in bulk) and in the database (triggers), on SQLite and PostgreSQL alike."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError

from ops.models import Incident, TimelineEntry
from portal.history import history_unlocked
from portal.models import AppendOnlyError, AuditEntry
from portal.services.audit import audit_record

pytestmark = pytest.mark.django_db


def _raw(sql: str, params=None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE portal_auditentry SET summary = 'rewritten'",
        "UPDATE portal_auditentry SET actor_id = NULL, summary = 'rewritten'",
        "DELETE FROM portal_auditentry",
    ],
)
def test_raw_sql_cannot_rewrite_the_audit_log(operator, sql):
    audit_record(actor=operator, action="test.thing", summary="once")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw(sql)
    entry = AuditEntry.objects.get()
    assert (entry.summary, entry.actor_id) == ("once", operator.pk)


def test_bulk_changes_are_refused_before_the_database(operator):
    audit_record(actor=operator, action="test.thing", summary="once")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.update(summary="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get().summary == "once"


def test_a_deleted_user_is_detached_and_their_name_kept(make_user):
    leaver = make_user("leaver")
    audit_record(actor=leaver, action="test.thing", summary="once")
    leaver.delete()
    entry = AuditEntry.objects.get(action="test.thing")
    assert entry.actor_id is None and entry.actor_name == "leaver" and entry.summary == "once"


def test_raw_sql_cannot_rewrite_an_incident_timeline(make_incident, operator):
    incident = make_incident(operator)
    entries = incident.timeline.count()
    for sql in (
        "UPDATE ops_timelineentry SET text = 'nothing happened'",
        "DELETE FROM ops_timelineentry",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            _raw(sql)
    assert incident.timeline.count() == entries
    assert not incident.timeline.filter(text="nothing happened").exists()
    with pytest.raises(AppendOnlyError):
        TimelineEntry.objects.filter(incident=incident).update(text="nothing happened")
    # The incident itself cannot be deleted from under its timeline either.
    with pytest.raises(ProtectedError):
        Incident.objects.filter(pk=incident.pk).delete()


def test_only_an_unlocked_transaction_may_remove_history(operator):
    audit_record(actor=operator, action="test.thing", summary="once")
    with history_unlocked(reason="retention test"):
        _raw("DELETE FROM portal_auditentry")
    assert not AuditEntry.objects.exists()
    # The unlock ended with its transaction.
    audit_record(actor=operator, action="test.thing", summary="twice")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM portal_auditentry")


def test_adding_a_timeline_entry_bumps_the_version_the_pages_poll(make_incident, operator):
    incident = make_incident(operator)
    version = Incident.objects.get(pk=incident.pk).version
    entry = incident.add_entry(kind="note", text="Looking into it", user=operator)
    assert entry.author_name == operator.get_username()
    assert Incident.objects.get(pk=incident.pk).version == version + 1 == incident.version
