"""The static-cred read path (api.lookups): two statements, the same answers, on SQLite and on PostgreSQL.

``read_path_facts`` builds its own records and reads them through the whole served stack
(middleware, the Vault path, the token, the policy, the audit row); it runs in this process on
the test database (SQLite) and, through tests/pgserver.call, in a child process on a real
PostgreSQL, and both give the same facts.
"""

from __future__ import annotations

import datetime as dt
import threading

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import examples
from tests.pgserver import app_env, call


def read_path_facts(prefix: str = "rp") -> dict:
    """Create accounts, an application over two configurations and two people's tokens; read; return what was seen."""
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from api import lookups
    from api.models import Application, Token, digest
    from audit.models import AuditEvent
    from pamrotate import crypto
    from records.models import PamConfiguration, PamUser
    from rotation.models import PasswordVersion

    def account(configuration, title: str, password: str) -> PamUser:
        user = PamUser(configuration=configuration, title=f"{prefix}-{title}", login=f"{prefix}{title}")
        user.set_password(password)
        user.save()
        return user

    mine, also_mine, theirs = (PamConfiguration.objects.create(title=f"{prefix} {n}") for n in (1, 2, 3))
    rotated = account(mine, "rotated", "Current-Pass-1!")
    now = timezone.now().replace(microsecond=0)
    PamUser.objects.filter(pk=rotated.pk).update(
        last_rotated_at=now - dt.timedelta(hours=1),
        next_rotation_at=now + dt.timedelta(days=1),
        schedule_time=dt.time(3, 30),
        rotation_enabled=True,
    )
    # The previous password is the one replaced last, whatever order the versions were written in.
    for hours_ago, password in ((3, "Older-Pass-1!"), (2, "Previous-Pass-1!"), (5, "Oldest-Pass-1!")):
        PasswordVersion.objects.create(
            user=rotated,
            password_encrypted=crypto.encrypt(password),
            valid_from=now - dt.timedelta(days=9),
            replaced_at=now - dt.timedelta(hours=hours_ago),
        )
    elsewhere = account(also_mine, "elsewhere", "Elsewhere-Pass-1!")
    hidden = account(theirs, "hidden", "Hidden-Pass-1!")
    # A title that is another account's uid: the uid wins, as Vault's role name is the uid first.
    decoy = account(mine, "decoy", "Decoy-Pass-1!")
    PamUser.objects.filter(pk=decoy.pk).update(title=elsewhere.uid)

    application = Application.objects.create(name=f"{prefix}-reader")
    application.configurations.set([mine, also_mine])
    _token, clear = Token.issue(application=application)
    operator = User.objects.create_user(f"{prefix}-operator")
    operator.groups.add(Group.objects.get(name="Operators"))
    admin = User.objects.create_user(f"{prefix}-admin")
    admin.groups.add(Group.objects.get(name="Administrators"))
    _token, operators = Token.issue(user=operator)
    _token, admins = Token.issue(user=admin)

    client = Client(HTTP_HOST="localhost", REMOTE_ADDR="192.0.2.7")

    def read(name: str, token: str = clear) -> dict:
        response = client.get(f"/v1/ldap/static-cred/{name}", HTTP_X_VAULT_TOKEN=token)
        body = response.json()
        return {"status": response.status_code, "data": body.get("data"), "errors": body.get("errors")}

    # Every field of a row loaded by api.lookups is what the ORM loads (Django's converters: times, flags).
    loaded = {
        "account": _fields(lookups.account_by_role_name(rotated.uid)[0]),
        "token": _fields(lookups.token_by_digest(digest(clear))),
        "application": _fields(lookups.token_by_digest(digest(clear)).application),
    }
    orm = {
        "account": _fields(PamUser.objects.get(pk=rotated.pk)),
        "token": _fields(Token.objects.get(digest=digest(clear))),
        "application": _fields(application),
    }
    read(rotated.title)  # the token's first use is recorded (once a minute): not part of a read's cost
    events_before = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).count()
    with CaptureQueriesContext(connection) as statements:
        by_title = read(rotated.title)
    event = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).order_by("-id").first()
    rotated.refresh_from_db()
    return {
        "loaded": loaded,
        "orm": orm,
        "by_title": by_title,
        "statements": [query["sql"].split()[0] for query in statements.captured_queries],
        "events": AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).count() - events_before,
        "event": {
            "actor_name": event.actor_name,
            "actor_id": event.actor_id,
            "remote_address": event.remote_address,
            "record": [event.record_type, event.record_id, event.record_uid, event.record_title],
            "message": event.message,
            "category": event.category,
            "outcome": event.outcome,
        },
        "rotated": {"pk": rotated.pk, "uid": rotated.uid, "title": rotated.title, "login": rotated.login},
        "last_rotated_at": rotated.last_rotated_at.isoformat(),
        "by_uid_other_configuration": read(elsewhere.uid)["data"],
        "uid_over_title": read(elsewhere.uid)["data"]["username"] == elsewhere.login,
        "decoy_by_its_uid": read(decoy.uid)["data"]["username"] == decoy.login,
        "hidden": read(hidden.title),
        "missing": read(f"{prefix}-no-such-role"),
        "operator": read(rotated.title, operators),
        "admin": read(rotated.title, admins),
        "operator_hidden": read(hidden.title, operators)["status"],
        "nasty": nasty_statuses(clear),
        "revoked": _revoked_read(clear, read, rotated.title),
    }


