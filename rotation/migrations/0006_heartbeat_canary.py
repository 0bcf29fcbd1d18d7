"""Heartbeats written by workers that took a task: a gateway's canary and when it was sent (issue 19)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rotation", "0005_auditevent_moved_to_audit"),
    ]

    operations = [
        migrations.AlterField(
            model_name="heartbeat",
            name="seen_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="heartbeat",
            name="canary_sent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
