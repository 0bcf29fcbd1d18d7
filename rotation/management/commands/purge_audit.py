"""Delete audit events and finished rotation attempts older than the retention period.

This command is the only way audit events are ever deleted: rotation.retention.purge calls
audit.events.purge_events and deletes the finished attempts of the same age, then records the run
as one ``audit_purge`` event, which the purge itself never removes.
"""

from __future__ import annotations

import datetime as dt
import getpass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.actors import Actor
from rotation import retention


class Command(BaseCommand):
    help = "Delete audit events and finished rotation attempts older than --older-than DAYS (or AUDIT_RETENTION_DAYS)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            help="age in days; defaults to the AUDIT_RETENTION_DAYS setting (0 keeps everything)",
        )

    def handle(self, *args, **options):
        days = options["older_than"]
        if days is None:
            days = getattr(settings, "AUDIT_RETENTION_DAYS", 0) or 0
        most = (dt.date.today() - dt.date.min).days  # older than that is before year 1
        if not 0 <= days <= most:
            raise CommandError(f"--older-than must be a number of days from 0 to {most}.")
        if days == 0:
            self.stdout.write(
                "Nothing purged: no --older-than given and AUDIT_RETENTION_DAYS is 0 (keep forever)."
            )
            return
        counts = retention.purge(days, actor=Actor.system(_os_user()))
        self.stdout.write(
            f"Purged {counts['events']} audit event(s) and {counts['attempts']} finished rotation "
            f"attempt(s) older than {days} day(s)."
        )


def _os_user() -> str:
    try:
        return f"{getpass.getuser()} (purge_audit)"
    except (KeyError, OSError):
        return "purge_audit"
