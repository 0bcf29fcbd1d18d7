"""Give every record a Keeper-style UID (add, fill, make unique) and PAM users a rotation type."""

from django.db import migrations, models

import records.models

MODELS = ("pamconfiguration", "pamdirectory", "pamuser")


def fill_uids(apps, schema_editor):
    for name in MODELS:
        model = apps.get_model("records", name)
        for record in model.objects.filter(uid__isnull=True).only("pk"):
            model.objects.filter(pk=record.pk).update(uid=records.models.new_uid())


class Migration(migrations.Migration):
    dependencies = [("records", "0002_roles")]

    operations = [
        *[
            migrations.AddField(model_name=name, name="uid", field=models.CharField(max_length=22, null=True))
            for name in MODELS
        ],
        migrations.RunPython(fill_uids, migrations.RunPython.noop),
        migrations.AddField(
            model_name="pamuser",
            name="rotation_type",
            field=models.CharField(
                choices=[("general", "On the directory"), ("scripts_only", "Run post-rotation scripts only")],
                default="general",
                help_text="Scripts only: no directory change; the post-rotation scripts deliver the new password.",
                max_length=20,
            ),
        ),
        *[
            migrations.AlterField(
                model_name=name,
                name="uid",
                field=models.CharField(
                    default=records.models.new_uid,
                    editable=False,
                    max_length=22,
                    unique=True,
                    verbose_name="UID",
                ),
            )
            for name in MODELS
        ],
    ]
