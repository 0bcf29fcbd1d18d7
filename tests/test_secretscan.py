"""The secret scan run after every test finds a secret in any encoding, in a table or a log line, and only then."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils.timezone import now
from django_q.models import OrmQ, Task
from django_q.signing import SignedPackage

from api.models import Application, Token
from audit.events import record_event
from audit.models import AuditEvent
from pamrotate import crypto
from rotation import passwords
from tests.conftest import _LogCapture, database_text, make_user
from tests.secretscan import SHORTEST, encodings, found_in, named_encodings

# Characters that each encoding writes differently: a quote, an ampersand, a plus, a slash, a space,
# a percent sign, a backslash and two letters outside ASCII (one outside latin-1).
SECRET = 'Pw"&+/ %\\é中-9fQz'
NAMES = sorted(named_encodings(SECRET))
ROOT = Path(__file__).resolve().parent.parent


def planted() -> str:
    """Return a new secret like a generated password, but unknown to the scan after each test (we plant it)."""
    return secrets.token_urlsafe(15) + secrets.choice("!#$%&*+/=?@^~") + secrets.token_hex(3)


def test_a_secret_has_many_distinct_encodings_and_none_is_short():
    forms = named_encodings(SECRET)
    assert len(set(forms.values())) >= 18
    assert all(len(form) >= SHORTEST for form in forms.values())
    assert encodings(SECRET) == set(forms.values())
    assert {"clear", "hex", "URL-encoded", "HTML-escaped", "JSON-escaped", "UTF-16-LE"} <= set(forms)


@pytest.mark.parametrize("name", NAMES)
def test_each_encoding_planted_in_an_audit_event_is_found_and_named(db, name):
    record_event(AuditEvent.CONNECTION_TESTED, message=f"before {named_encodings(SECRET)[name]} after")

    kind = found_in(SECRET, database_text())

    assert kind is not None
    assert named_encodings(SECRET)[kind] in named_encodings(SECRET)[name]  # what it found is inside
    assert SECRET not in kind


@pytest.mark.parametrize("name", NAMES)
def test_each_encoding_in_a_log_line_is_found(name):
    handler = _LogCapture()
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("pamrotate.test").warning("retrying with %s", named_encodings(SECRET)[name])
    finally:
        logging.getLogger().removeHandler(handler)

    assert found_in(SECRET, "\n".join(handler.lines)) is not None


@pytest.mark.parametrize("before", [b"", b"x", b"xy"])
def test_a_secret_inside_a_larger_base64_blob_is_found_at_each_alignment(before):
    raw = SECRET.encode()
    for blob in (base64.b64encode(before + raw + b"!?"), base64.urlsafe_b64encode(before + raw).rstrip(b"=")):
        assert found_in(SECRET, f"token={blob.decode()};") is not None
    # An HTTP Basic header: the login before the secret sets its alignment.
    assert found_in(SECRET, "Basic " + base64.b64encode(f"{'a' * len(before)}:{SECRET}".encode()).decode())


@pytest.mark.parametrize("padding", ["", "x", "xy"])
def test_a_secret_in_django_q2_task_arguments_or_a_queued_payload_is_found(db, padding):
    secret = planted()
    Task.objects.create(
        id="t1", name="n", func="f", args=(padding + secret,), started=now(), stopped=now(), success=True
    )
    assert found_in(secret, database_text()) is not None  # picklefield's base64, decoded by database_text
    Task.objects.all().delete()
    OrmQ.objects.create(key="default", payload=SignedPackage.dumps({"id": "t", "args": (padding + secret,)}))
    assert found_in(secret, database_text()) is not None  # a signed urlsafe base64 pickle, left encoded


def test_unrelated_values_a_hash_or_the_ciphertext_of_the_secret_are_not_flagged(db):
    secret, other = planted(), planted()
    record_event(AuditEvent.CONNECTION_TESTED, message=" ".join(sorted(encodings(other))))
    record_event(AuditEvent.CONNECTION_TESTED, message=hashlib.sha256(secret.encode()).hexdigest())
    record_event(AuditEvent.CONNECTION_TESTED, message=crypto.encrypt(secret)[:1000])
    record_event(AuditEvent.CONNECTION_TESTED, message=secret[:-1] + "\x01")  # all but its last character

    assert found_in(secret, database_text()) is None
    assert found_in(other, database_text()) is not None


def test_a_clean_run_making_every_kind_of_secret_is_not_flagged(db, client, bob, _record_generated_passwords):
    from tests.test_mfa import enrol

    client.force_login(bob)
    enrol(client, bob)
    Token.issue(application=Application.objects.create(name="scan-app"), created_by=bob)
    make_user(login="svc-scan", password=passwords.generate(passwords.Complexity()))
    call_command("pam_webhook", "add", "http://127.0.0.1:9/hook", "--events", "failure", "--name", "scan")

    assert len(_record_generated_passwords) >= 10
    text = database_text()
    assert [found_in(secret, text) for secret in _record_generated_passwords] == [None] * len(
        _record_generated_passwords
    )


INNER = """
import logging, os
from audit.events import record_event
from audit.models import AuditEvent
from tests.secretscan import named_encodings

SECRET = os.environ["PLANTED_SECRET"]


def test_hex_in_a_table(db, _record_generated_passwords):
    _record_generated_passwords.append(SECRET)
    record_event(AuditEvent.CONNECTION_TESTED, message=named_encodings(SECRET)["hex"])


def test_utf16_in_a_log_line(db, _record_generated_passwords):
    _record_generated_passwords.append(SECRET)
    logging.getLogger("pamrotate").error("got %s", named_encodings(SECRET)["UTF-16-BE"])


def test_clean(db, _record_generated_passwords):
    _record_generated_passwords.append(SECRET)
    record_event(AuditEvent.CONNECTION_TESTED, message="nothing secret")
"""


def test_the_scan_after_each_test_fails_a_leaking_test_naming_the_encoding_and_not_the_secret(tmp_path):
    secret = planted()
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import _fresh_cache, _record_generated_passwords, pytest_runtest_call  # noqa: F401"
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--show-capture=no"]
    command += ["--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), str(tmp_path / "test_inner.py")]
    (tmp_path / "data").mkdir()  # its own test database, not this process's
    env = {**os.environ, "PLANTED_SECRET": secret, "PAMROTATE_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert "2 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    assert "AssertionError: a generated secret is stored or logged, as: hex\n" in result.stdout
    assert "AssertionError: a generated secret is stored or logged, as: UTF-16\n" in result.stdout
    assert found_in(secret, result.stdout + result.stderr) is None
