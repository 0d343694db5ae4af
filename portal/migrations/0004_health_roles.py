"""Health monitoring permissions for the roles (see 0002_roles for the pattern)."""

from django.db import migrations

ROLES = {
    "Operator": ["ops.view_health", "ops.view_monitoredservice", "ops.view_kpi"],
    "Manager": [
        "ops.view_health",
        "ops.view_monitoredservice",
        "ops.add_monitoredservice",
        "ops.change_monitoredservice",
        "ops.view_kpi",
        "ops.change_kpi",
    ],
    "Image staff": ["ops.view_health"],
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

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
    admin, _ = Group.objects.get_or_create(name="Admin")
    admin.permissions.set(Permission.objects.all())


class Migration(migrations.Migration):
    dependencies = [("portal", "0003_api_tokens"), ("ops", "0002_health")]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
