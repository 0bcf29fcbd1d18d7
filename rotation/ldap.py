"""Talk to directories (Active Directory and OpenLDAP) over TLS: set, change and verify passwords.

This is the only module that opens a connection to a directory (records/validators.py uses
ldap3's DN parser only), and it imports nothing from Django. Every failure leaves as one
``DirectoryError`` (rotation/ldap_errors.py) carrying its class (rejected, ambiguous,
configuration, transient) and a plain-language message that names the fix. No password ever
reaches an error, its detail, a log line or a repr: messages are built here, server diagnostics
are scrubbed of the passwords involved, and ldap3's own exceptions are never chained.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import math
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars

from rotation.ldap_errors import (
    ACCOUNT_STATE,
    ADMIN,
    AMBIGUOUS,
    DNS_UNAVAILABLE,
    INVALID_CREDENTIALS,
    NOT_RESOLVED,
    NOT_TRUSTED,
    SELF,
    SPEAKS_LDAPS,
    UNREACHABLE,
    DirectoryError,
    DirectorySpec,
    Step,
    ad_bind_reason,
    result_error,
)

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

T = TypeVar("T")


# --- public API ---------------------------------------------------------------------------------


def set_password(
    spec: DirectorySpec, admin_user: str, admin_password: str, user_dn: str, new_password: str
) -> None:
    """Reset ``user_dn``'s password to ``new_password`` with the administrative credential."""

    def action(attempt: _Attempt) -> None:
        conn = attempt.bind(admin_user, admin_password, who=ADMIN, reuse=True)
        attempt.change(conn, user_dn, new_password, old_password=None, who=ADMIN)

    _run(_Attempt(spec, (admin_password, new_password)), action)


def change_own_password(spec: DirectorySpec, user_dn: str, old_password: str, new_password: str) -> None:
    """Change ``user_dn``'s own password from ``old_password`` to ``new_password``, bound as itself."""

    def action(attempt: _Attempt) -> None:
        if not old_password:
            attempt.fail(
                DirectoryError.CONFIGURATION, "the account's current password is empty: store it first"
            )
        conn = attempt.bind(user_dn, old_password, who=SELF)
        attempt.change(conn, user_dn, new_password, old_password=old_password, who=SELF)

    _run(_Attempt(spec, (old_password, new_password)), action)


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


def test_connection(spec: DirectorySpec, admin_user: str, admin_password: str) -> list[Step]:
    """Check TLS, the administrative bind and the naming context, stopping at the first failure."""
    steps: list[Step] = []
    attempt = _Attempt(spec, (admin_password,))
    attempt.step = "TLS handshake"

    def action(attempt: _Attempt) -> None:
        conn = attempt.open(admin_user, admin_password)
        steps.append(Step("TLS handshake", True, _describe_tls(conn, spec)))
        attempt.step = "Bind as administrative credential"
        if not admin_password:
            attempt.fail(
                DirectoryError.CONFIGURATION, "the administrative credential has no password: store it first"
            )
        if not conn.bind(read_server_info=False):
            attempt.fail_result(conn.result, ADMIN)
        steps.append(Step(attempt.step, True, f"bound as {admin_user}"))
        attempt.step = "Read naming context"
        contexts = _naming_contexts(attempt, conn)
        steps.append(Step(attempt.step, True, "naming context: " + ", ".join(contexts)))

    try:
        _run(attempt, action)
    except DirectoryError as exc:
        steps.append(Step(attempt.step, False, str(exc)))
    return steps


test_connection.__test__ = False  # not a pytest test, whatever imports it


# --- the machinery ------------------------------------------------------------------------------


class _NoDelayTls(ldap3.Tls):
    """ldap3's TLS with Nagle's algorithm off: a fresh TLS 1.3 connection otherwise costs ~45 ms."""

    def wrap_socket(self, connection, do_handshake=False):
        connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().wrap_socket(connection, do_handshake)


class _Failure(Exception):  # noqa: N818 - internal signal, never leaves this module
    """Carries a DirectoryError out of the action without an exception context."""

    def __init__(self, error: DirectoryError):
        super().__init__()
        self.error = error


