"""The DPO role: the only role besides Admin that sees a data-subject request's identifiers
and exported data; it logs and handles requests and ticks their checklists. Operators and
managers see requests' counts and deadlines only.

The forward function is named `create_roles`: the test suite replays it after a flush."""

from django.db import migrations

# Frozen here on purpose: a migration must not change meaning when the code moves on.
SEE_DEADLINES = ["ops.view_datasubjectrequest"]
ROLES = {
    "DPO": [
        "ops.view_datasubjectrequest",
        "ops.add_datasubjectrequest",
        "ops.handle_datasubjectrequest",
        "ops.view_subject_data",
        "ops.view_checklistrun",
        "ops.start_checklistrun",
        "ops.tick_checklistrun",
        "ops.view_incident",
        "ops.view_breachrecord",
        "ops.change_breachrecord",
        "ops.view_processingactivity",
    ],
    "Operator": SEE_DEADLINES,
    # Incident managers record a breach's notifications too.
    "Manager": [
        *SEE_DEADLINES,
        "ops.view_processingactivity",
        "ops.view_breachrecord",
        "ops.change_breachrecord",
    ],
}
ALL_PERMISSIONS_ROLE = "Admin"


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    admin, _ = Group.objects.get_or_create(name=ALL_PERMISSIONS_ROLE)
    admin.permissions.set(Permission.objects.all())


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Group.objects.filter(name="DPO").delete()
    for role in ("Operator", "Manager"):
        group = Group.objects.filter(name=role).first()
        if group is not None:
            for name in ROLES[role]:
                app_label, codename = name.split(".")
                group.permissions.remove(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0009_maintenance_roles"),
        ("ops", "0011_gdpr"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
