"""Alert permissions for the roles (see 0002_roles for the pattern): operators see and
acknowledge alerts, add their own channels and silences; managers also edit rules, schedules,
policies and vendor contacts."""

from django.db import migrations

OPERATOR = [
    "ops.view_alert",
    "ops.acknowledge_alert",
    "ops.view_alertrule",
    "ops.view_oncallschedule",
    "ops.view_escalationpolicy",
    "ops.add_notificationchannel",
    "ops.add_silence",
    "ops.view_vendorcontact",
]
ROLES = {
    "Operator": OPERATOR,
    "Manager": [
        *OPERATOR,
        "ops.add_alertrule",
        "ops.change_alertrule",
        "ops.add_oncallschedule",
        "ops.change_oncallschedule",
        "ops.add_escalationpolicy",
        "ops.change_escalationpolicy",
        "ops.change_notificationchannel",
        "ops.add_vendorcontact",
        "ops.change_vendorcontact",
    ],
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
    dependencies = [("portal", "0010_dpo_role"), ("ops", "0012_alerts")]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
