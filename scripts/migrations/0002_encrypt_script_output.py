"""Store script output encrypted (issue 21): new encrypted columns, existing rows encrypted, clear ones dropped."""

from django.db import migrations, models


def encrypt_output(apps, schema_editor):
    from pamrotate import crypto

    ScriptRun = apps.get_model("scripts", "ScriptRun")
    for run in ScriptRun.objects.exclude(stdout="", stderr="").iterator():
        run.stdout_encrypted = crypto.encrypt(run.stdout) if run.stdout else ""
        run.stderr_encrypted = crypto.encrypt(run.stderr) if run.stderr else ""
        run.save(update_fields=["stdout_encrypted", "stderr_encrypted"])


def decrypt_output(apps, schema_editor):
    from pamrotate import crypto

    ScriptRun = apps.get_model("scripts", "ScriptRun")
    for run in ScriptRun.objects.exclude(stdout_encrypted="", stderr_encrypted="").iterator():
        run.stdout = crypto.decrypt(run.stdout_encrypted) if run.stdout_encrypted else ""
        run.stderr = crypto.decrypt(run.stderr_encrypted) if run.stderr_encrypted else ""
        run.save(update_fields=["stdout", "stderr"])


class Migration(migrations.Migration):
    dependencies = [("scripts", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="scriptrun",
            name="stdout_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="scriptrun",
            name="stderr_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.RunPython(encrypt_output, decrypt_output),
        migrations.RemoveField(model_name="scriptrun", name="stdout"),
        migrations.RemoveField(model_name="scriptrun", name="stderr"),
    ]
