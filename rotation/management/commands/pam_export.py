"""Export configurations, directories and users as Keeper `pam project import` JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from accounts.cli import Acting, add_as_argument
from accounts.policy import Action
from audit import events as audit
from audit.models import AuditEvent, Category, Outcome
from records import keeper_export
from records.models import PamConfiguration, PamUser


def write_private(path: Path, text: str) -> None:
    """Write a file created 0600: with --include-secrets it holds passwords in clear."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None


def as_json(document) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class Command(BaseCommand):
    help = (
        "Write the records as Keeper PAM project JSON that Keeper's `pam project import` and pam_import "
        "read back: one project per configuration (-o DIR writes one file each). Passwords are left "
        "out unless --include-secrets is given; exporting them is recorded in the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("--configuration", metavar="TITLE", help="Export this configuration only.")
        parser.add_argument(
            "--include-secrets", action="store_true", help="Include passwords in clear (audited)."
        )
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE|DIR",
            help="Write to FILE (one configuration), or one file per configuration into the directory DIR "
            "(files mode 0600); without it, standard output (several configurations: a JSON list, "
            "which pam_import reads and Keeper does not).",
        )
        add_as_argument(parser)

    def handle(self, *args, **options):
        acting = Acting.from_options(options)
        if options["include_secrets"]:
            acting.require(Action.EXPORT_SECRETS)
        configurations = acting.scope(PamConfiguration.objects.order_by("title"), "pk")
        if options["configuration"]:
            configurations = configurations.filter(title=options["configuration"])
            if not configurations.exists():
                raise CommandError(f"no configuration is titled {options['configuration']!r}")
        elif not configurations.exists():
            raise CommandError("there are no configurations to export")
        include_secrets = options["include_secrets"]
        output = Path(options["output"]) if options["output"] else None
        count = configurations.count()
        if output is not None and output.is_dir():
            targets = self.write_directory(output, configurations, include_secrets)
            target = f"{output}/ ({', '.join(path.name for path in targets)})"
        elif output is not None:
            if count > 1:
                raise CommandError(
                    f"{count} configurations: give a directory (-o DIR writes one file each, as Keeper's "
                    "importer reads them) or pick one with --configuration"
                )
            write_private(
                output,
                as_json(keeper_export.export_document(configurations, include_secrets=include_secrets)),
            )
            target = str(output)
        else:
            self.stdout.write(
                as_json(keeper_export.export_document(configurations, include_secrets=include_secrets)),
                ending="",
            )
            target = "standard output"
        if include_secrets:
            self.audit_export(configurations, target, acting)
        if output is not None:
            self.stderr.write(f"Wrote {count} configuration(s) to {target}.")

    def write_directory(self, directory: Path, configurations, include_secrets: bool) -> list[Path]:
        """Write one project file per configuration, named after its title; return the paths."""
        paths: list[Path] = []
        for configuration in configurations:
            stem = slugify(configuration.title) or "configuration"
            path = directory / f"{stem}.json"
            number = 2
            while path in paths:
                path = directory / f"{stem}-{number}.json"
                number += 1
            write_private(
                path, as_json(keeper_export.export_project(configuration, include_secrets=include_secrets))
            )
            paths.append(path)
        return paths

    def audit_export(self, configurations, target: str, acting: Acting) -> None:
        """Record one security event per account whose password left pamrotate."""
        users = PamUser.objects.filter(configuration__in=configurations).exclude(password_encrypted="")
        for user in users:
            audit.record_event(
                AuditEvent.PASSWORD_EXPORTED,
                instance=user,
                actor=acting.actor,
                outcome=Outcome.OK,
                message=f"Password exported in clear by pam_export --include-secrets to {target}",
                category=Category.SECURITY,
            )
