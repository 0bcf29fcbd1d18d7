"""Number attempts per account and link a retry to the attempt it retries."""

import django.db.models.deletion
from django.db import migrations, models


def number_existing_attempts(apps, schema_editor):
    """Number every account's existing attempts 1, 2, 3... in the order they were created."""
    attempt_model = apps.get_model("rotation", "RotationAttempt")
    counters: dict[int, int] = {}
    changed = []
    for attempt in attempt_model.objects.order_by("user_id", "created_at", "id").only("id", "user_id"):
        counters[attempt.user_id] = counters.get(attempt.user_id, 0) + 1
        attempt.number = counters[attempt.user_id]
        changed.append(attempt)
        if len(changed) >= 1000:
            attempt_model.objects.bulk_update(changed, ["number"])
            changed = []
    attempt_model.objects.bulk_update(changed, ["number"])


def link_existing_retries(apps, schema_editor):
    """Link each existing retry to the failed try before it (same account and slot, one try earlier)."""
    attempt_model = apps.get_model("rotation", "RotationAttempt")
    for retry in attempt_model.objects.filter(trigger="retry", retry_of__isnull=True).order_by("id"):
        failed = (
            attempt_model.objects.filter(
                user_id=retry.user_id,
                slot=retry.slot,
                try_number=retry.try_number - 1,
                state="failed",
                created_at__lte=retry.created_at,
                retry__isnull=True,
            )
            .order_by("-created_at", "-id")
            .first()
        )
        if failed is not None:
            attempt_model.objects.filter(pk=retry.pk).update(retry_of=failed)


class Migration(migrations.Migration):
    dependencies = [
        ("rotation", "0003_attempt_scripts_outcome"),
    ]

    operations = [
        migrations.AddField(
            model_name="rotationattempt",
            name="number",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="rotationattempt",
            name="retry_of",
            field=models.OneToOneField(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="retry",
                to="rotation.rotationattempt",
            ),
        ),
        migrations.RunPython(number_existing_attempts, migrations.RunPython.noop),
        migrations.RunPython(link_existing_retries, migrations.RunPython.noop),
    ]
