"""Connections to a directory: TLS, alternative addresses, timeouts, binding, failures as DirectoryError.

``_Attempt`` is one conversation with a directory; ``_run`` runs an action on it and lets every
failure leave as one scrubbed ``DirectoryError`` with no exception context. ``test_connection``
checks TLS, the administrative bind and the naming context step by step.
"""

from __future__ import annotations

import functools
import hashlib
import math
import socket
import ssl
import time
from collections.abc import Callable
from typing import TypeVar

import ldap3
from ldap3.core import exceptions as ldap_errors

from rotation.ldap.pool import _POOL
from rotation.ldap_errors import (
    ADMIN,
    AMBIGUOUS,
    DNS_UNAVAILABLE,
    NOT_RESOLVED,
    NOT_TRUSTED,
    SPEAKS_LDAPS,
    UNREACHABLE,
    DirectoryError,
    DirectorySpec,
    Step,
    result_error,
)

T = TypeVar("T")


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


class _NoDelayTls(ldap3.Tls):
    """ldap3's TLS with Nagle's algorithm off: a fresh TLS 1.3 connection otherwise costs ~45 ms."""

    def wrap_socket(self, connection, do_handshake=False):
        connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().wrap_socket(connection, do_handshake)


class _Failure(Exception):  # noqa: N818 - internal signal, never leaves this package
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
