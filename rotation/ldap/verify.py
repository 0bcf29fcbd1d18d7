"""Verify a password by binding with it: the proof that a change took, and the heartbeat's check."""

from __future__ import annotations

import ldap3

from rotation.ldap.connection import _Attempt, _run
from rotation.ldap_errors import (
    ACCOUNT_STATE,
    INVALID_CREDENTIALS,
    SELF,
    DirectoryError,
    DirectorySpec,
    ad_bind_reason,
)


def verify_password(spec: DirectorySpec, user_dn: str, password: str) -> bool:
    """Return whether ``user_dn`` can bind with ``password`` (False only for invalid credentials)."""
    if not password:
        return False  # an empty simple bind is an anonymous bind: it proves nothing

    def action(attempt: _Attempt) -> bool:
        conn = attempt.reusable(("verify",)) or attempt.open(keep=("verify",))
        conn.authentication, conn.user, conn.password = ldap3.SIMPLE, user_dn, password
        try:
            bound = conn.bind(read_server_info=False)
        finally:
            conn.password = None  # the pooled connection keeps no password
        if bound:
            return True
        result = conn.result
        if result.get("result") == INVALID_CREDENTIALS:
            reason = ad_bind_reason(result.get("message") or "")
            if reason is None or not spec.is_ad:
                return False
            attempt.fail_result(result, ACCOUNT_STATE, kind=DirectoryError.CONFIGURATION, extra=reason)
        attempt.fail_result(result, SELF)
        return False  # not reached

    return _run(_Attempt(spec, (password,)), action)
