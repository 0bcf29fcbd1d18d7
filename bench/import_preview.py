"""Import preview at scale: the dry run of a Keeper file with 10,000 users, as the browser preview runs it.

A file with one configuration, one OpenLDAP directory and N users (each with a password, a DN and
a weekly schedule) is parsed and dry-run through ``records.imports.import_projects`` on SQLite,
while a second connection holds SQLite's write lock: the preview must finish anyway (it only
reads). Then the browser's path: upload and preview page through Django's test Client (parse,
encrypted stash, dry run, a page listing every record). Then the same file is imported for real,
to show the confirm cost.

Last line: ``import_preview users=<n> bytes=<n> preview_s=<x> page_s=<x> confirm_s=<x>``; the preview
(page_s included) must stay under 10 s for 10,000 users.

Usage: python bench/import_preview.py [--users 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time

from _setup import django_in_tempdir


def document(users: int) -> str:
    """Return a Keeper project file with one directory and ``users`` nested users."""
    return json.dumps(
        {
            "project": "Bench",
            "pam_configuration": {"environment": "local", "title": "Bench import", "gateway_name": "default"},
            "pam_data": {
                "resources": [
                    {
                        "type": "pamDirectory",
                        "title": "Bench LDAP",
                        "host": "ldap.bench.test",
                        "port": "636",
                        "use_ssl": True,
                        "directory_type": "openldap",
                        "user_match": "ou=people,dc=bench,dc=test",
                        "pam_settings": {
                            "connection": {"protocol": "ssh", "administrative_credentials": "bench-0"}
                        },
                        "users": [
                            {
                                "type": "pamUser",
                                "title": f"bench-{number}",
                                "login": f"bench-{number}",
                                "password": f"Bench-Start-Pass-{number}!",
                                "distinguished_name": f"uid=bench-{number},ou=people,dc=bench,dc=test",
                                "rotation_settings": {
                                    "rotation": "general",
                                    "enabled": "on",
                                    "schedule": {
                                        "type": "WEEKLY",
                                        "weekday": "SUNDAY",
                                        "time": "02:00",
                                        "tz": "UTC",
                                    },
                                },
                            }
                            for number in range(users)
                        ],
                    }
                ]
            },
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args()
    os.environ["PAMROTATE_REQUIRE_MFA"] = "0"
    django_in_tempdir()
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from audit.actors import Actor
    from records import imports, keeper
    from records.models import PamUser

    text = document(args.users)
    # Another process's write transaction: the preview must not need the lock.
    blocker = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.1)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.perf_counter()
    report = imports.import_projects(keeper.parse(text), dry_run=True)
    preview = time.perf_counter() - started
    blocker.rollback()
    blocker.close()
    assert report.ok and len(report.created) == args.users + 2, report.lines()[:5]
    assert not PamUser.objects.exists()

    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)  # the manifest the templates need
    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.create_superuser("bench", "bench@example.test", "bench-pass-1"))
    started = time.perf_counter()
    upload = SimpleUploadedFile("bench.json", text.encode(), "application/json")
    response = client.post(reverse("records:import"), {"file": upload})
    assert response.status_code == 302, response.status_code
    page = client.get(reverse("records:import-preview"))
    page_time = time.perf_counter() - started
    assert page.status_code == 200 and f"bench-{args.users - 1}" in page.content.decode()

    started = time.perf_counter()
    imports.import_projects(keeper.parse(text), actor=Actor.system("bench"))
    confirm = time.perf_counter() - started
    assert PamUser.objects.count() == args.users
    print(
        f"dry run (write lock held elsewhere): {preview:.2f} s; upload + preview page: {page_time:.2f} s; "
        f"confirm (write): {confirm:.2f} s"
    )
    print(
        f"import_preview users={args.users} bytes={len(text)} preview_s={preview:.2f} page_s={page_time:.2f} "
        f"confirm_s={confirm:.2f}"
    )


if __name__ == "__main__":
    main()
