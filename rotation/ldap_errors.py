"""What can go wrong talking to a directory, in plain language: the error type and its catalogue.

``DirectoryError`` carries its class (rejected, ambiguous, configuration, transient), the LDAP result
code and a message that names the fix. ``result_error`` maps an LDAP result to such a class and
message; it needs no server, so every message is testable on its own. Nothing here imports ldap3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class DirectoryError(Exception):
    """One failure talking to a directory, with its class and a plain-language message."""

    REJECTED = "rejected"
    AMBIGUOUS = "ambiguous"
    CONFIGURATION = "configuration"
    TRANSIENT = "transient"

    def __init__(self, kind: str, message: str, code: int | None = None, detail: str = ""):
        self.kind = kind
        self.message = message
        self.code = code
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.message if self.code is None else f"{self.message} (LDAP {self.code})"

    def __repr__(self) -> str:
        return f"DirectoryError({self.kind!r}, {self.message!r}, code={self.code!r})"

    def __reduce__(self):
        return (type(self), (self.kind, self.message, self.code, self.detail))


@dataclass(frozen=True)
class DirectorySpec:
    """Where a directory is and how to reach it (no credentials)."""

    host: str
    port: int = 636
    use_ssl: bool = True
    start_tls: bool = False
    ca_certificate: str = ""  # PEM text; empty = system trust store
    verify_certificate: bool = True
    directory_type: str = "openldap"  # "ad" or "openldap"
    alternative_ips: tuple[str, ...] = ()
    connect_timeout: float = 5.0
    operation_timeout: float = 10.0

    @property
    def is_ad(self) -> bool:
        return self.directory_type == "ad"


@dataclass(frozen=True)
class Step:
    """One step of a connection test and how it went."""

    name: str
    ok: bool
    message: str


# --- the catalogue: LDAP result → class and message ---------------------------------------------

ADMIN = "admin"  # bound with the administrative credential
SELF = "self"  # bound as the account itself
ACCOUNT_STATE = "account-state"

INVALID_CREDENTIALS = 49
UNREACHABLE = "the directory is unreachable"
AMBIGUOUS = (
    "the connection failed after the password change was sent, so the outcome is unknown: "
    "check which password binds (the new one or the current one) before trying again"
)
SPEAKS_LDAPS = (
    "{where} speaks LDAPS, not LDAP with StartTLS: turn off StartTLS (and turn on Use SSL), "
    "or use the directory's LDAP port (389)"
)
NOT_RESOLVED = (
    "the host name {host} does not resolve (DNS): check its spelling, or enter the directory's IP address"
)
DNS_UNAVAILABLE = "the DNS server did not answer for {host}: try again later"
NOT_TRUSTED = (
    "the directory's certificate is not trusted: paste the issuing CA certificate into the "
    "directory's CA certificate field"
)

# Active Directory's "data NNN" in a failed bind's diagnostic says why the account cannot sign in.
_AD_BIND_REASONS = {
    "525": None,  # no such user: same as a wrong password
    "52e": None,  # wrong password
    "530": "the password is right, but the account may not sign in at this time (logon hours)",
    "531": "the password is right, but the account may not sign in from this computer (logon workstations)",
    "532": "the password is right, but it has expired",
    "533": "the password is right, but the account is disabled",
    "701": "the password is right, but the account has expired",
    "773": "the password is right, but the account must change it at next sign-in (clear that flag)",
    "775": "the account is locked out: unlock it, then try again",
}


def ad_bind_reason(diagnostic: str) -> str | None:
    match = re.search(r"data ([0-9a-f]{3,4})", diagnostic, re.IGNORECASE)
    return _AD_BIND_REASONS.get(match.group(1).lower()) if match else None


def _policy_reason(diagnostic: str) -> str:
    """Say in plain words why a directory's password policy refused a password."""
    text = diagnostic.lower()
    length = re.search(r"(?:longer|shorter) than (\d+)", text)
    if "too short" in text:
        minimum = f" of {length.group(1)} characters" if length else ""
        return f"it is shorter than the directory's minimum password length{minimum}"
    if "too long" in text:
        maximum = f" of {length.group(1)} characters" if length else ""
        return f"it is longer than the directory's maximum password length{maximum}"
    if "complexity" in text:
        return (
            "it does not meet the domain's complexity rule (three of: upper case, lower case, digits, "
            "symbols, and not containing the account name)"
        )
    if "history" in text or "already used" in text:
        return "it was used before (password history)"
    if "too young" in text:
        return "the password was changed too recently (minimum password age)"
    if "quality" in text:
        return "it fails the directory's password quality policy (for example its minimum length)"
    if "not being changed" in text or "same" in text:
        return "it is the same as the current password"
    return "it does not satisfy the directory's password policy (length, complexity, history or age)"


def result_error(spec: DirectorySpec, result: dict, who: str, diagnostic: str) -> tuple[str, str]:
    """Map an LDAP result to (kind, plain-language message)."""
    code = result.get("result")
    text = diagnostic.lower()
    configuration, rejected, transient = (
        DirectoryError.CONFIGURATION,
        DirectoryError.REJECTED,
        DirectoryError.TRANSIENT,
    )
    if code == INVALID_CREDENTIALS:
        reason = ad_bind_reason(diagnostic) if spec.is_ad else None
        if who == ADMIN:
            if reason:
                return configuration, f"the administrative credential cannot sign in: {reason}"
            return (
                configuration,
                "the administrative credential's password is wrong (or its login name is): update it",
            )
        if reason:
            return configuration, f"the account cannot sign in: {reason}"
        return configuration, "the account's current password is wrong: reconcile the stored password first"
    if code == 19 or "0000052d" in text:
        return rejected, "the directory refused the new password: " + _policy_reason(diagnostic)
    if code == 50:
        if who == SELF:
            return configuration, "the account is not allowed to change its own password"
        if spec.is_ad:
            return (
                configuration,
                "the administrative credential lacks the Reset Password right on this account's OU",
            )
        return (
            configuration,
            "the administrative credential lacks write access to userPassword on this account",
        )
    if code in (8, 13):
        return configuration, (
            "the directory requires a protected connection and refused this one: use its LDAPS port (636) or StartTLS"
        )
    if code == 32:
        return configuration, (
            "the account's distinguished name was not found on the directory: check the distinguished name"
        )
    if code == 34:
        return configuration, "the distinguished name is not valid: check its spelling and escaping"
    if code == 53:
        if "old password" in text:
            return configuration, (
                "the directory could not verify the account's current password: reconcile the stored password first"
            )
        if "0000001f" in text or "secure" in text or "confidential" in text:
            return (
                configuration,
                "the directory only changes passwords over a protected connection: use LDAPS or StartTLS",
            )
        return configuration, "the directory is unwilling to perform the password change"
    if code in (2, 12):
        return configuration, (
            "the directory does not support the OpenLDAP password modify operation: "
            "check the directory type (Active Directory or OpenLDAP)"
        )
    if code in (16, 17, 21) and spec.is_ad:
        return configuration, (
            "the directory has no Active Directory password attribute (unicodePwd): "
            "check the directory type (Active Directory or OpenLDAP)"
        )
    if code in (3, 11, 51, 52):
        return transient, "the directory is busy or unavailable: try again later"
    description = result.get("description") or "error"
    return configuration, f"the directory refused the request ({description})"
