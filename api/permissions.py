"""What a caller of the API may do: one function per decision, so that a rule is added in one place."""

from __future__ import annotations

from rest_framework import permissions

from accounts import mfa
from api.authentication import ApplicationCaller
from api.models import Token
from records.models import PamUser


def application_of(request):
    """Return the calling application, or None when a person calls."""
    user = getattr(request, "user", None)
    return user.application if isinstance(user, ApplicationCaller) else None


def in_scope(request, pam_user: PamUser) -> bool:
    """Return whether the calling application's configurations include this account's."""
    application = application_of(request)
    return (
        application is not None and application.configurations.filter(pk=pam_user.configuration_id).exists()
    )


def second_factor_ok(request) -> bool:
    """Return whether a person's call may do what needs a second factor.

    A session must be verified (accounts.mfa, when PAMROTATE_REQUIRE_MFA is on); a personal token
    counts as verified, because only a verified session can create one.
    """
    return isinstance(request.auth, Token) or mfa.session_is_verified(request)


def may_read_credential(request, pam_user: PamUser) -> bool:
    """Return whether this caller may read this account's password.

    Applications: accounts of their configurations. People (session or personal token):
    the "reveal password" right (Operators and Administrators) and a second factor.
    """
    if application_of(request) is not None:
        return in_scope(request, pam_user)
    return request.user.has_perm("records.reveal_password") and second_factor_ok(request)


def may_rotate(request, pam_user: PamUser) -> bool:
    """Return whether this caller may ask for a rotation of this account.

    Applications: accounts of their configurations. People: the "rotate credentials" right
    and a second factor.
    """
    if application_of(request) is not None:
        return in_scope(request, pam_user)
    return request.user.has_perm("records.rotate_credentials") and second_factor_ok(request)


def may_view_attempt(request, attempt) -> bool:
    """Return whether this caller may see a rotation attempt (an application: of its accounts only)."""
    if application_of(request) is not None:
        return in_scope(request, attempt.user)
    return request.user.has_perm("rotation.view_rotationattempt")


class PeopleOnly(permissions.BasePermission):
    """Refuse applications: they may read credentials and ask for rotations, nothing else."""

    message = "An application may only read credentials and request rotations of its accounts."

    def has_permission(self, request, view) -> bool:
        return application_of(request) is None


class ModelPermissions(permissions.DjangoModelPermissions):
    """The UI's roles: view_* to read, add/change/delete_* to write (Administrators)."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }
