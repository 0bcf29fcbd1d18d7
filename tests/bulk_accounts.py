"""Create thousands of Samba accounts in seconds: offline, in one ldb transaction, before the DC starts.

Through LDAP each Samba user costs ~15 ms (password hashing, server CPU bound); the discovery test
and benchmark need 2,500, and they need no password (discovery never binds as them).
"""

from __future__ import annotations

import subprocess

from tests.ldapservers import SAMBA_PYTHON, SambaDC

_ADD_OFFLINE = """
import sys
import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

conf, url, ou, prefix, count = sys.argv[1:6]
lp = LoadParm()
lp.load(conf)
samdb = SamDB(url=url, session_info=system_session(), lp=lp)
realm = lp.get("realm").lower()
samdb.transaction_start()
try:
    for n in range(int(count)):
        name = f"{prefix}{n:05d}"
        samdb.add({
            "dn": f"CN={name},{ou}",
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "sAMAccountName": name,
            "userPrincipalName": f"{name}@{realm}",
            # NORMAL_ACCOUNT | PASSWD_NOTREQD: an enabled account that needs no password to exist.
            "userAccountControl": "544",
        })
except Exception:
    samdb.transaction_cancel()
    raise
samdb.transaction_commit()
"""


def add_offline(dc: SambaDC, count: int, prefix: str, ou_dn: str | None = None) -> list[str]:
    """Add ``count`` enabled users named ``prefix00000``… under ``ou_dn`` to a DC that is not running; return their DNs."""
    if dc.running:
        raise RuntimeError("add accounts offline before the DC starts")
    ou = ou_dn or dc.people_dn
    result = subprocess.run(
        [
            SAMBA_PYTHON,
            "-c",
            _ADD_OFFLINE,
            str(dc.smb_conf),
            str(dc.dir / "private" / "sam.ldb"),
            ou,
            prefix,
            str(count),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"adding accounts offline failed:\n{result.stderr[-3000:]}")
    return [f"CN={prefix}{n:05d},{ou}" for n in range(count)]
