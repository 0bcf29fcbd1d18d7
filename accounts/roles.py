"""The three roles (groups made by records/migrations/0002_roles.py) as people see them."""

from __future__ import annotations

from django.contrib.auth.models import Group

VIEWERS, OPERATORS, ADMINISTRATORS = "Viewers", "Operators", "Administrators"
ROLES = (VIEWERS, OPERATORS, ADMINISTRATORS)
# Roles that can reveal or rotate, and so must use a second factor.
ACTING_ROLES = (OPERATORS, ADMINISTRATORS)
NO_ROLE = ""


def role_names(user) -> list[str]:
    """Return the role groups a user is in, in ROLES order."""
    names = {group.name for group in user.groups.all()}
    return [role for role in ROLES if role in names]


def role_of(user) -> str:
    """Return a user's highest role, or NO_ROLE."""
    names = role_names(user)
    return names[-1] if names else NO_ROLE


def can_act(user) -> bool:
    """Return whether a user is an Operator or an Administrator on some configuration (accounts.policy)."""
    from accounts import policy

    return policy.highest_role(user) >= policy.Role.OPERATOR


def is_administrator(user) -> bool:
    """Return whether a user is an Administrator on every configuration (accounts.policy's "manage people")."""
    from accounts import policy

    return user.is_authenticated and policy.can(user, policy.Action.MANAGE_PEOPLE)


def set_roles(user, wanted: list[str]) -> bool:
    """Make the user's role groups exactly ``wanted``; return whether anything changed."""
    current = set(role_names(user))
    wanted_set = set(wanted) & set(ROLES)
    if current == wanted_set:
        return False
    user.groups.remove(*Group.objects.filter(name__in=current - wanted_set))
    user.groups.add(*Group.objects.filter(name__in=wanted_set - current))
    return True
