"""The audit log: append-only, written with who/what/where, readable by managers only."""

import csv
import io

import pytest
from django.urls import reverse

from ops.services.checklists import checklist_runs_schedule
from portal.models import AppendOnlyError, AuditEntry
from portal.services.audit import audit_record
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_entries_cannot_be_changed_or_deleted(operator):
    entry = audit_record(actor=operator, action="test.thing", summary="once")
    entry.summary = "rewritten"
    with pytest.raises(AppendOnlyError, match="append-only"):
        entry.save()
    with pytest.raises(AppendOnlyError, match="append-only"):
        entry.delete()
    assert AuditEntry.objects.get().summary == "once"


def test_tick_through_the_web_records_the_client_address(make_template, operator):
    make_template(items=["One", "Two"])
    (run,) = checklist_runs_schedule()
    item = run.items.first()
    client_for(operator).post(
        reverse("ops:item_tick", args=[run.pk, item.pk]),
        {"done": "1"},
        HTTP_HX_REQUEST="true",
        REMOTE_ADDR="10.1.2.3",
    )
    entry = AuditEntry.objects.get(action="checklist.item.tick")
    assert entry.actor == operator and entry.actor_name == "olivia"
    assert entry.ip_address == "10.1.2.3"
    assert entry.object_type == "ops.runitem" and entry.object_id == str(item.pk)
    assert entry.before == {"state": "open", "note": "", "skip_reason": "", "done_by": None}
    assert entry.after["done_by"] == "olivia"


def test_forwarded_for_is_trusted_only_behind_configured_proxies(make_user, settings, rf):
    from portal.middleware import request_client_address

    request = rf.get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.TRUSTED_PROXY_COUNT = 0
    assert request_client_address(request) == "10.0.0.9"
    settings.TRUSTED_PROXY_COUNT = 1
    assert request_client_address(request) == "203.0.113.7"


@pytest.fixture
def entries(operator, manager):
    for number in range(60):
        audit_record(actor=operator, action="checklist.item.tick", summary=f"tick {number}")
    audit_record(actor=manager, action="checklist.template.import", summary="Imported daily.md")
    audit_record(actor=None, action="checklist.run.open", summary="Scheduled run")


def test_audit_page_filters_and_paginates(entries, manager, django_assert_max_num_queries):
    client = client_for(manager)
    url = reverse("audit_log")
    with django_assert_max_num_queries(9):
        response = client.get(url)
    html = response.content.decode()
    # 62 entries, and the manager's own login.
    assert response.status_code == 200 and "Page 1 of 2 (63 in all)" in html
    html = client.get(url, {"actor": "maria"}).content.decode()
    assert "Imported daily.md" in html and "tick 3" not in html
    html = client.get(url, {"actor": "system"}).content.decode()
    assert "Scheduled run" in html and "tick 3" not in html
    html = client.get(url, {"q": "tick 59"}).content.decode()
    assert "tick 59" in html and "tick 58" not in html
    html = client.get(url, {"action": "checklist.template"}).content.decode()
    assert "Imported daily.md" in html and "tick 1<" not in html
    response = client.get(url, {"since": "23/11/2026"})
    assert response.status_code == 400 and "From must be a date" in response.content.decode()
    with django_assert_max_num_queries(9):
        assert client.get(url, {"page": 2}).status_code == 200


@pytest.mark.parametrize("persona", ["operator", "image_staff", "outsider"])
def test_audit_page_is_for_managers(entries, persona, request):
    assert client_for(request.getfixturevalue(persona)).get(reverse("audit_log")).status_code == 403


def test_admin_shows_the_log_read_only(entries, manager):
    from django.contrib.auth.models import User

    admin = User.objects.create_superuser("root-admin", password="x-very-long-password")
    client = client_for(admin)
    entry = AuditEntry.objects.first()
    assert client.get(reverse("admin:portal_auditentry_changelist")).status_code == 200
    assert client.get(reverse("admin:portal_auditentry_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:portal_auditentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_admin_edits_are_audited(make_template, manager):
    template = make_template()
    client = client_for(manager)
    url = reverse("admin:ops_checklisttemplate_change", args=[template.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: "" if form[name].value() is None else form[name].value() for name in form.fields}
    data.update({"name": "Morning check (renamed)", "_save": "Save"})
    for inline_formset in page.context["inline_admin_formsets"]:
        formset = inline_formset.formset
        prefix = formset.prefix
        mgmt = formset.management_form
        for name in mgmt.fields:
            data[f"{prefix}-{name}"] = mgmt[name].value()
        for number, inline in enumerate(formset.forms):
            for name in inline.fields:
                value = inline[name].value()
                data[f"{prefix}-{number}-{name}"] = "" if value is None else value
    response = client.post(url, data)
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.name == "Morning check (renamed)"
    entry = AuditEntry.objects.get(action="admin.checklisttemplate.change")
    assert entry.actor == manager and entry.summary == "Changed Name."


def test_operator_cannot_edit_templates_in_admin(make_template, operator):
    template = make_template()
    response = client_for(operator).get(
        reverse("admin:ops_checklisttemplate_change", args=[template.pk])
    )
    assert response.status_code == 302  # not staff: sent to the admin login


def test_entries_link_to_their_object(make_incident, make_template, manager, operator):
    incident = make_incident(operator)
    run = incident.checklist_runs.get()
    item = run.items.first()
    client_for(operator).post(
        reverse("ops:item_tick", args=[run.pk, item.pk]), {"done": "1"}, HTTP_HX_REQUEST="true"
    )
    gone = make_template("Gone soon")
    audit_record(actor=manager, action="test.gone", target=gone, summary="about to go")
    gone.runs.all().delete()
    gone.items.all().delete()
    gone.delete()
    html = client_for(manager).get(reverse("audit_log")).content.decode()
    assert f'<a href="{incident.get_absolute_url()}">{incident}</a>' in html
    assert f'<a href="/runs/{run.pk}/#item-{item.pk}">{item.text}</a>' in html
    assert "Gone soon<br>" in html  # no page any more: plain text


def test_audit_csv_export_has_the_page_filters(entries, manager, operator):
    client = client_for(manager)
    html = client.get(reverse("audit_log"), {"actor": "maria"}).content.decode()
    assert 'href="/audit/export.csv?actor=maria" download' in html
    response = client.get(reverse("audit_export"), {"actor": "maria"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["created_at", "actor", "action"]
    # Her import, and her signing in (logins are audited too).
    assert {row[1] for row in rows[1:]} == {"maria"}
    assert [row[6] for row in rows[1:] if row[2] != "auth.login"] == ["Imported daily.md"]
    everything = client.get(reverse("audit_export"))
    lines = b"".join(everything.streaming_content).decode().splitlines()
    assert len(lines) == 1 + AuditEntry.objects.count()
    bad = client.get(reverse("audit_export"), {"since": "yesterday"})
    assert bad.status_code == 400 and "From must be a date" in bad.content.decode()
    assert client_for(operator).get(reverse("audit_export")).status_code == 403


def test_audit_csv_quotes_formulas(manager):
    audit_record(actor=manager, action="test.formula", summary="=HYPERLINK(1)")
    response = client_for(manager).get(reverse("audit_export"))
    assert "'=HYPERLINK(1)" in b"".join(response.streaming_content).decode()
