"""An incident with a timeline cannot be deleted (PROTECT), and the timeline refuses UPDATE and
DELETE in the database too (portal.history)."""

import django.db.models.deletion
from django.db import migrations, models

from portal.history import append_only_triggers

timeline_forward, timeline_backward = append_only_triggers(
    "ops_timelineentry", detachable=["author_id"]
)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0004_incident_services"),
        ("portal", "0006_history_triggers"),
    ]

    operations = [
        migrations.AlterField(
            model_name="timelineentry",
            name="incident",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="timeline",
                to="ops.incident",
            ),
        ),
        migrations.RunPython(timeline_forward, timeline_backward),
    ]
