"""Scale-out on PostgreSQL: two real qcluster processes share one database and rotate each slot once.

Everything runs in child processes on a real PostgreSQL (tests/pgserver.py): migrate, seeding,
the workers. The test reads the results with psycopg and checks each password on the real slapd.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from ldap3.utils.dn import escape_rdn

from audit.actors import Actor
from pamrotate import crypto
from tests.pgserver import PgServer, Qcluster, app_env, call, wait_for
from tests.test_rotation import STRONG


@dataclass
class PgApp:
    """One fresh, migrated pamrotate database on the test PostgreSQL, and how to run processes on it."""

    server: PgServer
    database: str
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url(self.database)

    def env(self, **extra: str) -> dict[str, str]:
        return app_env(self.url, self.data_dir, **extra)

    def query(self, sql: str, params=()) -> list[tuple]:
        with self.server.connect(self.database) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params=()):
        return self.query(sql, params)[0][0]

    def qcluster(self, name: str, **extra: str) -> Qcluster:
        return Qcluster(self.env(**extra), self.data_dir / f"{name}.log")


@pytest.fixture
def pg_app(pg, tmp_path_factory) -> PgApp:  # noqa: F811 - the fixture imported above
    data_dir = tmp_path_factory.mktemp("pgapp")
    template = pg.migrated_template(tmp_path_factory.mktemp("pgtemplate"))
    return PgApp(pg, pg.create_database(template), data_dir)


def add_slapd_accounts(server, prefix: str, count: int, password: str = STRONG) -> list[list[str]]:
    """Add ``count`` people to slapd over one connection; return [login, dn] pairs."""
    conn = server.connect(server.root_dn, server.root_password)
    accounts = []
    try:
        for i in range(count):
            login = f"{prefix}{i}"
            dn = f"cn={escape_rdn(login)},{server.people_dn}"
            attributes = {"cn": login, "sn": login, "uid": login, "userPassword": password}
            if not conn.add(dn, ["inetOrgPerson"], attributes):
                raise RuntimeError(f"add {dn} failed: {conn.result['description']}")
            accounts.append([login, dn])
    finally:
        conn.unbind()
    return accounts


def seed(app_env_: dict, server, accounts, prefix: str, due_in_seconds: float | None = None) -> dict:
    """Create the PAM records for ``accounts`` on ``server`` in the app's database (a child process)."""
    return call(
        "tests.pgserver:seed_accounts",
        app_env_,
        host=server.host,
        port=server.ldaps_port,
        ca_pem=server.tls.ca_pem,
        directory_type="active_directory" if server.kind == "ad" else "openldap",
        admin_dn=server.rotator_dn,
        admin_password=server.rotator_password,
        accounts=accounts,
        password=STRONG,
        prefix=prefix,
        due_in_seconds=due_in_seconds,
    )


def stored_passwords(app: PgApp, user_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Return {user id: (dn, stored password)} read from PostgreSQL and decrypted here."""
    rows = app.query(
        "SELECT id, distinguished_name, password_encrypted FROM records_pamuser WHERE id = ANY(%s)",
        [user_ids],
    )
    return {pk: (dn, crypto.decrypt(blob)) for pk, dn, blob in rows}


def test_two_qclusters_on_postgresql_rotate_every_account_once_per_slot(pg_app, slapd, unique_name):
    prefix = unique_name("pg")
    accounts = add_slapd_accounts(slapd, prefix, 60)
    ids = seed(pg_app.env(), slapd, accounts, prefix, due_in_seconds=3)["users"]
    succeeded = (
        "SELECT count(*) FROM rotation_rotationattempt WHERE user_id = ANY(%s) AND trigger = 'scheduled' "
        "AND state = 'succeeded'"
    )
    with pg_app.qcluster("qcluster-a") as first, pg_app.qcluster("qcluster-b") as second:
        wait_for(lambda: pg_app.scalar(succeeded, [ids]) >= 60, 90, message="first slot not drained")
        # A second slot for everyone while both dispatchers are warm.
        pg_app.query(
            "UPDATE records_pamuser SET next_rotation_at = now() WHERE id = ANY(%s) RETURNING id", [ids]
        )
        wait_for(lambda: pg_app.scalar(succeeded, [ids]) >= 120, 90, message="second slot not drained")
        assert first.alive and second.alive
    logs = first.output() + second.output()

    per_slot = pg_app.query(
        "SELECT user_id, slot, count(*) FROM rotation_rotationattempt WHERE user_id = ANY(%s) "
        "GROUP BY user_id, slot",
        [ids],
    )
    assert len(per_slot) == 120 and all(count == 1 for _, _, count in per_slot), "a slot ran twice"
    states = pg_app.query(
        "SELECT state, count(*) FROM rotation_rotationattempt WHERE user_id = ANY(%s) GROUP BY state", [ids]
    )
    assert dict(states) == {"succeeded": 120}, logs[-3000:]
    versions = pg_app.query(
        "SELECT user_id, count(*) FROM rotation_passwordversion WHERE user_id = ANY(%s) GROUP BY user_id",
        [ids],
    )
    assert sorted(count for _, count in versions) == [2] * 60
    audited = pg_app.scalar(
        "SELECT count(*) FROM rotation_auditevent WHERE event = 'record_rotation_scheduled_ok' "
        "AND record_id = ANY(%s)",
        [ids],
    )
    assert audited == 120
    # Both clusters took work from the shared ORM queue.
    assert "Processed" in first.output() and "Processed" in second.output()
    for dn, password in stored_passwords(pg_app, ids).values():
        assert password != STRONG
        assert slapd.can_bind(dn, password)
        assert password not in logs


def test_on_demand_rotations_on_postgresql_run_through_a_real_qcluster(pg_app, samba, unique_name):
    prefix = unique_name("pgad")
    dns = [[f"{prefix}{i}", samba.add_user(f"{prefix}{i}", STRONG)] for i in range(3)]
    ids = seed(pg_app.env(), samba, dns, prefix)["users"]
    with pg_app.qcluster("qcluster") as worker:
        result = call("tests.test_postgres:request_rotations", pg_app.env(), user_ids=ids)
        assert result["states"] == ["queued"] * 3
        done = (
            "SELECT count(*) FROM rotation_rotationattempt WHERE user_id = ANY(%s) "
            "AND state IN ('succeeded', 'failed', 'reconciled')"
        )
        wait_for(lambda: pg_app.scalar(done, [ids]) >= 3, 60, message=worker.output()[-3000:])
    states = pg_app.query("SELECT state FROM rotation_rotationattempt WHERE user_id = ANY(%s)", [ids])
    assert [s for (s,) in states] == ["succeeded"] * 3, worker.output()[-3000:]
    for dn, password in stored_passwords(pg_app, ids).values():
        assert password != STRONG and samba.can_bind(dn, password)


def request_rotations(user_ids: list[int]) -> dict:
    """(Run in a child.) Press "Rotate now" for each user, as the view does; return the states."""
    from records.models import PamUser
    from rotation import services

    attempts = [
        services.request_rotation(user, actor=Actor.system("test"))
        for user in PamUser.objects.filter(pk__in=user_ids)
    ]
    return {"states": [attempt.state for attempt in attempts]}
