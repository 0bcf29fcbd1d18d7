"""AuditEvent moves from rotation to audit: the same table, no row copied (state only).

The table keeps its name (``Meta.db_table``); rotation's 0005 drops the model from rotation's
state. The model's content type moves with it, so the roles keep their permission to read the log.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    """Relabel rotation's auditevent content type as audit's (its permissions and their grants follow)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    old = ContentType.objects.filter(app_label="rotation", model="auditevent").first()
    if old is None:
        return
    new = ContentType.objects.filter(app_label="audit", model="auditevent").first()
    if new is not None:
        # Both exist (a post_migrate ran in between): keep the new one, move the old grants to it.
        for permission in Permission.objects.filter(content_type=old):
            twin, _ = Permission.objects.get_or_create(
                content_type=new, codename=permission.codename, defaults={"name": permission.name}
            )
            for group in permission.group_set.all():
                group.permissions.add(twin)
            for user in permission.user_set.all():
                user.user_permissions.add(twin)
        old.delete()
        return
    old.app_label = "audit"
    old.save(update_fields=["app_label"])


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="rotation", model="auditevent").exists():
        ContentType.objects.filter(app_label="audit", model="auditevent").update(app_label="rotation")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("rotation", "0004_attempt_number"),
        # The roles are granted rotation.view_auditevent there: it must exist before it moves.
        ("records", "0002_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("event", models.CharField(db_index=True, max_length=64)),
                        (
                            "category",
                            models.CharField(
                                choices=[
                                    ("record", "Record"),
                                    ("rotation", "Rotation"),
                                    ("directory", "Directory"),
                                    ("heartbeat", "Account state"),
                                    ("login", "Sign-in"),
                                    ("security", "Security"),
                                ],
                                default="record",
                                max_length=32,
                            ),
                        ),
                        (
                            "outcome",
                            models.CharField(
                                blank=True, choices=[("ok", "Success"), ("fail", "Failure")], max_length=16
                            ),
                        ),
                        ("actor_name", models.CharField(blank=True, max_length=150)),
                        ("remote_address", models.GenericIPAddressField(blank=True, null=True)),
                        ("record_type", models.CharField(blank=True, max_length=32)),
                        ("record_id", models.BigIntegerField(blank=True, null=True)),
                        ("record_title", models.CharField(blank=True, max_length=200)),
                        ("attempt_id", models.BigIntegerField(blank=True, null=True)),
                        ("message", models.CharField(blank=True, max_length=1000)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                db_constraint=False,
                                null=True,
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "rotation_auditevent",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(fields=["record_type", "record_id"], name="audit_record_idx")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, restore_content_type),
    ]
