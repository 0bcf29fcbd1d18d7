"""Export configurations, directories and users as Keeper `pam project import` JSON."""

from __future__ import annotations

import json
import os

from django.core.management.base import BaseCommand, CommandError

from records import keeper
from records.management.commands.pam_import import os_user
from records.models import PamConfiguration, PamUser
from rotation import audit
from rotation.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Write the records as Keeper PAM project JSON that pam_import reads back. Passwords are left "
        "out unless --include-secrets is given; exporting them is recorded in the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("--configuration", metavar="TITLE", help="Export this configuration only.")
        parser.add_argument(
            "--include-secrets", action="store_true", help="Include passwords in clear (audited)."
        )
        parser.add_argument(
            "-o", "--output", metavar="FILE", help="Write to FILE (mode 0600) instead of stdout."
        )

    def handle(self, *args, **options):
        configurations = PamConfiguration.objects.order_by("title")
        if options["configuration"]:
            configurations = configurations.filter(title=options["configuration"])
            if not configurations.exists():
                raise CommandError(f"no configuration is titled {options['configuration']!r}")
        elif not configurations.exists():
            raise CommandError("there are no configurations to export")
        include_secrets = options["include_secrets"]
        document = keeper.export_document(configurations, include_secrets=include_secrets)
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        target = options["output"] or "standard output"
        if options["output"]:
            try:
                # Created private: with --include-secrets the file holds passwords in clear.
                descriptor = os.open(options["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(text)
            except OSError as exc:
                raise CommandError(f"cannot write {options['output']}: {exc.strerror}") from None
        else:
            self.stdout.write(text, ending="")
        if include_secrets:
            self.audit_export(configurations, target)
        if options["output"]:
            self.stderr.write(f"Wrote {configurations.count()} configuration(s) to {options['output']}.")

    def audit_export(self, configurations, target: str) -> None:
        """Record one security event per account whose password left pamrotate."""
        actor_name = os_user()
        users = PamUser.objects.filter(configuration__in=configurations).exclude(password_encrypted="")
        for user in users:
            audit.record_event(
                AuditEvent.PASSWORD_EXPORTED,
                instance=user,
                actor_name=actor_name,
                outcome="ok",
                message=f"Password exported in clear by pam_export --include-secrets to {target}",
                category="security",
            )
