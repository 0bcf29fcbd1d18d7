"""Settings: secure by default, deploy checks pass in production mode, CSP has no inline script."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest


def run_manage(*args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAMROTATE_", "DJANGO_"))}
    env["PAMROTATE_ENV_FILE"] = ""  # a developer's .env (make run writes one) must not change the test
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=env, capture_output=True, text=True, timeout=120
    )


def production_env(tmp_path) -> dict:
    return {
        "PAMROTATE_MODE": "production",
        "PAMROTATE_DATA_DIR": str(tmp_path),
        "PAMROTATE_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(48)).decode(),
        "PAMROTATE_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "PAMROTATE_ALLOWED_HOSTS": "pam.example.com",
    }


def test_check_deploy_passes_in_production_mode(tmp_path):
    out = run_manage("check", "--deploy", "--fail-level", "WARNING", **production_env(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_production_mode_refuses_a_malformed_encryption_key_at_start(tmp_path):
    env = production_env(tmp_path) | {"PAMROTATE_ENCRYPTION_KEY": "short"}
    out = run_manage("shell", "-c", "from pamrotate import crypto; crypto.encrypt('x')", **env)
    assert out.returncode != 0
    assert "32 bytes" in out.stderr or "base64" in out.stderr


@pytest.mark.parametrize("mode", ["staging", "PROD"])
def test_an_unknown_mode_is_refused(tmp_path, mode):
    out = run_manage("check", **(production_env(tmp_path) | {"PAMROTATE_MODE": mode}))
    assert out.returncode != 0 and "PAMROTATE_MODE" in out.stderr


def test_secrets_can_come_from_files(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("k" * 60)
    env = production_env(tmp_path)
    del env["PAMROTATE_SECRET_KEY"]
    env["PAMROTATE_SECRET_KEY_FILE"] = str(key_file)
    out = run_manage("check", **env)
    assert out.returncode == 0, out.stderr


def test_every_response_has_a_csp_without_inline_script(client, db):
    response = client.get("/accounts/login/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert b"<script>" not in response.content and b"style=" not in response.content


def test_templates_hold_no_inline_script_or_style():
    from pathlib import Path

    offenders = []
    for path in Path("templates").rglob("*.html"):
        text = path.read_text()
        if "<script>" in text or " style=" in text or "<style" in text or " onclick=" in text:
            offenders.append(str(path))
    assert offenders == []


def test_a_key_file_readable_by_others_warns_and_fails_check_deploy(tmp_path):
    from pamrotate import crypto

    path = tmp_path / "encryption.key"
    crypto.write_key_file(path, [crypto.Key.generate()])
    env = production_env(tmp_path)
    del env["PAMROTATE_ENCRYPTION_KEY"]
    env["PAMROTATE_ENCRYPTION_KEY_FILE"] = str(path)
    assert run_manage("check", "--deploy", **env).returncode == 0  # 0600: fine

    path.chmod(0o644)
    out = run_manage("check", **env)
    assert out.returncode == 0 and "pamrotate.W001" in out.stderr and "chmod 600" in out.stderr
    out = run_manage("check", "--deploy", **env)
    assert out.returncode != 0 and "pamrotate.E001" in out.stderr, out.stdout + out.stderr


def test_dev_mode_keeps_the_data_directory_and_database_private(tmp_path):
    data = tmp_path / "data"
    env = {"PAMROTATE_MODE": "dev", "PAMROTATE_DATA_DIR": str(data), "PAMROTATE_HTTPS": "0"}
    out = run_manage("migrate", "--noinput", "-v0", **env)
    assert out.returncode == 0, out.stderr
    database = data / "pamrotate.sqlite3"
    assert data.stat().st_mode & 0o777 == 0o700
    modes = {p.name: p.stat().st_mode & 0o777 for p in data.iterdir() if p.is_file()}
    assert modes[database.name] == 0o600, modes
    assert all(mode == 0o600 for mode in modes.values()), modes  # keys, canary, -wal/-shm too


def test_an_inline_comment_in_the_env_file_is_not_part_of_the_value(tmp_path, monkeypatch):
    from pamrotate.envfile import load_env_file

    path = tmp_path / ".env"
    path.write_text(
        'PAMROTATE_TEST_MODE=dev  # local only\nPAMROTATE_TEST_QUOTED="a # b"\nPAMROTATE_TEST_HASH=a#b\n'
    )
    for name in ("PAMROTATE_TEST_MODE", "PAMROTATE_TEST_QUOTED", "PAMROTATE_TEST_HASH"):
        monkeypatch.delenv(name, raising=False)
    load_env_file(path)
    # The hand-written loader kept "dev  # local only": an unknown mode that stopped start-up.
    assert os.environ["PAMROTATE_TEST_MODE"] == "dev"
    assert os.environ["PAMROTATE_TEST_QUOTED"] == "a # b"  # quoted: the # is the value's
    assert os.environ["PAMROTATE_TEST_HASH"] == "a#b"  # no space before #: not a comment, as in sh


def test_a_dollar_in_an_env_file_secret_is_kept_as_written(tmp_path, monkeypatch):
    from pamrotate.envfile import load_env_file

    path = tmp_path / ".env"
    path.write_text("PAMROTATE_TEST_SECRET='pa$$w${HOME}rd'\n")
    monkeypatch.delenv("PAMROTATE_TEST_SECRET", raising=False)
    load_env_file(path)
    assert os.environ["PAMROTATE_TEST_SECRET"] == "pa$$w${HOME}rd"


def test_database_url_keeps_escaped_credentials_the_port_and_options(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from pamrotate.settings import database_settings

    monkeypatch.setenv(
        "DATABASE_URL", "postgresql://pam%40rotate:p%2Fw%3Ad@db.example:5433/pam?sslmode=verify-full"
    )
    database = database_settings()
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["USER"], database["PASSWORD"]) == ("pam@rotate", "p/w:d")
    assert (database["HOST"], int(database["PORT"]), database["NAME"]) == ("db.example", 5433, "pam")
    assert database["OPTIONS"] == {"sslmode": "verify-full"} and database["CONN_MAX_AGE"] == 60

    monkeypatch.setenv("DATABASE_URL", "mysql://u:p@h/pam")
    with pytest.raises(ImproperlyConfigured, match="postgresql:// or sqlite:///"):
        database_settings()


def test_a_sqlite_database_url_gets_the_private_file_and_the_write_ahead_log(tmp_path, monkeypatch):
    from pamrotate import startup
    from pamrotate.settings import database_settings

    path = tmp_path / "other.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    database = database_settings()
    assert database["NAME"] == str(path) and database["ENGINE"] == "django.db.backends.sqlite3"
    assert not path.exists()  # the settings only compute; start-up creates the file
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "pamrotate.settings")
    startup.prepare()
    assert path.stat().st_mode & 0o777 == 0o600
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