def _fields(instance) -> dict:
    """Return every concrete field's value with its type, as text (what a child process can hand back)."""
    values = {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}
    return {name: f"{type(value).__name__}:{value}" for name, value in values.items()}


def _revoked_read(clear: str, read, name: str) -> dict:
    from api.models import Token, digest

    Token.objects.filter(digest=digest(clear)).update(revoked_at=dt.datetime.now(dt.UTC))
    return read(name)


def check_facts(facts: dict) -> None:
    """Assert what a read must give, whatever the database."""
    assert facts["loaded"] == facts["orm"]
    data = facts["by_title"]["data"]
    assert facts["by_title"]["status"] == 200
    assert data["password"] == "Current-Pass-1!" and data["last_password"] == "Previous-Pass-1!"
    assert data["username"] == facts["rotated"]["login"]
    assert data["last_vault_rotation"] == facts["last_rotated_at"] and data["last_vault_rotation"].endswith(
        "+00:00"
    )
    assert data["rotation_period"] == 25 * 3600 and 1 <= data["ttl"] <= 24 * 3600
    # The token (with its application, scope and the account with its previous password), the audit row.
    assert facts["statements"] == ["SELECT", "INSERT"]
    assert facts["events"] == 1
    rotated = facts["rotated"]
    assert facts["event"] == {
        "actor_name": "application:rp-reader",
        "actor_id": None,
        "remote_address": "192.0.2.7",
        "record": ["pamuser", rotated["pk"], rotated["uid"], rotated["title"]],
        "message": "Read the current and previous password",
        "category": "security",
        "outcome": "ok",
    }
    assert facts["by_uid_other_configuration"]["password"] == "Elsewhere-Pass-1!"
    assert facts["by_uid_other_configuration"]["last_password"] == ""
    assert facts["uid_over_title"] and facts["decoy_by_its_uid"]
    # An application is told "permission denied" for a name out of scope and for one that does not exist.
    assert facts["hidden"] == {"status": 403, "data": None, "errors": ["permission denied"]}
    assert facts["missing"] == facts["hidden"]
    # People read with their roles: an Operator the current password only, an Administrator both.
    assert facts["operator"]["status"] == 200 and facts["operator"]["data"]["last_password"] == ""
    assert facts["admin"]["data"]["last_password"] == "Previous-Pass-1!"
    assert facts["operator_hidden"] == 200  # the Operators group holds its role on every configuration
    assert all(status < 500 for status in facts["nasty"]), facts["nasty"]
    assert facts["revoked"]["status"] == 403 and facts["revoked"]["errors"] == [
        "permission denied",
        "invalid token",
    ]


def test_a_read_on_sqlite_is_two_statements_with_the_same_answers(db):
    from tests.conftest import ensure_roles

    ensure_roles()  # a transactional test before this one on the same worker flushed the migration's groups
    check_facts(read_path_facts())


def test_a_read_on_postgresql_is_two_statements_with_the_same_answers(pg, tmp_path):
    database = pg.create_database(pg.migrated_template(tmp_path / "template"))
    check_facts(call("tests.test_vault_read:read_path_facts", app_env(pg.url(database), tmp_path)))


def test_the_rate_limit_counts_every_read_of_a_threaded_worker(db, monkeypatch):
    """A gthread worker serves reads at once: a small limit (counted exactly) lets exactly its number pass."""
    from types import SimpleNamespace

    from api import vault_http
    from api.models import Application, Token
    from api.throttles import TokenRateThrottle

    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "30/minute"})
    monkeypatch.setattr(vault_http, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))  # mid-window
    token, _clear = Token.issue(application=Application.objects.create(name="threaded"))
    request = SimpleNamespace(auth=token, user=None, META={})
    outcomes: list[int] = []

    def reads() -> None:
        for _ in range(10):
            try:
                vault_http.throttle(request)
                outcomes.append(200)
            except vault_http.VaultError as refused:
                outcomes.append(refused.status)

    threads = [threading.Thread(target=reads) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 80 and set(outcomes) <= {200, 429}
    assert outcomes.count(200) == 30, outcomes.count(200)


NASTY_NAMES = ["a\x00b", "\x00", "x" * 5000, "'; DROP TABLE x; --", "%", "é/ü", "..", "a b", "\ud7ff", "%00"]


def nasty_statuses(token: str) -> list[int]:
    """Return the statuses of reads by odd role names (a NUL, SQL, a long name, escapes): never a 500."""
    from urllib.parse import quote

    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    return [
        client.get(f"/v1/ldap/static-cred/{quote(name, safe='')}", HTTP_X_VAULT_TOKEN=token).status_code
        for name in NASTY_NAMES
    ]


@given(name=st.text(max_size=300), token=st.text(max_size=80))
@hypothesis_settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_role_name_or_token_gives_a_server_error(client, db, name, token):
    from urllib.parse import quote

    from api.models import Application, Token

    _token, clear = Token.issue(application=Application.objects.get_or_create(name="odd-names")[0])
    for presented in (clear, token):
        response = client.get(
            f"/v1/ldap/static-cred/{quote(name, safe='')}",
            HTTP_X_VAULT_TOKEN=presented.encode("utf-8", "surrogatepass").decode("latin-1"),
        )
        assert response.status_code < 500, (name, response.content[:200])
        assert response.status_code in (403, 404, 400, 429) and "errors" in response.json()
