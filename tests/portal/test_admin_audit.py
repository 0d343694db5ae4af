"""Admin edits in the audit log: which fields changed, from what to what, secrets masked."""

import pytest
from django.urls import reverse

from ops.models import ChecklistTemplate, Kpi, MonitoredService
from portal import roles
from portal.admin_audit import changes
from portal.models import AuditEntry
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _form_data(response) -> dict:
    """What the change page would post untouched: every form's current values, the inline
    formsets' and their management forms included."""
    data = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    for form in forms:
        for bound in form:
            if bound.field.disabled:
                continue
            value = bound.value()
            if value is None or value is False:
                continue
            if value is True:
                value = "on"
            if isinstance(value, list | tuple):
                value = [str(item) for item in value]
            data[bound.html_name] = value
    return data


@pytest.fixture
def admin_user(make_user):
    return make_user("ada", roles.ADMIN, is_staff=True)


def test_a_change_records_the_changed_fields_old_and_new_values(make_template, manager):
    template = make_template("Morning check", items=["Services healthy", "Logs clean"])
    client = client_for(manager)
    url = reverse("admin:ops_checklisttemplate_change", args=[template.pk])
    data = _form_data(client.get(url))
    data["name"] = "Morning checks"
    data["estimated_minutes"] = "20"
    item_field = next(k for k, v in data.items() if v == "Logs clean")
    data[item_field] = "Logs clean of errors"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.get(action="admin.checklisttemplate.change")
    assert entry.actor == manager
    assert entry.before == {
        "name": "Morning check",
        "estimated_minutes": None,
        "checklist item “Logs clean of errors”: text": "Logs clean",
    }
    assert entry.after == {
        "name": "Morning checks",
        "estimated_minutes": 20,
        "checklist item “Logs clean of errors”: text": "Logs clean of errors",
    }
    assert ChecklistTemplate.objects.get().name == "Morning checks"


def test_list_edits_record_old_and_new_values(manager):
    kpi = Kpi.objects.get(metric="queue_size")
    client = client_for(manager)
    url = reverse("admin:ops_kpi_changelist")
    kpis = list(Kpi.objects.order_by("position", "id"))
    data = {
        "form-TOTAL_FORMS": str(len(kpis)),
        "form-INITIAL_FORMS": str(len(kpis)),
        "_save": "Save",
    }
    page = client.get(url)
    for number, form in enumerate(page.context["cl"].formset.forms):
        for bound in form:
            value = bound.value()
            if value is not None:
                data[f"form-{number}-{bound.name}"] = str(value)
        if form.instance.pk == kpi.pk:
            data[f"form-{number}-warning"] = "60"
    response = client.post(url, data)
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="admin.kpi.change")
    assert entry.before == {"warning": 50.0} and entry.after == {"warning": 60.0}


def test_secrets_are_masked_in_the_recorded_values(admin_user, monkeypatch):
    monkeypatch.setenv("PORTAL_TEST_REDIS", "redis://:new-secret@127.0.0.1:6379/14")
    # A row from before targets named environment variables: its password is in the target.
    service = MonitoredService.objects.create(
        name="Cache", slug="cache", kind="redis", target="redis://:legacy-pw@127.0.0.1:6379/0"
    )
    client = client_for(admin_user)
    url = reverse("admin:ops_monitoredservice_change", args=[service.pk])
    data = _form_data(client.get(url))
    data["target"] = "env:PORTAL_TEST_REDIS"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.get(action="admin.monitoredservice.change")
    assert entry.before == {"target": "redis://:***@127.0.0.1:6379/0"}
    assert entry.after == {"target": "env:PORTAL_TEST_REDIS"}
    assert "legacy-pw" not in str(list(AuditEntry.objects.values()))


def test_fields_named_like_secrets_are_masked():
    before, after = changes(
        {"password": "pbkdf2$old", "digest": "aa", "note": "x", "url": "https://h/?token=abc"},
        {"password": "pbkdf2$new", "digest": "bb", "note": "x", "url": "https://h/?token=def"},
    )
    assert before == {"password": "***", "digest": "***", "url": "https://h/?token=***"}
    assert after == {"password": "***", "digest": "***", "url": "https://h/?token=***"}


def test_additions_and_deletions_record_their_values(admin_user):
    client = client_for(admin_user)
    response = client.post(reverse("admin:auth_group_add"), {"name": "Auditors", "permissions": []})
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="admin.group.add")
    assert entry.after == {"name": "Auditors"}
    group_id = int(entry.object_id)
    response = client.post(reverse("admin:auth_group_delete", args=[group_id]), {"post": "yes"})
    assert response.status_code == 302
    deleted = AuditEntry.objects.get(action="admin.group.delete")
    assert deleted.before == {"name": "Auditors", "permissions": []}
