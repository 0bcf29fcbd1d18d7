"""Sign-in events written with outcome "failed" or "refused" take the fixed vocabulary's "fail".

The audit filter and the API only know "ok" and "fail", so the Failure filter found none of them.
The event name still says which it was (login_failure, login_locked_out, mfa_failure).
"""

from django.db import migrations

OLD_FAILURES = ["failed", "refused"]


def to_fixed_outcomes(apps, schema_editor):
    # The historical model has a plain manager: this is the one UPDATE the audit log ever gets.
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditEvent.objects.filter(outcome__in=OLD_FAILURES).update(outcome="fail")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(to_fixed_outcomes, migrations.RunPython.noop)]
