"""Read an account's state (enabled, locked, expired, password age) with the administrative credential."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import ldap3

from rotation.ldap.connection import _Attempt, _naming_contexts, _run
from rotation.ldap_errors import ADMIN, DirectoryError, DirectorySpec

_AD_ATTRIBUTES = (
    "sAMAccountName",
    "userPrincipalName",
    "userAccountControl",
    "lockoutTime",
    "pwdLastSet",
    "accountExpires",
)
# Constructed from the domain's lockout duration and password age: exact "locked" and "password expired".
_AD_COMPUTED = "msDS-User-Account-Control-Computed"
_OPENLDAP_ATTRIBUTES = ("uid", "pwdChangedTime", "pwdAccountLockedTime")
_UF_ACCOUNTDISABLE = 0x2
_UF_LOCKOUT = 0x10
_UF_PASSWORD_EXPIRED = 0x800000
_AD_NEVER = (0, 0x7FFFFFFFFFFFFFFF)
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class DirectoryAccount:
    """One account as the directory reports it to the administrative credential (no secret)."""

    dn: str
    login: str  # sAMAccountName on AD, uid on OpenLDAP
    principal_name: str = ""  # userPrincipalName (AD)
    enabled: bool | None = None  # None: the directory has no such notion (OpenLDAP)
    locked: bool = False
    expired: bool = False  # the account itself expired (AD accountExpires)
    password_expired: bool = False  # expired, or must be changed at next sign-in
    password_last_set: dt.datetime | None = None
    bad_password_count: int | None = None  # AD badPwdCount (read_account only)
    lockout_threshold: int | None = None  # the domain's lockoutThreshold, 0 = never (read_account only)


def read_account(spec: DirectorySpec, admin_user: str, admin_password: str, dn: str) -> DirectoryAccount:
    """Read one account's state (enabled, locked, expired, when its password was set) without binding as it."""

    def action(attempt: _Attempt) -> DirectoryAccount:
        conn = attempt.bind(admin_user, admin_password, who=ADMIN, reuse=True)
        attributes = (
            [*_AD_ATTRIBUTES, _AD_COMPUTED, "badPwdCount"] if spec.is_ad else list(_OPENLDAP_ATTRIBUTES)
        )
        conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=attributes)
        if conn.result.get("result") != 0:
            attempt.fail_result(conn.result, ADMIN)
        entries = [entry for entry in conn.response or () if entry.get("type") == "searchResEntry"]
        if not entries:
            attempt.fail(
                DirectoryError.CONFIGURATION,
                "the account's distinguished name was not found on the directory: check the distinguished name",
            )
        account = _account(spec, entries[0])
        if not spec.is_ad:
            return account
        # How close the account is to a lock-out: the domain's threshold (0 = never locks).
        conn.search(
            _naming_contexts(attempt, conn)[0],
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=["lockoutThreshold"],
        )
        domain = [entry for entry in conn.response or () if entry.get("type") == "searchResEntry"]
        return dataclasses.replace(
            account,
            bad_password_count=_int(entries[0].get("attributes") or {}, "badPwdCount"),
            lockout_threshold=_int(domain[0].get("attributes") or {}, "lockoutThreshold") if domain else None,
        )

    return _run(_Attempt(spec, (admin_password,)), action)


def _first(attributes: dict, name: str):
    """Return an attribute's first value as text (ldap3 without a schema gives lists of str or bytes)."""
    value = attributes.get(name)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return None if value is None else str(value)


def _int(attributes: dict, name: str) -> int | None:
    value = _first(attributes, name)
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _filetime(value: int | None) -> dt.datetime | None:
    """Return an AD FILETIME (100 ns since 1601) as an aware datetime; None for 0 and "never"."""
    if value in (None, *_AD_NEVER):
        return None
    try:
        return _FILETIME_EPOCH + dt.timedelta(microseconds=value // 10)
    except OverflowError:
        return None


def _generalized_time(value: str | None) -> dt.datetime | None:
    """Return an LDAP GeneralizedTime (``20261201121500Z``, fractions allowed) as an aware UTC datetime."""
    if not value:
        return None
    text = value.strip().rstrip("Zz").split(".")[0].split(",")[0]
    try:
        return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _account(spec: DirectorySpec, entry: dict) -> DirectoryAccount:
    attributes = entry.get("attributes") or {}
    dn = entry.get("dn", "")
    if not spec.is_ad:
        return DirectoryAccount(
            dn=dn,
            login=_first(attributes, "uid") or "",
            locked=bool(_first(attributes, "pwdAccountLockedTime")),
            password_last_set=_generalized_time(_first(attributes, "pwdChangedTime")),
        )
    control = _int(attributes, "userAccountControl") or 0
    computed = _int(attributes, _AD_COMPUTED)
    lockout = _int(attributes, "lockoutTime") or 0
    expires = _filetime(_int(attributes, "accountExpires"))
    password_set = _int(attributes, "pwdLastSet")
    return DirectoryAccount(
        dn=dn,
        login=_first(attributes, "sAMAccountName") or "",
        principal_name=_first(attributes, "userPrincipalName") or "",
        enabled=not control & _UF_ACCOUNTDISABLE,
        # Without the computed flags, any lockout time counts: better unchecked than locked out.
        locked=bool(computed & _UF_LOCKOUT) if computed is not None else lockout != 0,
        expired=expires is not None and expires <= dt.datetime.now(dt.UTC),
        password_expired=password_set == 0 or bool((computed or 0) & _UF_PASSWORD_EXPIRED),
        password_last_set=_filetime(password_set),
    )
