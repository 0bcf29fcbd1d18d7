"""Change a password on a directory: an administrative reset, or the account changing its own.

Active Directory gets ``unicodePwd`` (replace for a reset, delete old + add new for a
self-change); OpenLDAP gets the RFC 3062 Password Modify operation, which the server hashes.
"""

from __future__ import annotations

import ldap3

from rotation.ldap.connection import _Attempt, _run
from rotation.ldap_errors import ADMIN, SELF, DirectoryError, DirectorySpec


def set_password(
    spec: DirectorySpec, admin_user: str, admin_password: str, user_dn: str, new_password: str
) -> None:
    """Reset ``user_dn``'s password to ``new_password`` with the administrative credential."""

    def action(attempt: _Attempt) -> None:
        conn = attempt.bind(admin_user, admin_password, who=ADMIN, reuse=True)
        _change(attempt, conn, user_dn, new_password, old_password=None, who=ADMIN)

    _run(_Attempt(spec, (admin_password, new_password)), action)


def change_own_password(spec: DirectorySpec, user_dn: str, old_password: str, new_password: str) -> None:
    """Change ``user_dn``'s own password from ``old_password`` to ``new_password``, bound as itself."""

    def action(attempt: _Attempt) -> None:
        if not old_password:
            attempt.fail(
                DirectoryError.CONFIGURATION, "the account's current password is empty: store it first"
            )
        conn = attempt.bind(user_dn, old_password, who=SELF)
        _change(attempt, conn, user_dn, new_password, old_password=old_password, who=SELF)

    _run(_Attempt(spec, (old_password, new_password)), action)


def _change(
    attempt: _Attempt, conn: ldap3.Connection, user_dn: str, new_password: str, *, old_password, who: str
) -> None:
    """Send the new password on a bound connection; once sent, a lost answer means an unknown outcome."""
    if not new_password:
        attempt.fail(DirectoryError.REJECTED, "the new password is empty")
    if attempt.spec.is_ad:
        # unicodePwd: replace for a reset, delete old + add new for a self-change.
        attempt.sent = True
        ok = conn.extend.microsoft.modify_password(user_dn, new_password, old_password or None)
    else:
        # RFC 3062 Password Modify: the server hashes it; a clear userPassword is never written.
        attempt.sent = True
        ok = conn.extend.standard.modify_password(
            user=user_dn, old_password=old_password or None, new_password=new_password
        )
    if ok is not True:
        attempt.fail_result(conn.result, who)
