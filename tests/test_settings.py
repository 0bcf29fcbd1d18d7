"""Settings: secure by default, deploy checks pass in production mode, CSP has no inline script."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest


def run_manage(*args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAMROTATE_", "DJANGO_"))}
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


def test_production_mode_refuses_a_malformed_encryption_key_at_first_use(tmp_path):
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
