"""Image staff may upload, see and delete image batches; Admin gets the image permissions too.

The forward function is named `create_roles`: the test suite replays it after a transactional
test has flushed the tables (tests/conftest.py)."""

from django.db import migrations

# Frozen here on purpose: a migration must not change meaning when the code moves on.
ROLES = {
    "Image staff": [
        "images.view_batch",
        "images.upload_batch",
        "images.delete_batch",
        "images.view_preset",
    ],
}
ALL_PERMISSIONS_ROLE = "Admin"


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        previous = getattr(app_config, "models_module", None)
        app_config.models_module = previous or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = previous

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
    admin.permissions.add(*Permission.objects.filter(content_type__app_label="images"))


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    images = Permission.objects.filter(content_type__app_label="images")
    for group in Group.objects.filter(name__in=[*ROLES, ALL_PERMISSIONS_ROLE]):
        group.permissions.remove(*images)


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0002_default_preset"),
        ("portal", "0002_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
