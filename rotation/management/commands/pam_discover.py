"""List a PAM directory's accounts and adopt them as PAM users (discovery, rotation/discovery.py)."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.cli import Acting, add_as_argument
from accounts.policy import Action
from records.models import PamDirectory
from rotation import discovery, ldap
from rotation.management.commands.pam_rotation import write_table


def account_row(item: discovery.DiscoveredAccount) -> dict:
    """Return one discovered account's columns."""
    account = item.account
    return {
        "login": account.login,
        "principal_name": account.principal_name,
        "dn": account.dn,
        "enabled": account.enabled,
        "locked": account.locked,
        "password_last_set": account.password_last_set.isoformat() if account.password_last_set else None,
        "managed_by": item.pam_user_title or None,
    }


class Command(BaseCommand):
    help = (
        "List the accounts under a PAM directory's search base, marked with the PAM user that manages "
        "each, and optionally adopt them (rotation on, the configuration's schedule and complexity, no "
        "stored password: the first rotation sets one)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--directory", metavar="TITLE", required=True, help="The PAM directory's title.")
        parser.add_argument("--format", choices=["table", "json"], default="table")
        adopt = parser.add_mutually_exclusive_group()
        adopt.add_argument("--adopt", metavar="DN", nargs="+", help="Adopt these accounts (by DN).")
        adopt.add_argument("--adopt-all", action="store_true", help="Adopt every account not yet managed.")
        add_as_argument(parser)

    def handle(self, *args, **options):
        acting = Acting.from_options(options)
        directories = acting.scope(PamDirectory.objects.select_related("configuration"))
        directory = directories.filter(title=options["directory"]).first()
        if directory is None:
            raise CommandError(f"no PAM directory is titled {options['directory']!r}")
        acting.require(Action.DISCOVER, directory)
        try:
            if options["adopt"] or options["adopt_all"]:
                result = discovery.adopt(
                    directory,
                    None if options["adopt_all"] else options["adopt"],
                    actor=acting.actor,
                )
            found = discovery.discover(directory, actor=acting.actor)
        except ldap.DirectoryError as exc:
            raise CommandError(f"discovery failed: {exc}") from None
        except ValidationError as exc:
            raise CommandError(f"nothing adopted: {'; '.join(exc.messages)}") from None
        rows = [account_row(item) for item in found]
        if options["format"] == "json":
            self.stdout.write(json.dumps(rows, indent=2))
        else:
            write_table(self.stdout, rows)
        if options["adopt"] or options["adopt_all"]:
            self.stderr.write(
                f"Adopted {len(result.created)}; already managed {len(result.already_managed)}; "
                f"not found {len(result.not_found)}"
                + "".join(f"\n  not found: {dn}" for dn in result.not_found)
            )
            if result.not_found:
                raise CommandError("some DNs were not found on the directory")
