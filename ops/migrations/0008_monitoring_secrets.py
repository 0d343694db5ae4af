"""Secrets out of monitored-service targets, and no echoed response content in check details.

A target that holds a password or token (``postgres://u:pw@…``, ``…?password=…``) is rewritten
to ``env:NAME`` when an environment variable of this process holds exactly that URL (what
``setup_portal --demo`` used to copy from DATABASE_URL and REDIS_URL). Otherwise its secret is
masked, the service paused and its detail says why: an Admin puts the URL in an environment
variable and enters env:NAME. Details that quoted a JSON field's value are replaced by the
fixed wording the check now uses."""

import os

from django.db import migrations, models

from portal.env import env_str
from portal.secrets import mask_url, url_has_secret

PREFERRED = ("DATABASE_URL", "REDIS_URL")
FLAGGED = (
    "Paused: the target held a password or token, now masked. Put the URL in an environment "
    "variable and enter env:NAME as the target."
)
ECHO = "”, expected “"
FIELD_MISMATCH = "field did not match"


def _variable_holding(value: str) -> str | None:
    for name in PREFERRED:
        if (env_str(name) or "").strip() == value:
            return name
    for name, held in sorted(os.environ.items()):
        if held.strip() == value and not name.endswith("_FILE"):
            return name
    return None


def move_secrets_out(apps, schema_editor):
    MonitoredService = apps.get_model("ops", "MonitoredService")
    CheckResult = apps.get_model("ops", "CheckResult")
    for service in MonitoredService.objects.all():
        target = service.target.strip()
        if target.startswith("env:") or not url_has_secret(target):
            continue
        name = _variable_holding(target)
        if name:
            service.target = f"env:{name}"
            service.save(update_fields=["target"])
        else:
            service.target = mask_url(target)
            service.is_active = False
            service.state = "unknown"
            service.last_detail = FLAGGED
            service.save(update_fields=["target", "is_active", "state", "last_detail"])
    MonitoredService.objects.filter(last_detail__contains=ECHO).update(last_detail=FIELD_MISMATCH)
    CheckResult.objects.filter(detail__contains=ECHO).update(detail=FIELD_MISMATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0007_run_cancel"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="monitoredservice",
            options={
                "ordering": ["name", "id"],
                "permissions": [
                    ("view_health", "Can see health panels and KPIs"),
                    ("pause_monitoredservice", "Can pause and resume monitored services"),
                ],
            },
        ),
        migrations.AlterField(
            model_name="monitoredservice",
            name="target",
            field=models.CharField(
                blank=True,
                help_text="HTTP: the URL. TLS and TCP: host:port. PostgreSQL: a connection URL (postgres://user@host:5432/db). Redis: redis://host:6379/0. Celery: the queue names to measure, comma-separated (empty: the default queue). DigitalOcean: the app id. A target with a password or token is given as env:NAME, the environment variable that holds it (env:DATABASE_URL), read when the check runs.",
                max_length=500,
            ),
        ),
        migrations.RunPython(move_secrets_out, migrations.RunPython.noop),
    ]
