"""Run the account heartbeat now (rotation/heartbeat.py) and print what it found for each account."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from rotation import heartbeat
from rotation.management.commands.pam_rotation import select_users, write_table


class Command(BaseCommand):
    help = (
        "Check now that each stored password still opens its account, without ever binding with a "
        "password the directory shows was changed (no lock-outs). Without options: every account a "
        "directory rotates."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--user", metavar="USER", help="A PAM user's title or login.")
        target.add_argument("--directory", metavar="TITLE", help="Every account of the directory.")
        target.add_argument("--configuration", metavar="TITLE", help="Every account of the configuration.")

    def handle(self, *args, **options):
        if options["user"] or options["directory"] or options["configuration"]:
            _, chosen = select_users(options)
            ids = [user.pk for user in chosen]
            users = list(heartbeat.checkable().filter(pk__in=ids).order_by("title"))
            skipped = len(ids) - len(users)
        else:
            users, skipped = list(heartbeat.checkable().order_by("title")), 0
        rows = []
        for user in users:
            finding = heartbeat.check(user)
            rows.append(
                {"title": user.title, "login": user.login, "state": finding.state, "detail": finding.detail}
            )
        write_table(self.stdout, rows)
        if skipped:
            self.stderr.write(
                f"{skipped} account(s) not checked: no directory rotates them or their DN is unknown."
            )
