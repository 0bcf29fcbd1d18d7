"""Who did something: one value built once per request (or named by a command) and handed to the log."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

PERSON, APPLICATION, SYSTEM = "person", "application", "system"
USER_AGENT_LIMIT = 200


@dataclass(frozen=True)
class Actor:
    """A person, an application or the system, with the client address and user agent it came from."""

    kind: str = SYSTEM
    name: str = ""
    user: Any = None  # the person's account; None for an application, the system or a stranger
    address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request, *, user=None, name: str = "") -> Actor:
        """Return who makes a request; ``user`` and ``name`` stand in before sign-in completes."""
        meta = getattr(request, "META", None) or {}
        user = user if user is not None else getattr(request, "user", None)
        address = meta.get("REMOTE_ADDR") or None
        agent = str(meta.get("HTTP_USER_AGENT", ""))[:USER_AGENT_LIMIT]
        if user is None or not user.is_authenticated:
            return cls(PERSON, name[:150], None, address, agent)
        if getattr(user, "application", None) is not None:
            # api.authentication.ApplicationCaller: an application's token, named "application:NAME".
            return cls(APPLICATION, user.get_username()[:150], None, address, agent)
        return cls(PERSON, name[:150] or user.get_username()[:150], user, address, agent)

    @classmethod
    def person(cls, user, *, address: str | None = None) -> Actor:
        """Return a person acting outside a request (a task the person asked for)."""
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(PERSON, address=address or None)
        return cls(PERSON, user.get_username()[:150], user, address or None)

    @classmethod
    def system(cls, name: str = "") -> Actor:
        """Return pamrotate itself, or a command run by an operating-system user."""
        return cls(SYSTEM, name[:150])

    def renamed(self, name: str) -> Actor:
        """Return the same actor under the name an event shows ("alice: check-in (expired)")."""
        return replace(self, name=name[:150])


# Who an event names when nobody asked: pamrotate itself (a worker, the scheduler), unnamed.
SYSTEM_ACTOR = Actor()
