"""What a caller of the API may do: DRF's side of accounts.policy, the one access policy."""

from __future__ import annotations

from rest_framework import permissions

from accounts import policy
from accounts.policy import Action
from api.authentication import ApplicationCaller
from records.models import PamUser

# What each HTTP method does to a record, as the policy names it.
METHOD_ACTIONS = {
    "GET": Action.VIEW,
    "HEAD": Action.VIEW,
    "OPTIONS": Action.VIEW,
    "POST": Action.CREATE,
    "PUT": Action.EDIT,
    "PATCH": Action.EDIT,
    "DELETE": Action.DELETE,
}


def application_of(request):
    """Return the calling application, or None when a person calls."""
    user = getattr(request, "user", None)
    return user.application if isinstance(user, ApplicationCaller) else None


def second_factor_ok(request) -> bool:
    """Return whether a person's call counts as verified (a verified session, or a personal token)."""
    return policy.actor_of(request).verified


def may_read_credential(request, pam_user: PamUser) -> bool:
    """Return whether this caller may read this account's current password (the policy's "read by API")."""
    return policy.can(request, Action.READ_API, pam_user)


def may_read_previous(request, pam_user: PamUser) -> bool:
    """Return whether this caller may also read the previous password (the policy's "reveal previous")."""
    return policy.can(request, Action.REVEAL_PREVIOUS, pam_user)


def may_rotate(request, pam_user: PamUser) -> bool:
    """Return whether this caller may ask for a rotation of this account."""
    return policy.can(request, Action.ROTATE, pam_user)


def may_view_attempt(request, attempt) -> bool:
    """Return whether this caller may see a rotation attempt (an application: of its accounts only)."""
    return policy.can(request, Action.VIEW_ATTEMPTS, attempt)


class Policy(permissions.BasePermission):
    """Ask accounts.policy: the view's ``policy_actions`` (method → action) or METHOD_ACTIONS.

    ``has_permission`` asks for the action somewhere (lists, creation); ``has_object_permission``
    for the record itself. Lists are narrowed to the caller's configurations by ``scoped``.
    """

    def action(self, request, view) -> str:
        return getattr(view, "policy_actions", {}).get(request.method) or METHOD_ACTIONS.get(
            request.method, Action.EDIT
        )

    def has_permission(self, request, view) -> bool:
        reason = policy.decide(request, self.action(request, view))
        if reason:
            self.message = reason
        return not reason

    def has_object_permission(self, request, view, obj) -> bool:
        reason = policy.decide(request, self.action(request, view), obj)
        if reason:
            self.message = reason
        return not reason


def scoped(request, queryset, path: str = "configuration", action: str = Action.VIEW):
    """Return the queryset narrowed to what the caller may see (accounts.policy.scope)."""
    return policy.scope(request, queryset, path, action)
