"""AuditEvent now belongs to the audit app (audit/migrations/0001): drop it from rotation's state only."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("rotation", "0004_attempt_number"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
            database_operations=[],
        ),
    ]
