"""Commands' ``--as USER``: act within one person's scope and roles, through the policy.

Without ``--as`` a command acts as the system (the operator of the host, named by the OS user);
with ``--as carol`` its lists are narrowed by ``policy.scope`` and its actions asked of
``policy.require`` for carol, and the audit log names her.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError

from accounts import policy
from audit.actors import Actor

AS_HELP = "Act as this person (a username): only within their configurations and roles; audited as them."


def os_user() -> str:
    """Return the operating-system user running the command (the system actor's name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def add_as_argument(parser, *, dest: str = "person", required: bool = False, help: str = AS_HELP) -> None:
    """Add the ``--as USER`` option to a command's (or a verb's) parser."""
    parser.add_argument("--as", dest=dest, metavar="USER", required=required, help=help)


@dataclass(frozen=True)
class Acting:
    """Who a command acts as: ``who`` for the policy, ``actor`` for the audit log, ``person`` or None."""

    who: object
    actor: Actor
    person: object = None

    @classmethod
    def from_options(cls, options: dict, dest: str = "person") -> Acting:
        """Return the person named by ``--as`` (CommandError when unknown or inactive), else the system."""
        name = options.get(dest)
        if not name:
            return cls(policy.SYSTEM, Actor.system(os_user()))
        person = get_user_model().objects.filter(username=name).first()
        if person is None or not person.is_active:
            raise CommandError(f"--as {name}: no active person has that username")
        return cls(policy.Principal(user=person, verified=True), Actor.person(person), person)

    @property
    def name(self) -> str:
        return self.actor.name or "pamrotate"

    def scope(self, queryset, path: str = "configuration", action: str = policy.Action.VIEW):
        """Return the queryset narrowed to what this actor may do the action on."""
        return policy.scope(self.who, queryset, path, action)

    def require(self, action: str, target=None) -> None:
        """Raise CommandError with the policy's reason unless this actor may do the action."""
        try:
            policy.require(self.who, action, target)
        except PermissionDenied as exc:
            raise CommandError(f"refused for {self.name}: {exc}") from None
