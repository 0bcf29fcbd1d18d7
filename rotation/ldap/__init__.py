"""Talk to directories (Active Directory and OpenLDAP) over TLS: set, change and verify passwords.

This package is the only code that opens a connection to a directory (records/validators.py uses
ldap3's DN parser only), and it imports nothing from Django. Every failure leaves as one
``DirectoryError`` (rotation/ldap_errors.py) carrying its class (rejected, ambiguous,
configuration, transient) and a plain-language message that names the fix. No password ever
reaches an error, its detail, a log line or a repr: messages are built here, server diagnostics
are scrubbed of the passwords involved, and ldap3's own exceptions are never chained.

One module per concern: ``connection`` (TLS, binding, timeouts, failures; ``test_connection``),
``pool`` (idle connections kept for reuse), ``change`` (resets and self-changes), ``verify`` (a
bind with the new password), ``search`` (discovery reads, paged) and ``state`` (an account's
enabled/locked/expired state). Callers use the names below from ``rotation.ldap``.
"""

from __future__ import annotations

from rotation.ldap.change import change_own_password, set_password
from rotation.ldap.connection import test_connection
from rotation.ldap.search import discovery_filter, find_accounts, search_accounts
from rotation.ldap.state import DirectoryAccount, read_account
from rotation.ldap.verify import verify_password
from rotation.ldap_errors import DirectoryError, DirectorySpec, Step

__all__ = [
    "DirectoryAccount",
    "DirectoryError",
    "DirectorySpec",
    "Step",
    "change_own_password",
    "discovery_filter",
    "find_accounts",
    "read_account",
    "search_accounts",
    "set_password",
    "test_connection",
    "verify_password",
]
