"""Shared set-up for benchmarks: a throwaway data directory, Django, and process helpers."""

from __future__ import annotations

import base64
import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


_PG_SERVERS: list = []  # kept alive for the process; closed at exit


def django_in_tempdir(workers: int = 2, database: str = "sqlite", durable: bool = False) -> Path:
    """Configure a fresh dev-mode pamrotate in a temporary data directory and migrate it.

    ``database="postgresql"`` starts a throwaway PostgreSQL server (tests/pgserver.py) for it;
    child processes (qcluster) inherit its DATABASE_URL. ``durable`` keeps PostgreSQL's own
    durability (fsync, synchronous_commit on), as a production server runs.
    """
    data = Path(tempfile.mkdtemp(prefix="pamrotate-bench-"))
    os.environ.update(
        PAMROTATE_MODE="dev",
        PAMROTATE_DATA_DIR=str(data),
        PAMROTATE_SECRET_KEY=secrets.token_urlsafe(50),
        PAMROTATE_ENCRYPTION_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        PAMROTATE_WORKERS=str(workers),
        PAMROTATE_Q_SYNC="0",
        PAMROTATE_LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="pamrotate.settings",
    )
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    if database == "postgresql":
        import atexit

        from tests.pgserver import PgServer

        server = PgServer(durable=durable)
        server.start()
        _PG_SERVERS.append(server)
        atexit.register(server.close)
        os.environ["DATABASE_URL"] = server.url(server.create_database())
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return data


def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (nearest rank) of a list of numbers."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def directory_records(server, dns: list[str], password: str, **user_fields) -> list:
    """Create a configuration, a directory on a test server with its rotator, and a daily-scheduled
    PAM user per DN (rotation on); return the users."""
    from records.models import DirectoryType
    from tests.seeding import seed_directory

    _, users = seed_directory(
        prefix=f"Bench {server.kind}",
        host=server.host,
        port=server.ldaps_port,
        ca_pem=server.tls.ca_pem,
        directory_type=DirectoryType.ACTIVE_DIRECTORY if server.kind == "ad" else DirectoryType.OPENLDAP,
        admin_dn=server.rotator_dn,
        admin_password=server.rotator_password,
        accounts=[(f"bench{i}", dn) for i, dn in enumerate(dns)],
        password=password,
        **user_fields,
    )
    return users
