"""The portal's roles as groups. Later migrations add the permissions of later features.

A migration that changes roles names its forward function `create_roles`: the test suite
replays those after a transactional test has flushed the tables (tests/conftest.py)."""

from django.db import migrations

# Frozen here on purpose: a migration must not change meaning when the code moves on.
ROLES = {
    "Operator": [
        "ops.view_checklisttemplate",
        "ops.view_checklistrun",
        "ops.tick_checklistrun",
        "ops.start_checklistrun",
    ],
    "Manager": [
        "ops.view_checklisttemplate",
        "ops.add_checklisttemplate",
        "ops.change_checklisttemplate",
        "ops.view_checklistsection",
        "ops.add_checklistsection",
        "ops.change_checklistsection",
        "ops.delete_checklistsection",
        "ops.view_checklistitem",
        "ops.add_checklistitem",
        "ops.change_checklistitem",
        "ops.delete_checklistitem",
        "ops.view_checklistrun",
        "ops.tick_checklistrun",
        "ops.start_checklistrun",
        "portal.view_auditentry",
    ],
    "Image staff": [
        "ops.view_checklisttemplate",
        "ops.view_checklistrun",
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
    apps.get_model("auth", "Group").objects.filter(name__in=[*ROLES, ALL_PERMISSIONS_ROLE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("ops", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
