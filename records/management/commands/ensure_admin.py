"""Create a superuser with a random password, printed once, when there is none."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first administrator (username 'admin', random password shown once) if no superuser exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(15)
        user = User.objects.create_superuser(options["username"], "", password)
        user.groups.add(Group.objects.get(name="Administrators"))
        # Printed once, to the operator's terminal, never logged.
        self.stdout.write(
            self.style.WARNING(
                f"Created administrator '{user.username}' with password: {password}\n"
                "It is shown only now; change it after signing in, then set up your second factor and\n"
                "manage people and roles at /accounts/people/ (Your account: /accounts/security/)."
            )
        )