class _Attempt:
    """One conversation with a directory: its spec, the secrets to scrub and whether a change was sent."""

    def __init__(self, spec: DirectorySpec, secrets: tuple[str, ...]):
        self.spec = spec
        self.secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))
        self.sent = False
        self.step = ""
        self.connections: list[ldap3.Connection] = []
        self.kept: dict[int, tuple] = {}  # id(connection) -> pool key, returned to the pool on success
        self.succeeded = False

    def __repr__(self) -> str:
        return f"<_Attempt {self.spec.host}:{self.spec.port} sent={self.sent}>"

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text

    def fail(self, kind: str, message: str, code: int | None = None, detail: str = ""):
        raise _Failure(DirectoryError(kind, message, code, self.scrub(detail)))

    def fail_result(self, result: dict, who: str, *, kind: str | None = None, extra: str = ""):
        diagnostic = self.scrub(str(result.get("message") or ""))
        mapped_kind, message = result_error(self.spec, result, who, diagnostic)
        if extra:
            message = extra
        self.fail(kind or mapped_kind, message, result.get("result"), diagnostic)

    def tls(self) -> ldap3.Tls:
        spec = self.spec
        if spec.ca_certificate.strip():
            if not _loads_as_ca(spec.ca_certificate):
                self.fail(
                    DirectoryError.CONFIGURATION,
                    "the directory's CA certificate field does not hold a PEM certificate: paste the "
                    "issuing CA certificate (-----BEGIN CERTIFICATE----- …)",
                )
        return _NoDelayTls(
            validate=ssl.CERT_REQUIRED if spec.verify_certificate else ssl.CERT_NONE,
            ca_certs_data=spec.ca_certificate.strip() or None,
        )

    def reusable(self, purpose: tuple) -> ldap3.Connection | None:
        """Return a live pooled connection for this directory and purpose, if there is one."""
        key = (self.spec, *purpose)
        conn = _POOL.take(key)
        if conn is None:
            return None
        self.connections.append(conn)
        self.kept[id(conn)] = key
        return conn

    def open(
        self, user: str | None = None, password: str | None = None, keep: tuple | None = None
    ) -> ldap3.Connection:
        """Open a TLS connection to the host, or the first reachable alternative IP; bind later.

        With ``keep``, the connection goes back to the pool for reuse when the action succeeds.
        """
        conn = self._open(user, password)
        conn._pamrotate_opened = time.monotonic()
        if keep is not None:
            self.kept[id(conn)] = (self.spec, *keep)
        return conn

    def _open(self, user: str | None, password: str | None) -> ldap3.Connection:
        spec = self.spec
        tls = self.tls()
        hosts = [spec.host, *(ip for ip in spec.alternative_ips if ip and ip != spec.host)]
        for index, host in enumerate(hosts):
            server = ldap3.Server(
                host,
                port=spec.port,
                use_ssl=spec.use_ssl,
                tls=tls,
                get_info=ldap3.NONE,
                connect_timeout=spec.connect_timeout,
            )
            conn = ldap3.Connection(
                server,
                user=user,
                password=password,
                authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
                receive_timeout=max(1, math.ceil(spec.operation_timeout)),  # ldap3 packs it as an integer
                check_names=False,  # pass DNs exactly as given: no re-escaping of special characters
                raise_exceptions=False,
                auto_referrals=False,
                read_only=False,
            )
            self.connections.append(conn)
            try:
                conn.open(read_server_info=False)
            except ldap_errors.LDAPSocketOpenError as exc:
                if index + 1 < len(hosts) and _unreachable(exc):
                    continue
                raise
            if spec.start_tls and not spec.use_ssl:
                conn.start_tls(read_server_info=False)
            return conn
        raise AssertionError("no host to open")  # pragma: no cover - hosts always holds spec.host

    def bind(self, user: str, password: str, *, who: str, reuse: bool = False) -> ldap3.Connection:
        if not password:
            self.fail(DirectoryError.CONFIGURATION, "the password to bind with is empty: store it first")
        # A pooled connection is keyed by the identity and a digest of its password, so a changed
        # administrative password never reuses a connection bound with the old one.
        purpose = ("bind", user, hashlib.sha256(password.encode()).hexdigest()) if reuse else None
        conn = self.reusable(purpose) if reuse else None
        if conn is not None:
            return conn
        conn = self.open(user, password, keep=purpose)
        if not conn.bind(read_server_info=False):
            self.fail_result(conn.result, who)
        conn.password = None  # bound: the connection need not hold the password any longer
        return conn

    def change(
        self, conn: ldap3.Connection, user_dn: str, new_password: str, *, old_password, who: str
    ) -> None:
        if not new_password:
            self.fail(DirectoryError.REJECTED, "the new password is empty")
        if self.spec.is_ad:
            # unicodePwd: replace for a reset, delete old + add new for a self-change.
            self.sent = True
            ok = conn.extend.microsoft.modify_password(user_dn, new_password, old_password or None)
        else:
            # RFC 3062 Password Modify: the server hashes it; a clear userPassword is never written.
            self.sent = True
            ok = conn.extend.standard.modify_password(
                user=user_dn, old_password=old_password or None, new_password=new_password
            )
        if ok is not True:
            self.fail_result(conn.result, who)

    def close(self) -> None:
        for conn in self.connections:
            key = self.kept.get(id(conn))
            if self.succeeded and key is not None and _POOL.give(key, conn):
                continue
            try:
                conn.unbind()
            except Exception:  # noqa: BLE001, S110 - closing is best effort; the outcome is already known
                pass
        self.connections.clear()
        self.kept.clear()


