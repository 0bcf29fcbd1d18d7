"""Start a local slapd with sample accounts, point records at it, and run the app."""

from __future__ import annotations

import shutil
import sys
import tempfile

from django.core.management.base import BaseCommand
from django.db import transaction

from audit.actors import Actor
from records import schedules
from records.changes import save_record
from records.management.commands.serve import supervise
from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser

DEMO_ACCOUNTS = ["svc-backup", "svc-reporting", "app-deploy"]


class Command(BaseCommand):
    help = "Run a demo: a throwaway OpenLDAP server with sample accounts, records pointing at it, the web app and a worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument(
            "--seed-only", action="store_true", help="Start slapd and seed, then exit (for tests)."
        )

    def handle(self, *args, **options):
        from tests.ldapservers import SlapdServer

        workdir = tempfile.mkdtemp(prefix="pamrotate-demo-")
        server = SlapdServer(workdir)
        server.start()
        self.stdout.write(
            f"Demo OpenLDAP server on ldaps://127.0.0.1:{server.ldaps_port} (state in {workdir})"
        )
        with transaction.atomic():
            self.seed(server)
        if options["seed_only"]:
            server.close()
            shutil.rmtree(workdir, ignore_errors=True)
            return
        address = f"{options['host']}:{options['port']}"
        try:
            supervise(
                [
                    [sys.executable, "manage.py", "qcluster"],
                    [sys.executable, "manage.py", "runserver", address, "--noreload"],
                ],
                on_start=lambda: self.stdout.write(
                    f"pamrotate demo: http://{address}/ - sign in, open Users, pick svc-backup, click "
                    "Rotate now. Ctrl-C stops everything."
                ),
                restart=(0,),
            )
        finally:
            server.close()
            shutil.rmtree(workdir, ignore_errors=True)

    def seed(self, server) -> None:
        configuration, _ = PamConfiguration.objects.update_or_create(
            title="Demo network", defaults={"gateway": "default", "rotation_enabled": True}
        )
        admin, _ = PamUser.objects.update_or_create(
            title="Demo rotator",
            defaults={
                "configuration": configuration,
                "login": server.rotator_dn,
                "distinguished_name": server.rotator_dn,
            },
        )
        admin.set_password(server.rotator_password)
        admin.save()
        directory, _ = PamDirectory.objects.update_or_create(
            title="Demo OpenLDAP",
            defaults={
                "configuration": configuration,
                "hostname": "127.0.0.1",
                "port": server.ldaps_port,
                "use_ssl": True,
                "ca_certificate": server.tls.ca_pem,
                "directory_type": DirectoryType.OPENLDAP,
                "domain_name": "example.test",
                "user_match": server.people_dn,
                "administrative_credential": admin,
            },
        )
        for name in DEMO_ACCOUNTS:
            password = "Demo-" + name + "-1!"
            dn = server.add_user(name, password)
            user, created = PamUser.objects.update_or_create(
                title=name,
                defaults={
                    "configuration": configuration,
                    "login": name,
                    "distinguished_name": dn,
                    "resource": directory,
                    "rotation_enabled": True,
                    "schedule_type": schedules.USE_DEFAULT
                    if name == "svc-reporting"
                    else schedules.ON_DEMAND,
                },
            )
            user.set_password(password)
            save_record(user, created=created, actor=Actor.system("demo"))
        self.stdout.write(f"Seeded configuration, directory and {len(DEMO_ACCOUNTS)} accounts.")
