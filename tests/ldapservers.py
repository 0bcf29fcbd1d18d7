"""Real directory servers for tests: a throwaway CA, OpenLDAP slapd and a Samba AD DC.

The classes work outside pytest (``make demo`` starts a ``SlapdServer``); the pytest fixtures are
at the bottom. See /work/shared/TEST-SERVERS.md for the recipes these follow.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import ipaddress
import itertools
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ldap3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3.utils.dn import escape_rdn

from tests.processes import die_with_parent, free_port, stop_process

try:
    import pytest
except ImportError:  # plain Python use (make demo) does not need pytest
    pytest = None

SLAPD = shutil.which("slapd", path="/usr/sbin:/usr/bin") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd", path="/usr/sbin:/usr/bin") or "/usr/sbin/slapadd"
SAMBA = shutil.which("samba", path="/usr/sbin:/usr/bin") or "/usr/sbin/samba"
SAMBA_TOOL = shutil.which("samba-tool", path="/usr/bin:/usr/sbin") or "/usr/bin/samba-tool"
SAMBA_LOCK = "/tmp/pamrotate-samba.lock"  # shared between test processes on purpose

# Inheritable to user objects on the OU: Reset Password, write pwdLastSet, write lockoutTime.
USER_CLASS = "bf967aba-0de6-11d0-a285-00aa003049e2"
RESET_PASSWORD = "00299570-246d-11d0-a768-00aa006e0529"
PWD_LAST_SET = "bf967a0a-0de6-11d0-a285-00aa003049e2"
LOCKOUT_TIME = "28630ebf-41d5-11d1-a9c1-0000f80367c1"
SAMBA_PYTHON = "/usr/bin/python3"  # Debian's python3-samba bindings live in the system Python

# Run by SAMBA_PYTHON: what "samba-tool domain passwordsettings set --min-pwd-age=0", "ou create" (x2),
# "user create rotator", "user setexpiry --noexpiry" and "dsacl set" do, in one process.
_SAMBA_SEED = f"""
import sys
import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

conf, url, people, other = sys.argv[1:5]
rotator_password = sys.stdin.read()
lp = LoadParm()
lp.load(conf)
samdb = SamDB(url=url, session_info=system_session(), lp=lp)
base = samdb.domain_dn()
msg = ldb.Message(ldb.Dn(samdb, base))
msg["minPwdAge"] = ldb.MessageElement("0", ldb.FLAG_MOD_REPLACE, "minPwdAge")
samdb.modify(msg)
samdb.create_ou(people)
samdb.create_ou(other)
samdb.newuser("rotator", rotator_password)
samdb.setexpiry("(sAMAccountName=rotator)", 0, no_expiry_req=True)
found = samdb.search(base, expression="(sAMAccountName=rotator)", attrs=["objectSid"])
sid = str(ndr_unpack(security.dom_sid, found[0]["objectSid"][0]))
domain_sid = security.dom_sid(samdb.get_domain_sid())
found = samdb.search(people, scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"])
sddl = ndr_unpack(security.descriptor, found[0]["nTSecurityDescriptor"][0]).as_sddl(domain_sid)
aces = "".join(
    f"(OA;CIIO;{{right}};{{guid}};{USER_CLASS};{{sid}})"
    for right, guid in (("CR", "{RESET_PASSWORD}"), ("WP", "{PWD_LAST_SET}"), ("WP", "{LOCKOUT_TIME}"))
)
sddl = sddl[: sddl.index("(")] + aces + sddl[sddl.index("(") :]
msg = ldb.Message(ldb.Dn(samdb, people))
msg["nTSecurityDescriptor"] = ldb.MessageElement(
    ndr_pack(security.descriptor.from_sddl(sddl, domain_sid)), ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor"
)
samdb.modify(msg)
"""


# --- TLS ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and one server certificate issued by it."""

    ca_file: str
    cert_file: str
    key_file: str
    ca_pem: str
    ca_key_file: str = ""


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in ["127.0.0.1", "localhost", *names]:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            entry = x509.DNSName(name)
        if entry not in entries:
            entries.append(entry)
    return x509.SubjectAlternativeName(entries)


def make_ca(tmpdir, names: list[str] | None = None) -> TlsFiles:
    """Create a throwaway CA and a server certificate for 127.0.0.1, localhost and ``names``."""
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"pamrotate test CA {secrets.token_hex(4)}")]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    (directory / "ca.pem").write_bytes(ca_pem)
    _write_private(directory / "ca.key", _key_pem(ca_key))
    return issue_server_cert(
        TlsFiles(
            ca_file=str(directory / "ca.pem"),
            cert_file="",
            key_file="",
            ca_pem=ca_pem.decode(),
            ca_key_file=str(directory / "ca.key"),
        ),
        directory,
        names or [],
    )


