"""Create the three roles as groups, mirroring Keeper's enforcement policies."""

from django.db import migrations

VIEW = [
    "records.view_pamconfiguration",
    "records.view_pamdirectory",
    "records.view_pamuser",
    "rotation.view_rotationattempt",
    "rotation.view_auditevent",
]
OPERATE = VIEW + ["records.rotate_credentials", "records.reveal_password"]
ADMINISTER = OPERATE + [
    "records.configure_rotation",
    "records.add_pamconfiguration",
    "records.change_pamconfiguration",
    "records.delete_pamconfiguration",
    "records.add_pamdirectory",
    "records.change_pamdirectory",
    "records.delete_pamdirectory",
    "records.add_pamuser",
    "records.change_pamuser",
    "records.delete_pamuser",
]
ROLES = {"Viewers": VIEW, "Operators": OPERATE, "Administrators": ADMINISTER}
MOVED_APPS = {"rotation.view_auditevent": ["audit"]}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    grant_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def grant_roles(Group, Permission):
    """Create each role's group and give it its permissions (safe to run again)."""
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            # audit/migrations/0001 moved AuditEvent (and its permissions) from rotation to audit;
            # tests call this with today's models, where the permission is audit's.
            labels = [app_label, *MOVED_APPS.get(code, [])]
            group.permissions.add(
                Permission.objects.filter(content_type__app_label__in=labels, codename=codename).get()
            )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0001_initial"),
        ("rotation", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
