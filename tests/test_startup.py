"""Start-up: importing the settings creates and prints nothing; the entry points' start-up step
creates the data directory (0700) and the dev keys (0600) once, and production still needs real keys."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from pamrotate import paths, startup

CREATED = "pamrotate: created"


def clean_env(**overrides) -> dict:
    """Return this process's environment without pamrotate's or Django's variables, plus OVERRIDES."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAMROTATE_", "DJANGO_", "DATABASE_URL"))}
    env["PAMROTATE_ENV_FILE"] = ""  # a developer's .env (make run writes one) must not change the test
    return env | overrides


def run(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=clean_env(**env), capture_output=True, text=True, timeout=120
    )


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_importing_the_settings_creates_no_folder_or_file_and_prints_nothing(tmp_path):
    data = tmp_path / "data"
    keys = {
        "PAMROTATE_SECRET_KEY": "k" * 60,
        "PAMROTATE_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    for database in ("", f"sqlite:///{tmp_path}/named.sqlite3"):
        env = {"PAMROTATE_MODE": "dev", "PAMROTATE_DATA_DIR": str(data), "DATABASE_URL": database}
        out = run("-c", "import pamrotate.settings as s; assert s.DATA_DIR.name == 'data'", **env, **keys)
        assert out.returncode == 0, out.stderr
        assert (out.stdout, out.stderr) == ("", "")
        assert list(tmp_path.iterdir()) == []  # no data directory, no database file

        # No key and no start-up step: a clear refusal naming the file, never a key written here.
        out = run("-c", "import pamrotate.settings", **env)
        assert out.returncode != 0 and out.stdout == ""
        assert f"{data / 'secret_key'} does not exist" in out.stderr
        assert "pamrotate.startup.prepare" in out.stderr
        assert list(tmp_path.iterdir()) == []


def test_manage_py_creates_the_data_directory_and_dev_keys_once(tmp_path):
    data = tmp_path / "fresh" / "data"
    env = {"PAMROTATE_MODE": "dev", "PAMROTATE_HTTPS": "0", "PAMROTATE_DATA_DIR": str(data)}
    out = run("manage.py", "check", **env)
    assert out.returncode == 0, out.stderr
    secret_key, key_file = data / "secret_key", data / "encryption.key"
    assert mode(data) == 0o700
    assert (mode(secret_key), mode(key_file), mode(data / "pamrotate.sqlite3")) == (0o600, 0o600, 0o600)
    lines = [line for line in out.stdout.splitlines() if line.startswith(CREATED)]
    assert lines == [
        f"{CREATED} {secret_key} (dev mode). Keep it safe; it cannot be recovered.",
        f"{CREATED} encryption key file {key_file} (dev mode). Back it up.",
    ]
    assert CREATED not in out.stderr
    written = secret_key.read_text(), key_file.read_text()
    assert len(written[0].strip()) >= 50

    again = run("manage.py", "check", **env)
    assert again.returncode == 0, again.stderr
    assert CREATED not in again.stdout + again.stderr
    assert (secret_key.read_text(), key_file.read_text()) == written  # kept, never replaced
    assert not [p.name for p in data.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("entry", ["pamrotate.wsgi", "pamrotate.asgi"])
def test_the_web_entry_points_prepare_before_the_settings_load(tmp_path, entry):
    data = tmp_path / "data"
    out = run("-c", f"import {entry}", PAMROTATE_MODE="dev", PAMROTATE_DATA_DIR=str(data))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(CREATED) == 2
    assert mode(data / "secret_key") == 0o600 and mode(data / "encryption.key") == 0o600


def test_production_mode_without_keys_refuses_and_writes_no_key(tmp_path):
    env = {"PAMROTATE_MODE": "production", "PAMROTATE_DATA_DIR": str(tmp_path / "data")}
    out = run("manage.py", "check", **env)
    assert out.returncode != 0
    assert (
        "pamrotate: cannot start: PAMROTATE_SECRET_KEY (or PAMROTATE_SECRET_KEY_FILE) is required"
        in out.stderr
    )
    out = run("manage.py", "check", **env, PAMROTATE_SECRET_KEY="k" * 60)
    assert out.returncode != 0
    assert "PAMROTATE_ENCRYPTION_KEY or PAMROTATE_ENCRYPTION_KEY_FILE is required" in out.stderr
    assert CREATED not in out.stdout
    assert not (tmp_path / "data" / "secret_key").exists()
    assert not (tmp_path / "data" / "encryption.key").exists()


def test_processes_starting_together_share_one_key(tmp_path):
    data = tmp_path / "data"
    # Each process prints a fingerprint of the keys it reads, never the keys themselves.
    read = (
        "import hashlib; from pamrotate import paths, startup; startup.prepare(); "
        "keys = paths.secret_key_file().read_bytes() + paths.encryption_key_file().read_bytes(); "
        "print('READ', hashlib.sha256(keys).hexdigest())"
    )
    env = clean_env(PAMROTATE_MODE="dev", PAMROTATE_DATA_DIR=str(data))
    processes = [
        subprocess.Popen([sys.executable, "-c", read], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    assert sum(output.count(CREATED) for output in outputs) == 2  # each key written by one of them
    keys = {output.split("READ ", 1)[1] for output in outputs}
    assert len(keys) == 1  # every process read the same, whole keys


def test_start_up_tightens_the_checkouts_data_directory_and_database(tmp_path, monkeypatch, capsys):
    checkout_data = tmp_path / "data"
    checkout_data.mkdir(mode=0o755)
    checkout_data.chmod(0o755)
    database = checkout_data / "pamrotate.sqlite3"
    database.write_text("")
    database.chmod(0o644)
    monkeypatch.setattr(paths, "DEFAULT_DATA_DIR", checkout_data)
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "pamrotate.settings")
    monkeypatch.setenv("PAMROTATE_MODE", "dev")
    monkeypatch.delenv("PAMROTATE_DATA_DIR")
    startup.prepare()
    assert (mode(checkout_data), mode(database)) == (0o700, 0o600)
    assert capsys.readouterr().out == ""  # the test environment gives both keys: none written


def test_another_settings_module_brings_its_own_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("PAMROTATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PAMROTATE_SECRET_KEY")
    startup.prepare()
    assert not (tmp_path / "data").exists()
