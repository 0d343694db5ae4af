"""Deploys and backups: Operators and Managers see environments, deploys and backups, deploy
where no Manager is needed and take backups; Managers also deploy to production (and override
its gates). Environments and backup targets are edited by Admins (in the admin).

The forward function is named `create_roles`: the test suite replays it after a flush."""

from django.db import migrations

# Frozen here on purpose: a migration must not change meaning when the code moves on.
BOTH_GET = [
    "ops.view_environment",
    "ops.view_deploy",
    "ops.start_deploy",
    "ops.view_backuptarget",
    "ops.view_backup",
    "ops.start_backup",
]
MANAGER_GETS = ["ops.deploy_production"]
ALL_PERMISSIONS_ROLE = "Admin"


def _permissions(Permission, names):
    for name in names:
        app_label, codename = name.split(".")
        yield Permission.objects.get(content_type__app_label=app_label, codename=codename)


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    operator, _ = Group.objects.get_or_create(name="Operator")
    operator.permissions.add(*_permissions(Permission, BOTH_GET))
    manager, _ = Group.objects.get_or_create(name="Manager")
    manager.permissions.add(*_permissions(Permission, BOTH_GET + MANAGER_GETS))
    admin, _ = Group.objects.get_or_create(name=ALL_PERMISSIONS_ROLE)
    admin.permissions.set(Permission.objects.all())


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name__in=["Operator", "Manager"]):
        group.permissions.remove(*_permissions(Permission, BOTH_GET + MANAGER_GETS))


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0011_alert_roles"),
        ("ops", "0013_releases"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
