"""Shared fixtures: the personas, record factories and the real servers; markers and profiles for the suite."""

from __future__ import annotations

import ast
import base64
import binascii
import functools
import importlib
import inspect
import itertools
import logging
import os
import re
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.http import HttpRequest
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser
from tests.ldapservers import samba, slapd, tls_files, unique_name_fixture  # noqa: F401  (fixtures)
from tests.pgserver import pg  # noqa: F401  (fixture: one PostgreSQL per test process)
from tests.secretscan import found_in

PERSONAS = {
    "alice": "Administrators",
    "bob": "Operators",
    "carol": "Viewers",
    "dave": None,
}
PERSONA_PASSWORD = "correct horse battery staple 42"
_counter = itertools.count(1)

# -- Hypothesis: thorough in CI, quick on a developer's machine --------------------------------
# A test sized by its cost says max_examples=examples(N): N in CI, N/5 in dev (make test-fast); one
# that does not gets the profile's. CI=1 (or HYPOTHESIS_PROFILE) selects the profile.
_UNHEALTHY = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
hypothesis_settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=_UNHEALTHY)
hypothesis_settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=_UNHEALTHY)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
hypothesis_settings.load_profile(HYPOTHESIS_PROFILE)


def examples(count: int) -> int:
    """Return a property's example count: ``count`` in CI, a fifth of it (at least 5) on a developer's machine."""
    return count if HYPOTHESIS_PROFILE == "ci" else max(5, count // 5)


# -- Markers from the fixtures a test uses ------------------------------------------------------
# A test is marked by what it needs, so `-m "not slapd"` and `make test-fast` need no list of files.
SERVER_MARKERS = {
    "slapd": "slapd",
    "samba": "samba",
    "strict_samba": "samba",
    "big_samba": "samba",
    "pg": "postgres",
    "browser": "browser",
    "live_server": "live_server",
}
DIRECTORY_KINDS = {"openldap": "slapd", "ad": "samba"}
# Under pytest-xdist (--dist loadgroup) the tests of an expensive server share one worker, so
# each server is provisioned once per run, not once per worker.
XDIST_GROUPS = ("samba", "postgres")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark each test by the real servers its fixtures start, and group them for xdist."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        needs = {marker for fixture, marker in SERVER_MARKERS.items() if fixture in names}
        # A test parametrized over directory kinds takes its server with request.getfixturevalue().
        params = getattr(getattr(item, "callspec", None), "params", {}).values()
        needs |= {
            DIRECTORY_KINDS[value] for value in params if isinstance(value, str) and value in DIRECTORY_KINDS
        }
        needs |= {mark.name for mark in item.iter_markers() if mark.name in SERVER_MARKERS.values()}
        if starts_processes(item):
            needs.add("process")
        for marker in sorted(needs - {mark.name for mark in item.iter_markers()}):
            item.add_marker(marker)
        group = next((name for name in XDIST_GROUPS if name in needs), None)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))


# A test that starts a process (manage.py, a qcluster, gunicorn, rsyslog, Prometheus) is marked
# `process`: found in its source, its fixtures' sources, and the tests' helpers they call by name
# (a helper defined in the same module or imported from another test module).
_STARTS_A_PROCESS = re.compile(r"\bsubprocess\.|\bPopen\(|\bos\.fork\(|\bmultiprocessing\b")
TESTS = Path(__file__).resolve().parent


