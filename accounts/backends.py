"""The directory sign-in backend: django-auth-ldap for directory accounts only, roles from groups."""

from __future__ import annotations

from django.conf import settings
from django_auth_ldap.backend import LDAPBackend
from django_auth_ldap.config import LDAPGroupQuery

from accounts import roles, signin
from accounts.models import DirectoryGroupMembership, Grant, Profile, Source
from audit.models import AuditEvent


class DirectoryBackend(LDAPBackend):
    """django-auth-ldap, off unless configured, for directory accounts only, with roles from groups."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.DIRECTORY_SIGNIN:
            return None
        self._admit_granted_groups()
        return super().authenticate(request, username=username, password=password, **kwargs)

    def _admit_granted_groups(self) -> None:
        """Let members of a group with a scoped grant sign in too (the role groups' requirement, widened)."""
        required = self.settings.REQUIRE_GROUP
        granted = list(Grant.objects.exclude(group_dn="").values_list("group_dn", flat=True).distinct())
        if required is None or not granted:
            return
        query = required if isinstance(required, LDAPGroupQuery) else LDAPGroupQuery(required)
        for dn in granted:
            query |= LDAPGroupQuery(dn)
        self.settings.REQUIRE_GROUP = query  # this backend instance's settings: Django makes one per sign-in

    def get_or_build_user(self, username, ldap_user):
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and Profile.source_of(user) == Source.LOCAL:
            # The same name in the directory must not take over a local (break-glass) account.
            raise ldap_user.AuthenticationFailed("a local account has this name")
        return user, built

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None:
            apply_directory_roles(user, ldap_user)
        return user

    def ldap_to_django_username(self, username):
        return username.strip().lower()


def apply_directory_roles(user, ldap_user) -> None:
    """Give a directory user exactly the roles their groups map to, and mark the account as a directory one."""
    groups = ldap_user._get_groups()
    wanted = [role for role, dn in settings.DIRECTORY_ROLE_GROUPS.items() if groups.is_member_of(dn)]
    if roles.set_roles(user, wanted):
        signin.audit(ldap_user._request, AuditEvent.ROLE_CHANGED, user=user,
                     note=f"roles from directory groups: {', '.join(wanted) or 'none'}")  # fmt: skip
    Profile.mark(user, Source.DIRECTORY)
    record_group_grants(user, groups)


def record_group_grants(user, groups) -> None:
    """Remember which granted directory groups the person is in now: scoped grants follow them (at each sign-in)."""
    granted = Grant.objects.exclude(group_dn="").values_list("group_dn", flat=True).distinct()
    DirectoryGroupMembership.replace(user, [dn for dn in granted if groups.is_member_of(dn)])
