"""Manage API applications: create one (its token alone on stdout), list them, revoke tokens."""

from __future__ import annotations

import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from api import services
from api.models import Application
from records.models import PamConfiguration


def _operator() -> str:
    """Return the operating-system user, the actor of a command's audit events."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "manage.py"


class Command(BaseCommand):
    help = "Create, list and revoke API applications (Keeper's KSM applications) and their tokens."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create an application; print its token alone on stdout")
        create.add_argument("name")
        create.add_argument(
            "--configuration", action="append", required=True, help="a configuration title (repeatable)"
        )
        create.add_argument("--allow-cidr", action="append", default=[], help="an allowed client network")
        create.add_argument("--expires-days", type=int, help="the application expires after N days")
        token = sub.add_parser("token", help="issue another token to an application; print it alone")
        token.add_argument("name")
        token.add_argument("--expires-days", type=int)
        sub.add_parser("list", help="list applications and their tokens")
        revoke = sub.add_parser("revoke", help="revoke an application's tokens (all, or one by its hint)")
        revoke.add_argument("name")
        revoke.add_argument("--token", help="the token's hint, e.g. pr_app_AbCd")
        revoke.add_argument("--deactivate", action="store_true", help="also turn the application off")

    def handle(self, *args, **options):
        return getattr(self, f"do_{options['action']}")(options)

    def _application(self, name: str) -> Application:
        try:
            return Application.objects.get(name=name)
        except Application.DoesNotExist:
            raise CommandError(f"No application is named {name!r}.") from None

    def _days(self, days: int | None):
        if days is not None and not 1 <= days <= 3650:
            raise CommandError("--expires-days must be between 1 and 3650.")
        return services.expiry_in(days)

    def do_create(self, options):
        titles = options["configuration"]
        configurations = list(PamConfiguration.objects.filter(title__in=titles))
        missing = sorted(set(titles) - {c.title for c in configurations})
        if missing:
            raise CommandError(f"No configuration is titled: {', '.join(missing)}")
        try:
            _application, clear = services.create_application(
                options["name"],
                configurations,
                allowed_networks="\n".join(options["allow_cidr"]),
                expires_at=self._days(options["expires_days"]),
                actor_name=_operator(),
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        self.stdout.write(clear)

    def do_token(self, options):
        application = self._application(options["name"])
        _token, clear = services.issue_token(
            application=application, expires_at=self._days(options["expires_days"]), actor_name=_operator()
        )
        self.stdout.write(clear)

    def do_list(self, options):
        for application in Application.objects.prefetch_related("configurations", "tokens"):
            state = (
                "inactive" if not application.is_active else "expired" if application.is_expired else "active"
            )
            expires = f"{application.expires_at:%Y-%m-%d %H:%M}" if application.expires_at else "never"
            scope = ", ".join(str(c) for c in application.configurations.all()) or "-"
            networks = ", ".join(application.allowed_networks.split()) or "any"
            self.stdout.write(f"{application.name}\t{state}\texpires {expires}\t{scope}\tnetworks {networks}")
            for token in application.tokens.all():
                token_state = "revoked" if token.revoked_at else "active" if token.is_usable else "expired"
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                self.stdout.write(f"  {token.hint}…\t{token_state}\tlast used {used}")

    def do_revoke(self, options):
        application = self._application(options["name"])
        tokens = application.tokens.filter(revoked_at__isnull=True)
        if options["token"]:
            tokens = tokens.filter(hint=options["token"].rstrip("…."))
        revoked = sum(services.revoke_token(token, actor_name=_operator()) for token in tokens)
        if options["deactivate"] and application.is_active:
            Application.objects.filter(pk=application.pk).update(is_active=False)
            services.record_application_change(application, ["is_active"], actor=None)
        if not revoked and not options["deactivate"]:
            raise CommandError("No active token matched; nothing was revoked.")
        self.stderr.write(f"Revoked {revoked} token(s) of {application.name}.")