def _called_names(tree: ast.AST) -> set[str]:
    return {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


@functools.cache
def _module_facts(path: Path) -> tuple[dict[str, ast.AST], dict[str, tuple[Path, str]], str]:
    """Return a test module's functions and classes by name, its names imported from other test modules, its text."""
    text = path.read_text()
    tree = ast.parse(text, str(path))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    imported = {}
    for node in ast.walk(tree):  # imports inside functions too
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            source = TESTS.parent.joinpath(*node.module.split(".")).with_suffix(".py")
            for alias in node.names:
                imported[alias.asname or alias.name] = (source, alias.name)
    return functions, imported, text


@functools.cache
def _process_starters() -> frozenset[tuple[Path, str]]:
    """Return the tests' functions and classes that start a process, directly or through one another."""
    calls, found = {}, set()
    for path in TESTS.rglob("*.py"):
        if "node_modules" in path.parts:
            continue
        functions, imported, text = _module_facts(path.resolve())
        lines = text.splitlines()
        for name, node in functions.items():
            if _STARTS_A_PROCESS.search("\n".join(lines[node.lineno - 1 : node.end_lineno])):
                found.add((path.resolve(), name))
            resolved = {
                (path.resolve(), called) if called in functions else imported.get(called)
                for called in _called_names(node)
            }
            calls[(path.resolve(), name)] = resolved - {None}
        for alias, (source, name) in imported.items():
            calls.setdefault((path.resolve(), alias), set()).add((source.resolve(), name))
    while more := {node for node, targets in calls.items() if node not in found and targets & found}:
        found |= more
    return frozenset(found)


def starts_processes(item) -> bool:
    """Return whether a test, or a fixture it uses, starts a process (through the tests' own helpers too)."""
    functions = [getattr(item, "function", None)]
    for name in getattr(item, "fixturenames", ()):
        functions += [fixturedef.func for fixturedef in item._fixtureinfo.name2fixturedefs.get(name, ())]
    return any(_function_starts_a_process(function) for function in functions if function is not None)


@functools.cache
def _function_starts_a_process(function) -> bool:
    function = inspect.unwrap(function)
    path = Path(inspect.getsourcefile(function) or "/").resolve()
    return (path, function.__name__) in _process_starters()


def ensure_roles() -> None:
    """Create the role groups if missing: a transactional test's flush removes the migration's rows."""
    from django.contrib.auth.models import Permission

    roles = importlib.import_module("records.migrations.0002_roles")
    if Group.objects.filter(name__in=roles.ROLES).count() != len(roles.ROLES):
        roles.grant_roles(Group, Permission)
        importlib.import_module("api.migrations.0002_administrators_manage_applications").grant(
            Group, Permission
        )


def make_persona(name: str) -> User:
    """Create one of the named personas with its role."""
    ensure_roles()
    user = User.objects.create_user(name, f"{name}@example.test", PERSONA_PASSWORD)
    if PERSONAS[name]:
        user.groups.add(Group.objects.get(name=PERSONAS[name]))
    return user


@pytest.fixture
def alice(db):
    return make_persona("alice")


@pytest.fixture
def bob(db):
    return make_persona("bob")


@pytest.fixture
def carol(db):
    return make_persona("carol")


@pytest.fixture
def dave(db):
    return make_persona("dave")


@pytest.fixture
def personas(alice, bob, carol, dave):
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave}


@pytest.fixture
def ldap_env(db, slapd, unique_name):  # noqa: F811 - slapd: the fixture imported above
    """A configuration, directory and rotator on the session's slapd (make_env in tests/test_rotation.py)."""
    from tests.test_rotation import make_env

    return make_env(slapd, unique_name)


@pytest.fixture
def signed_in(client, alice):
    """The test client, signed in as alice (an administrator)."""
    client.force_login(alice)
    return client


def make_configuration(**fields) -> PamConfiguration:
    fields.setdefault("title", f"Configuration {next(_counter)}")
    return PamConfiguration.objects.create(**fields)


def make_directory(configuration=None, **fields) -> PamDirectory:
    fields.setdefault("title", f"Directory {next(_counter)}")
    fields.setdefault("hostname", "127.0.0.1")
    fields.setdefault("directory_type", DirectoryType.OPENLDAP)
    return PamDirectory.objects.create(configuration=configuration or make_configuration(), **fields)


