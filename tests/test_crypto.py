"""Secrets at rest: AES-GCM round trip, key ids, tamper detection and key rotation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
    settings.ENCRYPTION_CANARY_FILE = tmp_path / "encryption.canary"
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
    # Read by another process: closing a descriptor of the database file in this one would drop the
    # POSIX locks of this process's open SQLite connection (a later worker process then checkpoints
    # and removes the WAL under it: "database disk image is malformed", seen in a full run).
    files = [str(p) for p in [name, Path(f"{name}-wal")] if p.exists()]
    blobs = subprocess.run(["cat", *files], capture_output=True, check=True).stdout
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


# -- Keys are checked at start (issue 16) -------------------------------------------------------

CREATE_USER = (
    "from records.models import PamConfiguration, PamUser\n"
    "c = PamConfiguration.objects.create(title='C')\n"
    "u = PamUser(configuration=c, title='U', login='u', rotation_enabled=False)\n"
    "u.set_password('Stored-Under-A-1!')\n"
    "u.save()\n"
)
COUNT_USERS = "from records.models import PamUser; print('users', PamUser.objects.count())"


def new_key_text() -> str:
    return crypto.Key.generate().to_text()


@pytest.fixture(scope="session")
def production_template(tmp_path_factory):
    """Migrate a production-mode data directory once, with one user whose password is under key A."""
    from tests.test_settings import production_env, run_manage

    directory = tmp_path_factory.mktemp("production-template")
    env = production_env(directory)
    migrate = "from django.core.management import call_command\ncall_command('migrate', verbosity=0)\n"
    out = run_manage("shell", "-c", migrate + CREATE_USER, **env)
    assert out.returncode == 0, out.stderr
    return directory, env


@pytest.fixture
def production(production_template, tmp_path):
    """A copy of the migrated template (database and canary) in this test's own data directory."""
    template, env = production_template
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    return env | {"PAMROTATE_DATA_DIR": str(tmp_path)}


def test_a_wrong_key_stops_commands_the_worker_and_the_web_naming_the_problem_not_the_key(production):
    from tests.test_settings import run_manage

    wrong = new_key_text()
    env = production | {"PAMROTATE_ENCRYPTION_KEY": wrong}
    checked = {
        "check": run_manage("check", **env),
        "create a user": run_manage("shell", "-c", CREATE_USER, **env),
        "qcluster": run_manage("qcluster", **env),
        "web": subprocess.run(
            [sys.executable, "-c", "import pamrotate.wsgi"],
            env=run_manage_env(env),
            capture_output=True,
            text=True,
            timeout=120,
        ),
    }
    for what, out in checked.items():
        assert out.returncode != 0, what
        assert "PAMROTATE_ENCRYPTION_KEY cannot decrypt the canary file" in out.stderr, (what, out.stderr)
        assert crypto.Key.from_text(wrong).kid in out.stderr, what
        assert (
            wrong not in out.stderr + out.stdout and production["PAMROTATE_ENCRYPTION_KEY"] not in out.stderr
        )
    # Nothing was written under the wrong key: the right one still reads one user.
    out = run_manage("shell", "-c", COUNT_USERS, **production)
    assert out.returncode == 0 and "users 1" in out.stdout, out.stderr


def run_manage_env(env: dict) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAMROTATE_", "DJANGO_"))}
    return clean | {"PAMROTATE_ENV_FILE": ""} | env


def test_a_host_without_the_canary_is_stopped_by_the_stored_secrets(production, tmp_path):
    from tests.test_settings import run_manage

    (tmp_path / "encryption.canary").unlink()
    out = run_manage("check", **(production | {"PAMROTATE_ENCRYPTION_KEY": new_key_text()}))
    assert out.returncode != 0
    assert "cannot decrypt the stored PAM user #1" in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda key: key[:-6], "must be 32 bytes"),  # truncated
        (lambda key: key[:20] + "!" + key[21:], "not valid base64"),  # b64decode alone would skip the "!"
        (lambda key: "not-a-key at all", "PAMROTATE_ENCRYPTION_KEY: key 1 of 3"),
        (lambda key: f"{key},", ""),  # a trailing comma is fine
    ],
)
def test_a_truncated_or_non_base64_key_is_refused_at_start(production, mangle, message):
    from tests.test_settings import run_manage

    key = production["PAMROTATE_ENCRYPTION_KEY"]
    mangled = mangle(key)
    out = run_manage("check", **(production | {"PAMROTATE_ENCRYPTION_KEY": mangled}))
    if not message:
        assert out.returncode == 0, out.stderr
        return
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert "pamrotate: cannot start:" in out.stderr and "Traceback" not in out.stderr
    assert key[:-6] not in out.stderr


