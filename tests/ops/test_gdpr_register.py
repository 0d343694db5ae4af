"""The register of processing activities (art. 30): edited in the admin (audited), printed
for those who may see it; sources are configured by an environment variable's name."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from ops.models import DataSource, DataSourceTable, ProcessingActivity
from portal import roles
from portal.models import AuditEntry
from tests.conftest import client_for


def test_register_is_edited_in_the_admin_and_printed(make_user, manager, operator):
    admin = make_user("adam", roles.ADMIN, is_staff=True)
    response = client_for(admin).post(
        reverse("admin:ops_processingactivity_add"),
        {
            "name": "Customer support",
            "purpose": "Answer customers' questions",
            "subject_categories": "Customers",
            "data_categories": "Name, e-mail, messages",
            "retention": "2 years after the last contact",
        },
    )
    assert response.status_code == 302
    assert AuditEntry.objects.filter(object_type="ops.processingactivity").exists()
    page = client_for(manager).get(reverse("ops:gdpr_register")).content.decode()
    assert "Customer support" in page and "2 years after the last contact" in page
    assert client_for(operator).get(reverse("ops:gdpr_register")).status_code == 403
    assert ProcessingActivity.objects.count() == 1


@pytest.mark.parametrize("value", ["postgres://user:secret@db/crm", "env:CRM_URL", "1ABC", ""])
def test_a_source_names_a_variable_never_the_url(db, value):
    with pytest.raises(ValidationError, match="environment variable"):
        DataSource(name="crm", connection_env=value).full_clean()
    DataSource(name="crm", connection_env="CRM_DATABASE_URL").full_clean()


def test_table_columns_are_lists_and_anonymize_names_its_columns(db):
    source = DataSource.objects.create(name="crm", connection_env="CRM_DATABASE_URL")
    with pytest.raises(ValidationError, match="JSON list of column names"):
        DataSourceTable(
            source=source, table="t", subject_column="email", personal_columns="name"
        ).full_clean()
    with pytest.raises(ValidationError, match="Name the columns to anonymize"):
        DataSourceTable(
            source=source, table="t", subject_column="email", erasure_action="anonymize"
        ).full_clean()