def issue_server_cert(ca: TlsFiles, tmpdir, names: list[str]) -> TlsFiles:
    """Issue a server certificate from ``ca``'s CA for 127.0.0.1, localhost and ``names``."""
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert = x509.load_pem_x509_certificate(ca.ca_pem.encode())
    ca_key = serialization.load_pem_private_key(Path(ca.ca_key_file).read_bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    stem = "server-" + "-".join(n.replace(":", "_") for n in names) if names else "server"
    cert_file = directory / f"{stem}.pem"
    key_file = directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_file, _key_pem(key))
    return TlsFiles(
        ca_file=ca.ca_file,
        cert_file=str(cert_file),
        key_file=str(key_file),
        ca_pem=ca.ca_pem,
        ca_key_file=ca.ca_key_file,
    )


# --- process helpers ----------------------------------------------------------------------------


def _tls_handshake(host: str, port: int, ca_file: str, timeout: float = 1.0) -> bool:
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False  # names are checked by ldap3 in the real tests
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw):
                return True
    except OSError:
        return False


def _wait_for_tls(
    process: subprocess.Popen, host: str, port: int, ca_file: str, timeout: float, log: Path, fatal: str = ""
) -> float:
    """Wait until a verified TLS handshake on host:port succeeds; return seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready:\n{_tail(log)}")
        if fatal and fatal in _tail(log, 5):
            raise RuntimeError(f"server cannot become ready ({fatal!r}):\n{_tail(log)}")
        if _tls_handshake(host, port, ca_file):
            return time.monotonic() - started
        time.sleep(0.02)
    raise RuntimeError(f"no verified TLS handshake on {host}:{port} after {timeout:.0f} s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _ssha(password: str) -> str:
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # {SSHA} is SHA-1 by definition
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _strong_password() -> str:
    """A password that passes both slapd's and AD's default policies."""
    return "Pw-" + secrets.token_urlsafe(12) + "a1!"


class _NoDelayTls(ldap3.Tls):
    """ldap3 TLS that turns off Nagle first: a fresh TLS 1.3 connection otherwise costs ~45 ms."""

    def wrap_socket(self, connection, do_handshake=False):
        connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().wrap_socket(connection, do_handshake)


class _Directory:
    """What both servers share: an LDAPS connection helper, bind checks and process control."""

    @property
    def url(self) -> str:
        return f"ldaps://{self.host}:{self.ldaps_port}"

    host: str
    ldaps_port: int
    tls: TlsFiles
    process: subprocess.Popen | None = None

    def connect(self, user: str, password: str) -> ldap3.Connection:
        """Open a verified LDAPS connection bound as ``user`` (raises on failure)."""
        server = ldap3.Server(
            self.host,
            port=self.ldaps_port,
            use_ssl=True,
            get_info=ldap3.NONE,
            connect_timeout=5,
            tls=_NoDelayTls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.tls.ca_file),
        )
        return ldap3.Connection(
            server, user=user, password=password, auto_bind=True, receive_timeout=30, check_names=False
        )

    def can_bind(self, dn: str, password: str) -> bool:
        """Return whether a simple bind as ``dn`` over verified LDAPS succeeds."""
        server = ldap3.Server(
            self.host,
            port=self.ldaps_port,
            use_ssl=True,
            get_info=ldap3.NONE,
            connect_timeout=5,
            tls=_NoDelayTls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.tls.ca_file),
        )
        conn = ldap3.Connection(server, user=dn, password=password, receive_timeout=30, check_names=False)
        try:
            return bool(conn.bind())
        finally:
            conn.unbind()

    def delete(self, dn: str) -> None:
        """Delete one entry."""
        conn = self.connect(self.admin_bind_dn, self.admin_bind_password)
        try:
            if not conn.delete(dn):
                raise RuntimeError(
                    f"delete {dn!r} failed: {conn.result['description']} {conn.result['message']}"
                )
        finally:
            conn.unbind()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server by the PID we started (SIGTERM, then wait)."""
        stop_process(self.process)
        self.process = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        self.stop()