@functools.lru_cache(maxsize=64)
def _loads_as_ca(pem: str) -> bool:
    """Return whether PEM text loads as CA certificates (cached: it is parsed on every connection)."""
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError):
        return False
    return True


class _ConnectionPool:
    """Idle LDAPS connections of this process, reused for at most ``max_age`` seconds.

    A fresh connection costs a TCP and TLS handshake and a bind; reusing one saves that work on
    both sides (on Samba, whose CPU bounds its throughput, most of it). A connection is checked
    for being closed before reuse, so one the server has dropped is never used.
    """

    def __init__(self, max_age: float = 60.0, max_idle: int = 8):
        self.max_age = max_age
        self.max_idle = max_idle
        self.lock = threading.Lock()
        self.idle: dict[tuple, list[tuple[float, ldap3.Connection]]] = {}

    def take(self, key: tuple) -> ldap3.Connection | None:
        while True:
            with self.lock:
                entries = self.idle.get(key) or []
                if not entries:
                    return None
                opened, conn = entries.pop()
            if time.monotonic() - opened < self.max_age and _alive(conn):
                conn._pamrotate_opened = opened
                return conn
            _quietly_unbind(conn)

    def give(self, key: tuple, conn: ldap3.Connection) -> bool:
        opened = getattr(conn, "_pamrotate_opened", None) or time.monotonic()
        if conn.closed or time.monotonic() - opened >= self.max_age:
            return False
        now = time.monotonic()
        with self.lock:
            # Drop what has aged out under any key (an old admin password's connections, say).
            expired = [c for items in self.idle.values() for t, c in items if now - t >= self.max_age]
            for k in list(self.idle):
                self.idle[k] = [(t, c) for t, c in self.idle[k] if now - t < self.max_age]
            entries = self.idle.setdefault(key, [])
            full = len(entries) >= self.max_idle
            if not full:
                entries.append((opened, conn))
        for old in expired:
            _quietly_unbind(old)
        return not full

    def clear(self) -> None:
        with self.lock:
            entries = [conn for items in self.idle.values() for _, conn in items]
            self.idle.clear()
        for conn in entries:
            _quietly_unbind(conn)


