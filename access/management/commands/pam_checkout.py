"""``manage.py pam_checkout``: check accounts out and in, renew, and show who holds what."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from access import services
from access.models import CheckOut, EndReason, Pool
from access.services import Caller, Refused, Unavailable
from accounts.cli import Acting, add_as_argument
from records.models import PamUser


class Command(BaseCommand):
    help = "Check accounts out and in (check-in rotates the password), renew a check-out, show status."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="verb", required=True)
        out = sub.add_parser(
            "out", help="check out an account (or any free account of --pool); prints the password"
        )
        out.add_argument("account", nargs="?", help="the account's title, login or uid")
        out.add_argument("--pool", help="a pool's name: check out any free account of it")
        out.add_argument("--ttl", type=int, help="seconds (at most the maximum TTL)")
        out.add_argument("--as", dest="person", help="the person who holds it (their rights apply)")
        checkin = sub.add_parser("in", help="check in (rotates the password)")
        checkin.add_argument("checkout", type=int, help="the check-out's id (see status)")
        checkin.add_argument("--as", dest="person", help="the holder; without it the check-in is forced")
        renew = sub.add_parser("renew", help="extend a check-out up to its maximum TTL")
        renew.add_argument("checkout", type=int)
        renew.add_argument("--as", dest="person", required=True)
        renew.add_argument("--ttl", type=int)
        status = sub.add_parser("status", help="list the accounts held now")
        status.add_argument("--pool")
        add_as_argument(status, help="show only the check-outs of this person's configurations")

    def handle(self, *args, **options):
        try:
            getattr(self, f"do_{options['verb']}")(options)
        except (Unavailable, Refused, PermissionDenied) as exc:
            raise CommandError(str(exc) or "permission denied") from None

    def caller(self, options) -> Caller:
        acting = Acting.from_options(options)
        return Caller.system(acting.name) if acting.person is None else Caller.person_acting(acting.person)

    def do_out(self, options):
        caller = self.caller(options)
        if options["pool"]:
            pool = Pool.objects.filter(name=options["pool"]).first()
            if pool is None:
                raise CommandError(f"no pool {options['pool']!r}")
            checkout, password = services.check_out_from_pool(pool, caller, ttl=options["ttl"])
        else:
            name = options["account"] or ""
            accounts = Acting.from_options(options).scope(PamUser.objects)
            matches = list(accounts.filter(Q(title=name) | Q(login=name) | Q(uid=name))[:2])
            if len(matches) != 1:
                raise CommandError(f"account {name!r}: {'not found' if not matches else 'ambiguous'}")
            checkout, password = services.check_out(matches[0], caller, ttl=options["ttl"])
        self.stdout.write(
            f"check-out {checkout.pk}: {checkout.user.login} until {checkout.expires_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        self.stdout.write(password)

    def _checkout(self, pk: int) -> CheckOut:
        checkout = CheckOut.objects.select_related("user", "pool").filter(pk=pk).first()
        if checkout is None:
            raise CommandError(f"no check-out {pk}")
        return checkout

    def do_in(self, options):
        checkout, caller = self._checkout(options["checkout"]), self.caller(options)
        reason = EndReason.CHECKED_IN if options.get("person") else EndReason.FORCED
        services.check_in(checkout, caller, reason=reason)
        self.stdout.write(f"checked in {checkout.user.login}; its password is being rotated")

    def do_renew(self, options):
        checkout = services.renew(self._checkout(options["checkout"]), self.caller(options), options["ttl"])
        self.stdout.write(f"renewed until {checkout.expires_at:%Y-%m-%d %H:%M:%S} UTC")

    def do_status(self, options):
        held = CheckOut.objects.held().select_related("user", "pool").order_by("expires_at")
        held = Acting.from_options(options).scope(held, "user__configuration")
        if options["pool"]:
            held = held.filter(pool__name=options["pool"])
        for checkout in held:
            pool = f" [{checkout.pool}]" if checkout.pool_id else ""
            self.stdout.write(
                f"{checkout.pk}\t{checkout.user.login}{pool}\t{checkout.holder_name}\t{checkout.seconds_left()} s left"
            )