# --- OpenLDAP -----------------------------------------------------------------------------------


class SlapdServer(_Directory):
    """An OpenLDAP slapd with ppolicy, a delegated "rotator" and a read-only service account."""

    kind = "openldap"

    def __init__(self, tmpdir, suffix: str = "dc=example,dc=test", tls: TlsFiles | None = None):
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.suffix = suffix
        self.tls = tls or make_ca(self.dir / "tls")
        self.people_dn = f"ou=people,{suffix}"
        self.service_dn = f"ou=service,{suffix}"
        self.other_ou_dn = f"ou=other,{suffix}"
        self.rotator_dn = f"cn=rotator,ou=service,{suffix}"
        self.rotator_password = _strong_password()
        self.readonly_dn = f"cn=readonly,ou=service,{suffix}"
        self.readonly_password = _strong_password()
        self.root_dn = f"cn=admin,{suffix}"
        self.root_password = _strong_password()
        # The directory's superuser, for seeding and test set-up (never what pamrotate binds as).
        self.admin_bind_dn, self.admin_bind_password = self.root_dn, self.root_password
        self.ldap_port = free_port()
        self.ldaps_port = free_port()
        self.log_file = self.dir / "slapd.log"
        self.ready_seconds: float | None = None
        self._configure()

    def _configure(self) -> None:
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        suffix = self.suffix
        conf = f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {self.dir}/slapd.pid
argsfile {self.dir}/slapd.args
TLSCACertificateFile {self.tls.ca_file}
TLSCertificateFile {self.tls.cert_file}
TLSCertificateKeyFile {self.tls.key_file}
password-hash {{SSHA}}
security simple_bind=128

database mdb
maxsize 104857600
suffix "{suffix}"
rootdn "{self.root_dn}"
rootpw {_ssha(self.root_password)}
directory {data}
index objectClass eq
index uid,cn eq

overlay ppolicy
ppolicy_default "cn=default,ou=policies,{suffix}"
ppolicy_hash_cleartext

access to dn.subtree="{self.people_dn}" attrs=userPassword
    by dn.exact="{self.rotator_dn}" write
    by self write
    by anonymous auth
    by * none
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by users read
    by * none
"""
        (self.dir / "slapd.conf").write_text(conf)
        first_attr, first_value = suffix.split(",", 1)[0].split("=", 1)
        if first_attr.lower() == "dc":
            top = f"objectClass: dcObject\nobjectClass: organization\ndc: {first_value}\no: {first_value}\n"
        else:
            top = f"objectClass: organization\no: {first_value}\n"
        seed = f"""\
dn: {suffix}
{top}
dn: {self.people_dn}
objectClass: organizationalUnit
ou: people

dn: {self.service_dn}
objectClass: organizationalUnit
ou: service

dn: {self.other_ou_dn}
objectClass: organizationalUnit
ou: other

dn: ou=policies,{suffix}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{suffix}
objectClass: organizationalRole
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdMinLength: 8
pwdCheckQuality: 2
pwdInHistory: 3
pwdMinAge: 0

dn: {self.rotator_dn}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: rotator
userPassword: {_ssha(self.rotator_password)}