def _alive(conn: ldap3.Connection) -> bool:
    """Return whether a pooled connection is still open: an idle LDAP connection has nothing to
    read, so a readable socket means the server closed it (or sent a notice of disconnection).

    No round trip: a half-open connection passes, and then a change sent on it fails as
    "outcome unknown", which reconciliation resolves; the pool's age limit bounds how long one
    can linger.
    """
    sock = conn.socket
    if conn.closed or sock is None or sock.fileno() < 0:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        readable, _, errored = select.select([sock], [], [sock], 0)
    except (OSError, ValueError):
        return False
    return not readable and not errored


def _quietly_unbind(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001, S110 - closing is best effort
        pass


_POOL = _ConnectionPool()


def clear_connection_pool() -> None:
    """Close every idle pooled connection of this process."""
    _POOL.clear()


def _unreachable(exc: BaseException) -> bool:
    """Whether a connection failed before anything was exchanged (no TLS problem)."""
    if isinstance(exc, ssl.SSLError | ldap_errors.LDAPCertificateError):
        return False
    return isinstance(exc, OSError) or "socket connection error" in str(exc)


def _dropped(exc: BaseException, attempt: _Attempt, reason: str) -> bool:
    """Whether a TLS error is the server going away mid-handshake (stopping), not a TLS mismatch.

    A plain-LDAP port also ends a TLS handshake with EOF, so an EOF counts as the server going
    away only when the port no longer accepts connections at all.
    """
    eof = isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionError) or any(
        text in reason for text in ("EOF occurred", "UNEXPECTED_EOF", "reset by peer")
    )
    if not eof:
        return False
    spec = attempt.spec
    try:
        socket.create_connection((spec.host, spec.port), timeout=spec.connect_timeout).close()
    except OSError:
        return True
    return False


def _describe_tls(conn: ldap3.Connection, spec: DirectorySpec) -> str:
    sock = conn.socket
    version = sock.version() if isinstance(sock, ssl.SSLSocket) else "TLS"
    how = "StartTLS" if spec.start_tls and not spec.use_ssl else "LDAPS"
    if not spec.verify_certificate:
        return f"{version} over {how}; the certificate was NOT verified (verification is turned off)"
    trust = "the configured CA certificate" if spec.ca_certificate.strip() else "the system trust store"
    return f"{version} over {how}; certificate trusted by {trust} and matching {conn.server.host}"


