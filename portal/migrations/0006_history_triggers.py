"""The audit log refuses UPDATE and DELETE in the database too (portal.history)."""

from django.db import migrations

from portal.history import append_only_triggers, create_unlock_table, drop_unlock_table

audit_forward, audit_backward = append_only_triggers("portal_auditentry", detachable=["actor_id"])


class Migration(migrations.Migration):
    dependencies = [("portal", "0005_incident_roles")]

    operations = [
        migrations.RunPython(create_unlock_table, drop_unlock_table),
        migrations.RunPython(audit_forward, audit_backward),
    ]