dn: {self.readonly_dn}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: readonly
userPassword: {_ssha(self.readonly_password)}
"""
        (self.dir / "seed.ldif").write_text(seed)
        subprocess.run(
            [SLAPADD, "-f", str(self.dir / "slapd.conf"), "-l", str(self.dir / "seed.ldif"), "-q"],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        """Start slapd (same ports, same data) and wait for a verified TLS handshake."""
        if self.running:
            return
        started = time.monotonic()
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [
                    SLAPD,
                    "-f",
                    str(self.dir / "slapd.conf"),
                    "-h",
                    f"ldap://127.0.0.1:{self.ldap_port}/ ldaps://127.0.0.1:{self.ldaps_port}/",
                    "-d",
                    "0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        _wait_for_tls(self.process, self.host, self.ldaps_port, self.tls.ca_file, 15, self.log_file)
        self.ready_seconds = time.monotonic() - started

    def add_user(self, uid: str, password: str, cn: str | None = None, ou_dn: str | None = None) -> str:
        """Add an inetOrgPerson as the rootdn and return its DN (the cn is escaped for the RDN)."""
        cn = cn or uid
        dn = f"cn={escape_rdn(cn)},{ou_dn or self.people_dn}"
        conn = self.connect(self.root_dn, self.root_password)
        try:
            ok = conn.add(
                dn,
                ["inetOrgPerson"],
                {"cn": cn, "sn": cn, "uid": uid, "userPassword": password},
            )
            if not ok:
                raise RuntimeError(
                    f"add {dn!r} failed: {conn.result['description']} {conn.result['message']}"
                )
        finally:
            conn.unbind()
        return dn


# --- Samba AD DC --------------------------------------------------------------------------------


def _lo_addresses() -> set[str]:
    out = subprocess.run(
        ["/usr/sbin/ip", "-4", "-o", "addr", "show", "dev", "lo"], check=True, capture_output=True, text=True
    ).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if " inet " in line}


def _port_free(ip: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


class SambaDC(_Directory):
    """A Samba AD DC on its own 127.0.0.N with a rotator delegated on OU=Managed only."""

    kind = "ad"
    realm = "EXAMPLE.TEST"
    domain = "EXAMPLE"
    suffix = "DC=example,DC=test"

    def __init__(self, tmpdir, ip: str | None = None, tls: TlsFiles | None = None):
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None
        self._added_ip = False
        self.host = ip or self._claim_ip()
        self.ldaps_port = 636
        self.ldap_port = 389
        self.tls = (
            issue_server_cert(tls, self.dir / "tls", [self.host])
            if tls
            else make_ca(self.dir / "tls", [self.host])
        )
        self.people_dn = f"OU=Managed,{self.suffix}"
        self.other_ou_dn = f"OU=Other,{self.suffix}"
        self.rotator_dn = f"CN=rotator,CN=Users,{self.suffix}"
        self.rotator_password = _strong_password()
        self.admin_dn = f"CN=Administrator,CN=Users,{self.suffix}"
        self.admin_password = _strong_password()
        self.admin_bind_dn, self.admin_bind_password = self.admin_dn, self.admin_password
        self.log_file = self.dir / "samba.log"
        self.provision_seconds: float | None = None
        self.ready_seconds: float | None = None
        self._provision()

    def _claim_ip(self) -> str:
        """Pick a free 127.0.0.N and hold a per-address lock on it for this object's lifetime."""
        with open(SAMBA_LOCK, "a") as global_lock:
            fcntl.flock(global_lock, fcntl.LOCK_EX)
            for n in range(10, 250):
                ip = f"127.0.0.{n}"
                fd = os.open(f"{SAMBA_LOCK}.{ip}", os.O_CREAT | os.O_RDWR, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                if not all(_port_free(ip, port) for port in (389, 636)):
                    os.close(fd)
                    continue
                self._lock_fd = fd
                # Samba's "interfaces" only matches addresses that are configured on an interface:
                # the 127/8 route alone is not enough (it then listens on nothing).
                if ip not in _lo_addresses():
                    subprocess.run(
                        ["/usr/sbin/ip", "addr", "add", f"{ip}/8", "dev", "lo"],
                        check=True,
                        capture_output=True,
                    )
                    self._added_ip = True
                return ip
        raise RuntimeError("no free 127.0.0.N address for a Samba DC")

    @property
    def smb_conf(self) -> Path:
        return self.dir / "etc" / "smb.conf"

    def _provision(self) -> None:
        started = time.monotonic()
        d = self.dir
        options = {
            "interfaces": self.host,
            "bind interfaces only": "yes",
            "server services": "ldap",
            "pid directory": f"{d}/run",
            "log file": f"{d}/log.%m",
            "ncalrpc dir": f"{d}/ncalrpc",
            "winbindd socket directory": f"{d}/winbindd",
            "ntp signd socket directory": f"{d}/ntp_signd",
            "tls enabled": "yes",
            "tls keyfile": self.tls.key_file,
            "tls certfile": self.tls.cert_file,
            "tls cafile": self.tls.ca_file,
        }
        result = subprocess.run(
            [
                SAMBA_TOOL,
                "domain",
                "provision",
                "-s",
                "/dev/null",
                f"--targetdir={d}",
                f"--realm={self.realm}",
                f"--domain={self.domain}",
                "--server-role=dc",
                "--dns-backend=NONE",
                f"--adminpass={self.admin_password}",
                "--host-name=dc1",
                f"--host-ip={self.host}",
                *[f"--option={key}={value}" for key, value in options.items()],
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(
                f"samba-tool domain provision failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        # The provision option for this is silently dropped; without it old passwords bind for an hour.
        conf = self.smb_conf.read_text()
        self.smb_conf.write_text(
            conf.replace("[global]\n", "[global]\n\told password allowed period = 0\n", 1)
        )
        self._seed()
        self.provision_seconds = time.monotonic() - started

    def _seed(self) -> None:
        """Seed offline in one Samba Python process (seven samba-tool runs cost ~3 s more)."""
        result = subprocess.run(
            [
                SAMBA_PYTHON,
                "-c",
                _SAMBA_SEED,
                str(self.smb_conf),
                str(self.dir / "private" / "sam.ldb"),
                self.people_dn,
                self.other_ou_dn,
            ],
            input=self.rotator_password,  # not on the command line
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(f"seeding the Samba DC failed:\n{result.stdout}\n{result.stderr[-3000:]}")

    def start(self) -> None:
        """Start Samba (same address, same data) and wait for a verified TLS handshake on 636."""
        if self.running:
            return
        started = time.monotonic()
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [SAMBA, "-s", str(self.smb_conf), "-i", "-M", "single", "--maximum-runtime=3600"],
                # With -i Samba exits on EOF on stdin, and CI has no stdin: keep a pipe open.
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        # Without the address on an interface Samba keeps running but listens on nothing.
        _wait_for_tls(
            self.process,
            self.host,
            self.ldaps_port,
            self.tls.ca_file,
            30,
            self.log_file,
            fatal="no network interfaces found",
        )
        self.ready_seconds = time.monotonic() - started

    def stop(self) -> None:
        process = self.process
        super().stop()
        if process is not None and process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def close(self) -> None:
        self.stop()
        if self._added_ip:
            subprocess.run(
                ["/usr/sbin/ip", "addr", "del", f"{self.host}/8", "dev", "lo"],
                check=False,
                capture_output=True,
            )
            self._added_ip = False
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def add_user(self, sam: str, password: str, cn: str | None = None, ou_dn: str | None = None) -> str:
        """Add an enabled user as Administrator and return its DN (the cn is escaped for the RDN)."""
        cn = cn or sam
        dn = f"CN={escape_rdn(cn)},{ou_dn or self.people_dn}"
        conn = self.connect(self.admin_dn, self.admin_password)
        try:
            ok = conn.add(
                dn,
                ["top", "person", "organizationalPerson", "user"],
                {
                    "cn": cn,
                    "sAMAccountName": sam,
                    "userPrincipalName": f"{sam}@{self.realm.lower()}",
                    "unicodePwd": f'"{password}"'.encode("utf-16-le"),
                    "userAccountControl": "512",
                },
            )
            if not ok:
                raise RuntimeError(
                    f"add {dn!r} failed: {conn.result['description']} {conn.result['message']}"
                )
        finally:
            conn.unbind()
        return dn


# --- pytest fixtures ----------------------------------------------------------------------------

_names = itertools.count(1)


def unique_name(prefix: str = "user") -> str:
    """Return a name no other test in this process uses (short enough for sAMAccountName)."""
    return f"{prefix[:8]}{os.getpid() % 1000}x{next(_names)}"


if pytest is not None:

    @pytest.fixture(scope="session")
    def tls_files(tmp_path_factory) -> TlsFiles:
        """A throwaway CA with a server certificate for 127.0.0.1 and localhost."""
        return make_ca(tmp_path_factory.mktemp("tls"))

    @pytest.fixture(scope="session")
    def slapd(tmp_path_factory, tls_files):
        """A started OpenLDAP server shared by the test session."""
        server = SlapdServer(tmp_path_factory.mktemp("slapd"), tls=tls_files)
        server.start()
        yield server
        server.close()

    @pytest.fixture(scope="session")
    def samba(tls_files):
        """A started Samba AD DC shared by the test session."""
        # Samba's socket paths must stay short: keep its state out of pytest's long tmp paths.
        directory = tempfile.mkdtemp(prefix="pamrotate-samba-")
        server = SambaDC(directory, tls=tls_files)
        try:
            server.start()
            yield server
        finally:
            server.close()
            shutil.rmtree(directory, ignore_errors=True)

    @pytest.fixture(name="unique_name")
    def unique_name_fixture():
        """The ``unique_name(prefix)`` function, as a fixture."""
        return unique_name