def make_user(configuration=None, password: str = "", **fields) -> PamUser:
    fields.setdefault("title", f"User {next(_counter)}")
    fields.setdefault("login", fields["title"].lower().replace(" ", ""))
    # The factory keeps the pre-issue-16 defaults (rotation off, on demand): tests opt into rotation.
    fields.setdefault("rotation_enabled", False)
    fields.setdefault("schedule_type", "ON_DEMAND")
    if configuration is None:
        resource = fields.get("resource")
        configuration = resource.configuration if resource else make_configuration()
    user = PamUser(configuration=configuration, **fields)
    user.set_password(password)
    user.save()
    return user


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Start every test with an empty cache: notices remember accounts by id, and ids repeat between tests."""
    from django.core.cache import cache

    from api import vault_http

    cache.clear()
    vault_http._counts.clear()  # the Vault paths' per-process share of the rate limit, keyed by token id
    yield
    cache.clear()
    vault_http._counts.clear()


# -- No secret in clear anywhere ---------------------------------------------------------------
# Every password the generator makes during a test is remembered; after the test, the database
# (every table, django-q2's included) and the captured log output are scanned for each of them.

_generated: list[str] = []


@pytest.fixture(autouse=True)
def _record_generated_passwords(monkeypatch):
    from rotation import passwords

    real_generate = passwords.generate

    def generate(policy):
        password = real_generate(policy)
        _generated.append(password)
        return password

    monkeypatch.setattr(passwords, "generate", generate)
    _record_issued_tokens(monkeypatch)
    _register_second_factor_secrets(monkeypatch)
    _register_webhook_secrets(monkeypatch)
    _register_encrypted_secrets(monkeypatch)
    _generated.clear()
    yield _generated


# The models that encrypt a secret before storing it: whatever they encrypt is scanned for too
# (passwords a test or an import supplies, pending passwords, webhook URLs, TOTP seeds).
SECRET_HOLDERS = ("records.models", "rotation.models", "ops.models", "accounts.models")


def _register_encrypted_secrets(monkeypatch) -> None:
    """Scan for every plaintext a model encrypts at rest, not only those the generators made."""
    from pamrotate import crypto

    real_encrypt = crypto.encrypt

    def encrypt(plaintext):
        if sys._getframe(1).f_globals.get("__name__") in SECRET_HOLDERS and len(plaintext) >= 6:
            _generated.append(plaintext)
        return real_encrypt(plaintext)

    monkeypatch.setattr(crypto, "encrypt", encrypt)


def _record_issued_tokens(monkeypatch) -> None:
    """Scan for API tokens too: each one issued in clear joins the generated secrets."""
    from api.models import Token

    real_issue = Token.issue.__func__

    def issue(cls, **kwargs):
        token, clear = real_issue(cls, **kwargs)
        _generated.append(clear)
        return token, clear

    monkeypatch.setattr(Token, "issue", classmethod(issue))

    from api.models import SecretId

    real_secret_id = SecretId.issue.__func__

    def issue_secret_id(cls, *args, **kwargs):
        secret_id, clear = real_secret_id(cls, *args, **kwargs)
        _generated.append(clear)  # AppRole secret IDs too
        return secret_id, clear

    monkeypatch.setattr(SecretId, "issue", classmethod(issue_secret_id))


def _register_second_factor_secrets(monkeypatch) -> None:
    """Scan for second-factor secrets too: every TOTP seed (hex and base32) and recovery code made."""
    from base64 import b32encode

    from accounts import models as account_models

    real_key, real_code = account_models._new_totp_key, account_models._new_recovery_code

    def new_key():
        key = real_key()
        _generated.extend([key.hex(), b32encode(key).decode()])
        return key

    def new_code():
        code = real_code()
        _generated.extend([code, code.replace("-", "")])
        return code

    monkeypatch.setattr(account_models, "_new_totp_key", new_key)
    monkeypatch.setattr(account_models, "_new_recovery_code", new_code)

    from accounts import people

    real_one_time = people._new_one_time_password

    def new_one_time_password():
        clear = real_one_time()
        _generated.append(clear)
        return clear

    monkeypatch.setattr(people, "_new_one_time_password", new_one_time_password)


def _register_webhook_secrets(monkeypatch) -> None:
    """Scan for webhook signing secrets too (ops/): each one made, and its base64 part."""
    from ops import models as ops_models

    real_new = ops_models.new_signing_secret

    def new_secret():
        secret = real_new()
        _generated.extend([secret, secret.removeprefix("whsec_")])
        return secret

    monkeypatch.setattr(ops_models, "new_signing_secret", new_secret)


class SignInClient(Client):
    """Django's test client whose login() passes a request, as django-axes needs."""

    def login(self, **credentials):
        request = HttpRequest()
        request.META["REMOTE_ADDR"] = "127.0.0.1"
        return super().login(request=request, **credentials)


@pytest.fixture
def client():
    """pytest-django's client, able to login() under django-axes."""
    return SignInClient()


_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def database_text() -> str:
    """Return every row of every table as text, blobs decoded, as the current connection sees it."""
    from django.db import connection

    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("latin-1")
                    value = str(value)
                    chunks.append(value)
                    # django-q2 stores task arguments and results as base64 pickles.
                    if len(value) >= 16 and _BASE64.fullmatch(value):
                        try:
                            chunks.append(base64.b64decode(value).decode("latin-1"))
                        except (binascii.Error, ValueError):
                            pass
    return "\n".join(chunks)


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After each test body (its database still there), scan tables and logs for passwords."""
    handler = _LogCapture()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        result = yield
    finally:
        root.removeHandler(handler)
    uses_db = item.get_closest_marker("django_db") or {"db", "transactional_db"} & set(item.fixturenames)
    if _generated and uses_db:
        text = database_text() + "\n" + "\n".join(handler.lines)
        # Each secret in every encoding (tests/secretscan.py); the message names the encoding, never the secret.
        leaked = sorted({kind for secret in _generated if (kind := found_in(secret, text))})
        assert not leaked, f"a generated secret is stored or logged, as: {'; '.join(leaked)}"
    return result
