"""Import a Keeper `pam project import` JSON file: configuration, directories and users."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.cli import (  # noqa: F401 (os_user: other commands import it here)
    Acting,
    add_as_argument,
    os_user,
)
from accounts.policy import Action
from records import import_report, imports, keeper


class Command(BaseCommand):
    help = (
        "Import a Keeper PAM project JSON file. Records are matched by title and existing ones are "
        "skipped; any error rejects the whole file and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help='The project JSON file, or "-" for standard input.')
        parser.add_argument("--dry-run", action="store_true", help="Validate and report; write nothing.")
        add_as_argument(parser)

    def handle(self, *args, **options):
        path = options["file"]
        acting = Acting.from_options(options)
        acting.require(Action.IMPORT)
        try:
            # One byte past the limit is enough for parse to refuse the file without reading it all.
            if path == "-":
                text = sys.stdin.read(keeper.MAX_BYTES + 1)
            else:
                with open(path, "rb") as handle:
                    text = handle.read(keeper.MAX_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            projects = keeper.parse(text)
            report = imports.import_projects(projects, actor=acting.actor, dry_run=options["dry_run"])
        except import_report.ImportRejected as exc:
            exc.report.hide(imports.passwords_in(projects))
            for line in exc.report.lines():
                self.stderr.write(line)
            raise CommandError(f"{path}: {exc}") from None
        except keeper.KeeperError as exc:
            raise CommandError(f"{path}: {exc}; nothing was written") from None
        report.hide(imports.passwords_in(projects))
        for line in report.lines():
            self.stdout.write(line)
        if report.dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing was written."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported {path}: {len(report.created)} records created."))
