"""Events carry the record's UID (issue 25): exports and the API named the database id record_uid."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

RECORD_MODELS = {"pamuser": "PamUser", "pamdirectory": "PamDirectory", "pamconfiguration": "PamConfiguration"}


def fill_record_uids(apps, schema_editor):
    """Copy each existing event's record UID from its record, where the record still exists."""
    events = apps.get_model("audit", "AuditEvent").objects
    for record_type, name in RECORD_MODELS.items():
        uid = apps.get_model("records", name).objects.filter(pk=OuterRef("record_id")).values("uid")[:1]
        events.filter(record_type=record_type).update(record_uid=Coalesce(Subquery(uid), Value("")))


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_fixed_outcomes"), ("records", "0009_metrics_indexes")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="record_uid",
            field=models.CharField(blank=True, default="", max_length=22),
        ),
        migrations.RunPython(fill_record_uids, migrations.RunPython.noop),
    ]