def test_a_rotation_in_progress_new_key_first_and_old_after_starts(production):
    from tests.test_settings import run_manage

    keys = f"{new_key_text()},{production['PAMROTATE_ENCRYPTION_KEY']}"
    out = run_manage("check", **(production | {"PAMROTATE_ENCRYPTION_KEY": keys}))
    assert out.returncode == 0, out.stderr


def write_production_key_file(tmp_path, env: dict) -> tuple[dict, Path]:
    """Return the production env with the key moved from PAMROTATE_ENCRYPTION_KEY to a 0600 key file."""
    path = tmp_path / "etc-encryption.key"
    crypto.write_key_file(path, [crypto.Key.from_text(env["PAMROTATE_ENCRYPTION_KEY"])])
    env = {k: v for k, v in env.items() if k != "PAMROTATE_ENCRYPTION_KEY"}
    return env | {"PAMROTATE_ENCRYPTION_KEY_FILE": str(path)}, path


def test_rotate_encryption_key_works_with_an_explicit_key_file_in_production(production, tmp_path):
    from tests.test_settings import run_manage

    env, path = write_production_key_file(tmp_path, production)
    old = crypto.parse_keys(path.read_text())[0].kid

    out = run_manage("rotate_encryption_key", **env)

    assert out.returncode == 0, out.stderr
    keys = crypto.parse_keys(path.read_text())
    assert len(keys) == 1 and keys[0].kid != old and f"under key {keys[0].kid}" in out.stdout
    assert path.stat().st_mode & 0o777 == 0o600
    # The next start reads the canary and the secret under the new key alone.
    show = "from records.models import PamUser; print(PamUser.objects.get().get_password())"
    out = run_manage("shell", "-c", show, **env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "Stored-Under-A-1!"


def test_a_running_process_reloads_an_explicit_key_file_in_production(production, tmp_path):
    from tests.test_settings import run_manage

    env, path = write_production_key_file(tmp_path, production)
    script = (
        "from pathlib import Path\n"
        "from django.conf import settings\n"
        "from pamrotate import crypto\n"
        "assert settings.ENCRYPTION_KEYS == '' and crypto.key_file_path() == Path(settings.ENCRYPTION_KEY_FILE)\n"
        "before = crypto.ring()\n"
        "new = crypto.Key.generate()\n"
        "crypto.write_key_file(crypto.key_file_path(), [new, *before.keys])\n"
        "after = crypto.ring()\n"
        "print('reloaded', after.current.kid == new.kid and len(after.keys) == 2)\n"
    )
    out = run_manage("shell", "-c", script, **env)
    assert out.returncode == 0, out.stderr
    assert "reloaded True" in out.stdout


def test_both_key_variables_at_once_are_refused(tmp_path):
    from tests.test_settings import production_env, run_manage

    env = production_env(tmp_path) | {"PAMROTATE_ENCRYPTION_KEY_FILE": str(tmp_path / "k")}
    out = run_manage("check", **env)
    assert out.returncode != 0 and "not both" in out.stderr


@pytest.mark.django_db
def test_check_keys_writes_the_canary_once_and_accepts_the_same_keys(key_file, settings):
    canary = Path(settings.ENCRYPTION_CANARY_FILE)
    crypto.check_keys()
    first = canary.read_text()
    assert canary.stat().st_mode & 0o777 == 0o600 and "pamrotate" not in first
    crypto.check_keys()
    assert canary.read_text() == first
    crypto.write_key_file(key_file, [crypto.Key.generate()])
    with pytest.raises(ImproperlyConfigured, match="cannot decrypt the canary file"):
        crypto.check_keys()


@pytest.mark.django_db
def test_key_rotation_reencrypts_the_canary_and_second_factor_seeds(key_file, settings, alice):
    from accounts.models import TOTPDevice

    crypto.check_keys()
    device = TOTPDevice.start(alice)
    seed = device.bin_key

    call_command("rotate_encryption_key", stdout=open("/dev/null", "w"))

    crypto.check_keys()  # the canary follows the new key
    device.refresh_from_db()
    assert device.key_encrypted.split(":")[1] == crypto.ring().current.kid
    assert device.bin_key == seed
