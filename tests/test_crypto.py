"""Secrets at rest: AES-GCM round trip, key ids, tamper detection and key rotation."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from pamrotate import crypto
from records.models import PamUser
from rotation.models import PasswordVersion, RotationAttempt
from tests.conftest import make_user


@pytest.fixture
def key_file(settings, tmp_path):
    """Use a key file (not the environment) for the duration of a test."""
    path = tmp_path / "keys"
    crypto.write_key_file(path, [crypto.Key.generate()])
    settings.ENCRYPTION_KEYS = ""
    settings.ENCRYPTION_KEY_FILE = str(path)
    crypto.reset_ring()
    yield path
    crypto.reset_ring()


def test_a_secret_round_trips_and_the_ciphertext_names_its_key():
    ciphertext = crypto.encrypt("S3cret-pässword!")
    prefix, kid, _ = ciphertext.split(":")
    assert prefix == "pr1"
    assert kid == crypto.ring().current.kid
    assert "S3cret" not in ciphertext
    assert crypto.decrypt(ciphertext) == "S3cret-pässword!"


def test_the_same_secret_encrypts_differently_each_time():
    assert crypto.encrypt("same") != crypto.encrypt("same")


def test_a_tampered_ciphertext_does_not_decrypt():
    ciphertext = crypto.encrypt("value")
    body = ciphertext.rsplit(":", 1)[1]
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(ciphertext.rsplit(":", 1)[0] + ":" + flipped)


def test_an_unknown_key_id_is_reported_not_guessed():
    other = crypto.KeyRing([crypto.Key.generate()])
    with pytest.raises(crypto.DecryptionError, match="no encryption key with id"):
        crypto.decrypt(other.encrypt("value"))


@pytest.mark.parametrize("text", ["not base64!", "c2hvcnQ="])
def test_a_malformed_key_is_refused(text):
    with pytest.raises(ImproperlyConfigured):
        crypto.Key.from_text(text)


def test_production_mode_refuses_to_start_without_keys(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMROTATE_")}
    env.update(
        PAMROTATE_MODE="production",
        PAMROTATE_DATA_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="pamrotate.settings",
    )
    out = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "PAMROTATE_SECRET_KEY" in out.stderr
    env["PAMROTATE_SECRET_KEY"] = "x" * 60
    out = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "PAMROTATE_ENCRYPTION_KEY" in out.stderr


def test_dev_mode_creates_a_private_key_file_once(settings, tmp_path):
    settings.ENCRYPTION_KEYS = ""
    settings.ENCRYPTION_KEY_FILE = str(tmp_path / "encryption.key")
    crypto.reset_ring()
    try:
        first = crypto.encrypt("x")
        assert (tmp_path / "encryption.key").stat().st_mode & 0o777 == 0o600
        crypto.reset_ring()
        assert crypto.decrypt(first) == "x"
    finally:
        crypto.reset_ring()


@pytest.mark.django_db
def test_key_rotation_reencrypts_every_secret_and_loses_none(key_file):
    old_kid = crypto.ring().current.kid
    users = [make_user(password=f"Password-{i}-ü") for i in range(5)]
    attempt = RotationAttempt.objects.create(user=users[0])
    attempt.set_pending("Pending-Ω-1")
    attempt.save()
    PasswordVersion.objects.create(
        user=users[1], password_encrypted=crypto.encrypt("Old-version-1"), replaced_at="2026-01-01T00:00Z"
    )

    call_command("rotate_encryption_key", stdout=open("/dev/null", "w"))

    new_ring = crypto.ring()
    assert new_ring.current.kid != old_kid
    assert [k.kid for k in crypto.parse_keys(Path(key_file).read_text())] == [new_ring.current.kid]
    for i, user in enumerate(users):
        user = PamUser.objects.get(pk=user.pk)
        assert user.password_encrypted.split(":")[1] == new_ring.current.kid
        assert user.get_password() == f"Password-{i}-ü"
    attempt.refresh_from_db()
    assert attempt.get_pending() == "Pending-Ω-1"
    assert PasswordVersion.objects.get(user=users[1]).get_password() == "Old-version-1"


@pytest.mark.django_db
def test_key_rotation_keeps_the_old_key_until_everything_is_reencrypted(key_file, monkeypatch):
    from rotation.management.commands import rotate_encryption_key as command

    user = make_user(password="Keep-me-1")
    old_kid = crypto.ring().current.kid

    def crash(ring):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(command, "reencrypt_all", crash)
    with pytest.raises(RuntimeError):
        call_command("rotate_encryption_key")
    # The interrupted run left both keys, so the stored secret still decrypts.
    kids = [k.kid for k in crypto.parse_keys(Path(key_file).read_text())]
    assert old_kid in kids and len(kids) == 2
    crypto.reset_ring()
    assert PamUser.objects.get(pk=user.pk).get_password() == "Keep-me-1"


@pytest.mark.django_db(transaction=True)
def test_the_database_file_holds_no_plaintext_password():
    secret = "Plaintext-Canary-7431!"
    user = make_user(password=secret)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(FULL)")
    name = Path(connection.settings_dict["NAME"])
    blobs = b"".join(p.read_bytes() for p in [name, Path(f"{name}-wal")] if p.exists())
    assert user.password_encrypted.encode() in blobs  # the row is in the file...
    assert secret.encode() not in blobs  # ...but never in clear
    assert secret.encode("utf-16-le") not in blobs


@pytest.mark.django_db
def test_the_leak_scan_sees_every_table_including_django_q_task_payloads():
    from django_q.models import Task

    from tests.conftest import database_text

    canary = "Leak-Canary-5521!"
    Task.objects.create(
        id="x1",
        name="t",
        func="f",
        args=(canary,),
        started="2026-01-01T00:00Z",
        stopped="2026-01-01T00:00Z",
        success=True,
    )
    assert canary in database_text()
