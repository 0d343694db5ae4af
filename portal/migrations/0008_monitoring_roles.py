"""Monitored services are added and edited by Admins only (a target reaches inside the
network); Managers may pause and resume them. The Admin role also gets the permissions that
came with django-axes (unlocking a locked-out login).

The forward function is named `create_roles`: the test suite replays it after a flush."""

from django.db import migrations

# Frozen here on purpose: a migration must not change meaning when the code moves on.
MANAGER_LOSES = ["ops.add_monitoredservice", "ops.change_monitoredservice"]
MANAGER_GETS = ["ops.pause_monitoredservice"]
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
    manager, _ = Group.objects.get_or_create(name="Manager")
    manager.permissions.remove(*_permissions(Permission, MANAGER_LOSES))
    manager.permissions.add(*_permissions(Permission, MANAGER_GETS))
    admin, _ = Group.objects.get_or_create(name=ALL_PERMISSIONS_ROLE)
    admin.permissions.set(Permission.objects.all())


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    manager = Group.objects.filter(name="Manager").first()
    if manager is not None:
        manager.permissions.remove(*_permissions(Permission, MANAGER_GETS))
        manager.permissions.add(*_permissions(Permission, MANAGER_LOSES))


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0007_run_cancel_roles"),
        ("ops", "0008_monitoring_secrets"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
