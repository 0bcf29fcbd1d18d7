"""Manage API applications: create one (its token alone on stdout), list them, revoke tokens."""

from __future__ import annotations

import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from api import approle, services
from api.models import Application, AppRole
from audit.actors import Actor
from records.models import PamConfiguration


def _operator() -> Actor:
    """Return the operating-system user, the actor of a command's audit events."""
    try:
        return Actor.system(getpass.getuser())
    except (KeyError, OSError):
        return Actor.system("manage.py")


class Command(BaseCommand):
    help = "Create, list and revoke API applications (Keeper's KSM applications), their tokens and AppRole secret IDs."

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
        role = sub.add_parser("approle", help="turn AppRole on (or change its token TTLs); print the role ID")
        role.add_argument("name")
        role.add_argument(
            "--token-ttl", type=int, default=3600, help="seconds a login's token lives (default 3600)"
        )
        role.add_argument("--token-max-ttl", type=int, default=86400, help="renewal limit in seconds (86400)")
        secret = sub.add_parser("secret-id", help="issue an AppRole secret ID; print it alone on stdout")
        secret.add_argument("name")
        secret.add_argument("--ttl-hours", type=int, help="the secret ID expires after N hours")
        secret.add_argument("--uses", type=int, help="the number of logins it allows (default unlimited)")
        secret.add_argument(
            "--allow-cidr", action="append", default=[], help="a network logins may come from"
        )
        sub.add_parser("list", help="list applications and their tokens")
        revoke = sub.add_parser("revoke", help="revoke an application's tokens (all, or one by its hint)")
        revoke.add_argument("name")
        revoke.add_argument("--token", help="the token's hint, e.g. pr_app_AbCd")
        revoke.add_argument("--deactivate", action="store_true", help="also turn the application off")

    def handle(self, *args, **options):
        self.actor = _operator()
        return getattr(self, f"do_{options['action'].replace('-', '_')}")(options)

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
                actor=self.actor,
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        self.stdout.write(clear)

    def do_token(self, options):
        application = self._application(options["name"])
        _token, clear = services.issue_token(
            application=application, expires_at=self._days(options["expires_days"]), actor=self.actor
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
            role = AppRole.objects.filter(application=application).first()
            if role is not None:
                self.stdout.write(
                    f"  approle {role.role_id}\ttoken ttl {role.token_ttl} s, max {role.token_max_ttl} s"
                )
                for secret_id in role.secret_ids.all():
                    self.stdout.write(
                        f"  {secret_id.hint}…\tsecret ID {secret_id.state}\tlogins left {secret_id.uses_left}"
                    )
            for token in application.tokens.all():
                token_state = "revoked" if token.revoked_at else "active" if token.is_usable else "expired"
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                self.stdout.write(f"  {token.hint}…\t{token_state}\tlast used {used}")

    def do_revoke(self, options):
        application = self._application(options["name"])
        tokens = application.tokens.filter(revoked_at__isnull=True)
        if options["token"]:
            tokens = tokens.filter(hint=options["token"].rstrip("…."))
        revoked = sum(services.revoke_token(token, actor=self.actor) for token in tokens)
        if not options[
            "token"
        ]:  # the application's revocation: its secret IDs (and their logins' tokens) too
            revoked += approle.revoke_application_secret_ids(application, actor=self.actor)
        if options["deactivate"] and application.is_active:
            Application.objects.filter(pk=application.pk).update(is_active=False)
            services.record_application_change(application, ["is_active"], actor=self.actor)
        if not revoked and not options["deactivate"]:
            raise CommandError("No active token matched; nothing was revoked.")
        self.stderr.write(f"Revoked {revoked} token(s) and secret ID(s) of {application.name}.")

    def do_approle(self, options):
        application = self._application(options["name"])
        try:
            role = approle.configure(
                application,
                token_ttl=options["token_ttl"],
                token_max_ttl=options["token_max_ttl"],
                actor=self.actor,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(str(role.role_id))

    def do_secret_id(self, options):
        application = self._application(options["name"])
        role = AppRole.objects.filter(application=application).first()
        if role is None:
            raise CommandError(
                f"AppRole is off for {application.name}: run `pam_application approle {application.name}`."
            )
        hours, uses = options["ttl_hours"], options["uses"]
        if hours is not None and not 1 <= hours <= 24 * 3650:
            raise CommandError("--ttl-hours must be between 1 and 87600.")
        if uses is not None and uses < 1:
            raise CommandError("--uses must be at least 1.")
        try:
            _secret_id, clear = approle.issue_secret_id(
                role,
                ttl_seconds=hours * 3600 if hours else None,
                uses=uses,
                allowed_networks="\n".join(options["allow_cidr"]),
                actor=self.actor,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"role ID {role.role_id}")
        self.stdout.write(clear)
