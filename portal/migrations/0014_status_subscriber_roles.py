"""Status page subscribers and overrides: Managers see the subscribers (and may delete one),
the notices and their deliveries in the admin; Operators working an incident may override a
component's state from the incident page, as Managers may.

The forward function is named `create_roles`: the test suite replays it after a flush."""

from django.db import migrations

# Frozen here on purpose: a migration must not change meaning when the code moves on.
ROLES = {
    "Manager": [
        "ops.view_statussubscriber",
        "ops.delete_statussubscriber",
        "ops.view_statusnotice",
        "ops.view_statusdelivery",
    ],
    "Operator": ["ops.publish_statuscomponent"],
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
    for role, names in ROLES.items():
        group = Group.objects.filter(name=role).first()
        if group is None:
            continue
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0013_status_roles"),
        ("ops", "0020_status_subscribers"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
