"""Runs can be cancelled (with a reason). The response checklists still open of incidents
already closed are cancelled now, as closing an incident does from here on."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def cancel_runs_of_closed_incidents(apps, schema_editor):
    ChecklistRun = apps.get_model("ops", "ChecklistRun")
    for run in ChecklistRun.objects.filter(status="open", incident__status="closed").select_related(
        "incident"
    ):
        run.status = "cancelled"
        run.cancelled_at = run.incident.closed_at or run.incident.updated_at
        run.cancel_reason = f"INC-{run.incident_id} was closed."
        run.version += 1
        run.save(update_fields=["status", "cancelled_at", "cancel_reason", "version"])


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0006_acknowledgement_correction"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="checklistrun",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("tick_checklistrun", "Can tick, skip and annotate items of checklist runs"),
                    ("start_checklistrun", "Can start and cancel on-demand checklist runs"),
                    ("cancel_checklistrun", "Can cancel scheduled checklist runs"),
                ],
            },
        ),
        migrations.AddField(
            model_name="checklistrun",
            name="cancel_reason",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name="checklistrun",
            name="cancelled_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="checklistrun",
            name="cancelled_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="checklistrun",
            name="status",
            field=models.CharField(
                choices=[("open", "Open"), ("completed", "Completed"), ("cancelled", "Cancelled")],
                default="open",
                max_length=16,
            ),
        ),
        migrations.RunPython(cancel_runs_of_closed_incidents, migrations.RunPython.noop),
    ]
