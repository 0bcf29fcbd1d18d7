"""API conformance: Schemathesis (`--checks all`) against the served schema, with data and a token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api import services
from tests.conftest import make_configuration, make_directory, make_user

# Failures the schema cannot rule out, and why (Schemathesis' check name: the reason).
INHERENT = {
    # A title is unique: a generated body may repeat one an earlier example created.
    # An id or uid drawn at random names nothing: 404 is the truthful answer.
}
EXAMPLES = 4  # per operation and phase
MAX_SECONDS = 35  # Schemathesis stops generating after this: the suite must fit in 300 s


@pytest.fixture
def seeded(live_server, alice):
    """Return the server's URL and an Administrator's token, with one record of each kind."""
    configuration = make_configuration(title="Conformance")
    admin = make_user(
        configuration, title="Conformance admin", password="Admin-Pass-1!", rotation_enabled=False
    )
    directory = make_directory(
        configuration, title="Conformance LDAP", port=9, administrative_credential=admin
    )
    make_user(
        configuration,
        title="Conformance user",
        resource=directory,
        distinguished_name="cn=c,dc=example,dc=com",
    )
    _token, clear = services.issue_token(user=alice, actor=alice)
    return live_server.url, clear


def test_the_api_conforms_to_its_schema(seeded, tmp_path, monkeypatch):
    from api.throttles import TokenRateThrottle

    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "100000/minute"})
    url, token = seeded
    report = tmp_path / "report.json"
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{url}/api/schema/?format=json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(EXAMPLES),
        "--generation-deterministic",
        "--no-shrink",
        "--request-timeout",
        "10",
        "--workers",
        "2",
        "--max-time",
        str(MAX_SECONDS),
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"}
    )
    Path("/tmp/schemathesis-last.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert json.loads(report.read_text().splitlines()[0])