def _resolution_error(spec: DirectorySpec) -> tuple[str, str] | None:
    """Return (kind, message) when the directory's host name does not resolve, else None."""
    try:
        socket.getaddrinfo(spec.host, spec.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            return DirectoryError.TRANSIENT, DNS_UNAVAILABLE.format(host=spec.host)
        return DirectoryError.CONFIGURATION, NOT_RESOLVED.format(host=spec.host)
    except (OSError, UnicodeError):
        return DirectoryError.CONFIGURATION, NOT_RESOLVED.format(host=spec.host)
    return None


def _speaks_tls(spec: DirectorySpec) -> bool:
    """Whether the port answers a TLS handshake (LDAPS), which is why plain LDAP with StartTLS failed there.

    Only the protocol is probed: nothing is sent after the handshake, so the certificate is not checked.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # noqa: S503 - a protocol probe; no data follows the handshake
    try:
        with socket.create_connection((spec.host, spec.port), timeout=spec.connect_timeout) as raw:
            with context.wrap_socket(raw, server_hostname=spec.host):
                return True
    except (OSError, ssl.SSLError, ValueError):
        return False


def _exception_error(exc: BaseException, attempt: _Attempt) -> DirectoryError:
    """Turn an ldap3 or socket exception into a DirectoryError without any of its text but the reason."""
    spec = attempt.spec
    where = f"{spec.host}:{spec.port}"
    reason = attempt.scrub(str(exc))[:300]
    if isinstance(exc, ldap_errors.LDAPSASLPrepError):
        return DirectoryError(
            DirectoryError.REJECTED,
            "a password holds characters that LDAP cannot carry (SASLprep)",
            detail=reason,
        )
    if isinstance(exc, ldap_errors.LDAPPasswordIsMandatoryError):
        return DirectoryError(DirectoryError.CONFIGURATION, "a password is empty: store it first")
    if isinstance(exc, ldap_errors.LDAPCertificateError):
        return DirectoryError(
            DirectoryError.CONFIGURATION,
            f"the directory's certificate does not name {spec.host}: connect by a name or IP address the "
            "certificate lists, or reissue the certificate",
            detail=reason,
        )
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in reason:
        return DirectoryError(DirectoryError.CONFIGURATION, NOT_TRUSTED, detail=reason)
    if isinstance(exc, ldap_errors.LDAPStartTLSError) and not isinstance(exc, ssl.SSLError | OSError):
        return DirectoryError(
            DirectoryError.CONFIGURATION,
            f"the directory at {where} refused StartTLS: turn on its TLS, or use LDAPS (port 636)",
            detail=reason,
        )
    if (
        isinstance(exc, ssl.SSLError)
        and not isinstance(exc, TimeoutError)
        and not _dropped(exc, attempt, reason)
    ):
        return DirectoryError(
            DirectoryError.CONFIGURATION,
            f"the TLS handshake with {where} failed: check that this port speaks LDAPS, or use StartTLS on 389",
            detail=reason,
        )
    if attempt.sent:
        return DirectoryError(DirectoryError.AMBIGUOUS, AMBIGUOUS, detail=reason)
    if isinstance(exc, ldap_errors.LDAPSocketOpenError) and not spec.alternative_ips:
        resolution = _resolution_error(spec)
        if resolution is not None:
            return DirectoryError(*resolution, detail=reason)
    if (
        isinstance(exc, ldap_errors.LDAPCommunicationError)
        and spec.start_tls
        and not spec.use_ssl
        and _speaks_tls(spec)
    ):
        return DirectoryError(DirectoryError.CONFIGURATION, SPEAKS_LDAPS.format(where=where), detail=reason)
    if isinstance(exc, ldap_errors.LDAPCommunicationError | ldap_errors.LDAPResponseTimeoutError | OSError):
        return DirectoryError(
            DirectoryError.TRANSIENT,
            f"{UNREACHABLE} at {where}: check that it is running and that this host can reach it",
            detail=reason,
        )
    return DirectoryError(
        DirectoryError.CONFIGURATION,
        f"unexpected failure talking to {where}",
        detail=type(exc).__name__,  # the text of an unknown error might hold a request: keep it out
    )


def _run(attempt: _Attempt, action: Callable[[_Attempt], T]) -> T:
    """Run ``action`` on a fresh attempt and raise any failure as a DirectoryError with no context."""
    spec = attempt.spec
    if not spec.use_ssl and not spec.start_tls:
        # Before any socket: AD/Samba with strong auth off accept password resets in clear.
        raise DirectoryError(
            DirectoryError.CONFIGURATION,
            "plain LDAP refused: turn on Use SSL (LDAPS, port 636) or StartTLS; pamrotate never sends "
            "passwords over an unencrypted connection",
        )
    error: DirectoryError
    try:
        value = action(attempt)
        attempt.succeeded = True
        return value
    except _Failure as failure:
        error = failure.error
    except DirectoryError as exc:  # pragma: no cover - actions raise through _Failure
        error = DirectoryError(exc.kind, exc.message, exc.code, attempt.scrub(exc.detail))
    except Exception as exc:  # noqa: BLE001 - every failure must leave as a scrubbed DirectoryError
        error = _exception_error(exc, attempt)
    finally:
        attempt.close()
    # Raised here, outside the except blocks, so the error has no __context__ that could carry a request.
    raise error


# --- discovery and account state (read with the administrative credential; never a user bind) ------

AD_DISCOVERY_FILTER = "(&(objectCategory=person)(objectClass=user))"
OPENLDAP_DISCOVERY_FILTER = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
# Active Directory's MaxPageSize: it never returns more entries per page than this.
PAGE_SIZE = 1000
_PAGED_RESULTS = "1.2.840.113556.1.4.319"
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


def discovery_filter(spec: DirectorySpec, configured: str = "") -> str:
    """Return the filter that finds a directory's accounts: AD's fixed one, or OpenLDAP's configured or default one."""
    if spec.is_ad:
        return AD_DISCOVERY_FILTER
    return configured.strip() or OPENLDAP_DISCOVERY_FILTER


def search_accounts(
    spec: DirectorySpec,
    admin_user: str,
    admin_password: str,
    base: str = "",
    search_filter: str = "",
    *,
    page_size: int = PAGE_SIZE,
) -> list[DirectoryAccount]:
    """Return every account under ``base`` (blank: the naming context) that the filter matches, page by page."""
    search_filter = search_filter or discovery_filter(spec)

    def action(attempt: _Attempt) -> list[DirectoryAccount]:
        conn = attempt.bind(admin_user, admin_password, who=ADMIN, reuse=True)
        root = base or _naming_contexts(attempt, conn)[0]
        entries = _paged_search(attempt, conn, root, search_filter, page_size)
        return [_account(spec, entry) for entry in entries]

    return _run(_Attempt(spec, (admin_password,)), action)


def find_accounts(
    spec: DirectorySpec,
    admin_user: str,
    admin_password: str,
    login: str,
    base: str = "",
    search_filter: str = "",
) -> list[DirectoryAccount]:
    """Return the accounts whose login (sAMAccountName or userPrincipalName on AD, uid on OpenLDAP) is ``login``."""
    value = escape_filter_chars(login.strip())
    if spec.is_ad:
        sam = escape_filter_chars(login.strip().rsplit("\\", 1)[-1])  # DOMAIN\user names the same account
        by_login = f"(|(sAMAccountName={sam})(userPrincipalName={value}))"
    else:
        by_login = f"(uid={value})"
    combined = f"(&{discovery_filter(spec, search_filter)}{by_login})"
    return search_accounts(spec, admin_user, admin_password, base, combined, page_size=10)


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


def _naming_contexts(attempt: _Attempt, conn: ldap3.Connection) -> list[str]:
    """Return the root entry's naming contexts (AD's default one first), or fail with what to fix."""
    conn.search(
        "", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["defaultNamingContext", "namingContexts"]
    )
    if conn.result.get("result") != 0 or not conn.response:
        attempt.fail_result(conn.result, ADMIN)
    attributes = conn.response[0].get("attributes", {})
    contexts = attributes.get("defaultNamingContext") or attributes.get("namingContexts") or []
    if isinstance(contexts, str):
        contexts = [contexts]
    if not contexts:
        attempt.fail(
            DirectoryError.CONFIGURATION,
            "the directory's root entry names no naming context: check that this is an LDAP directory server",
        )
    return list(contexts)


def _paged_search(
    attempt: _Attempt, conn: ldap3.Connection, base: str, search_filter: str, page_size: int
) -> list[dict]:
    """Search a subtree with the simple paged results control (RFC 2696) and return every entry."""
    attributes = [*_AD_ATTRIBUTES, _AD_COMPUTED] if attempt.spec.is_ad else list(_OPENLDAP_ATTRIBUTES)
    entries: list[dict] = []
    cookie = None
    while True:
        try:
            conn.search(
                base,
                search_filter,
                search_scope=ldap3.SUBTREE,
                attributes=attributes,
                paged_size=page_size,
                paged_cookie=cookie,
            )
        except ldap_errors.LDAPInvalidFilterError:
            attempt.fail(
                DirectoryError.CONFIGURATION,
                f"the discovery filter is not a valid LDAP filter: write it like {OPENLDAP_DISCOVERY_FILTER}",
            )
        code = conn.result.get("result")
        if code == 32:
            attempt.fail(
                DirectoryError.CONFIGURATION,
                f"the search base {base!r} was not found on the directory: check the directory's user match",
                code,
            )
        if code != 0:
            attempt.fail_result(conn.result, ADMIN)
        entries.extend(entry for entry in conn.response or () if entry.get("type") == "searchResEntry")
        control = (conn.result.get("controls") or {}).get(_PAGED_RESULTS) or {}
        cookie = (control.get("value") or {}).get("cookie")
        if not cookie:
            return entries


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
