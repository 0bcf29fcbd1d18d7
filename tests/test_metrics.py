"""/metrics: closed by default, a bearer token or an address list, promtool's lint, a real Prometheus scraping it."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from audit.actors import Actor
from audit.events import record_event
from audit.models import AuditEvent
from ops import metrics
from records.models import AccountState
from rotation import heartbeat
from rotation.models import AttemptState
from tests.conftest import make_user
from tests.processes import die_with_parent, free_port, stop_process
from tests.test_heartbeat import change_out_of_band, rotated_earlier
from tests.test_rotation import make_env, rotate

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_prometheus = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(), reason="Debian's prometheus is not installed (make test installs it)"
)
TOKEN = "scrape-token-for-tests"  # noqa: S105 - a test value


def test_metrics_are_not_served_when_nothing_protects_them(db, client, monkeypatch):
    monkeypatch.delenv("PAMROTATE_METRICS_TOKEN", raising=False)
    monkeypatch.delenv("PAMROTATE_METRICS_ALLOW", raising=False)
    assert client.get("/metrics").status_code == 404


def test_a_scrape_needs_the_bearer_token(db, client, monkeypatch):
    monkeypatch.setenv("PAMROTATE_METRICS_TOKEN", TOKEN)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and b'pamrotate_accounts{state="ok"}' in response.content


def test_the_token_can_come_from_a_file(db, client, monkeypatch, tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    monkeypatch.delenv("PAMROTATE_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("PAMROTATE_METRICS_TOKEN_FILE", str(tmp_path / "token"))
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_an_address_list_lets_its_networks_scrape(db, client, monkeypatch):
    monkeypatch.delenv("PAMROTATE_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("PAMROTATE_METRICS_ALLOW", "10.0.0.0/8, not-a-network")
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_promtool_accepts_the_exposition(db, slapd, unique_name):
    env = make_env(slapd, unique_name)
    rotate(env.account(unique_name("prom")))
    record_event(AuditEvent.SIGNIN_FAILED, actor=Actor.system("x"), outcome="fail")
    text = generate_latest(metrics.registry())
    assert b"pamrotate_rotation_duration_seconds_bucket" in text
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_the_figures_follow_the_database(db, slapd, unique_name):
    env = make_env(slapd, unique_name)
    ok = rotate(env.account(unique_name("fig")))
    assert ok.state == AttemptState.SUCCEEDED
    families = {family.name: family for family in metrics.DatabaseCollector().collect()}
    rotations = {
        tuple(sample.labels.values()): sample.value for sample in families["pamrotate_rotations"].samples
    }
    assert rotations[(env.directory.configuration.title, "on_demand", "succeeded")] == 1
    last = families["pamrotate_last_successful_rotation_seconds"].samples[0]
    assert last.labels["configuration"] == env.directory.configuration.title and last.value < 60
    accounts = {sample.labels["state"]: sample.value for sample in families["pamrotate_accounts"].samples}
    assert set(accounts) == set(metrics.ACCOUNT_STATES) and accounts["checked_out"] == 0
    from django.utils import timezone

    from access.models import CheckOut

    later = timezone.now() + dt.timedelta(hours=1)
    CheckOut.objects.create(user=ok.user, holder_name="bob", expires_at=later, max_expires_at=later)
    assert metrics.checked_out() == 1


def _query(port: int, expression: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _wait_for(port: int, expression: str, value: float, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = _query(port, expression)
        if seen == value:
            return
        time.sleep(0.3)
    raise AssertionError(f"{expression} = {seen}, expected {value}")


@pytest.fixture
def prometheus(live_server, tmp_path, monkeypatch):
    """Debian's Prometheus on loopback, scraping the live server every second with the bearer token."""
    monkeypatch.setenv("PAMROTATE_METRICS_TOKEN", TOKEN)
    target = live_server.url.removeprefix("http://")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        f"""
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: pamrotate
    metrics_path: /metrics
    authorization: {{credentials: {TOKEN}}}
    static_configs: [{{targets: ["{target}"]}}]
"""
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen(  # noqa: S603
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,  # noqa: PLW1509
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).close()  # noqa: S310
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "prometheus.log"
                ).read_text()
                time.sleep(0.2)
        yield port
    finally:
        stop_process(process)


@needs_prometheus
def test_prometheus_reads_a_rotation_a_failure_and_a_drift(prometheus, transactional_db, slapd, unique_name):
    env = make_env(slapd, unique_name)
    title = env.directory.configuration.title
    _wait_for(prometheus, 'up{job="pamrotate"}', 1)
    assert rotate(env.account(unique_name("ok"))).state == AttemptState.SUCCEEDED
    _wait_for(prometheus, f'pamrotate_rotations_total{{configuration="{title}",outcome="succeeded"}}', 1)
    broken = make_user(
        configuration=env.directory.configuration,
        title=unique_name("gone"),
        login="gone",
        distinguished_name=f"uid={unique_name('nobody')},{slapd.people_dn}",
        resource=env.directory,
        rotation_enabled=True,
        password="Old-Password-1!",
    )
    assert rotate(broken).state == AttemptState.FAILED
    _wait_for(prometheus, f'pamrotate_rotations_total{{configuration="{title}",outcome="failed"}}', 1)
    _wait_for(prometheus, 'pamrotate_accounts{state="failed"}', 1)
    drifted = env.account(unique_name("drift"))
    rotated_earlier(drifted)
    change_out_of_band(slapd, drifted.distinguished_name, "Out-Of-Band-Pass-9!")
    assert heartbeat.check(drifted).state == AccountState.DRIFTED
    _wait_for(prometheus, 'pamrotate_accounts{state="drifted"}', 1)
    assert _query(prometheus, f'pamrotate_rotation_duration_seconds_count{{configuration="{title}"}}') == 2


def test_each_rotation_is_counted_once_whoever_tallies(db, slapd, unique_name):
    from ops import tally
    from ops.models import RotationTally

    env = make_env(slapd, unique_name)
    for n in range(2):
        assert rotate(env.account(unique_name(f"t{n}"))).state == AttemptState.SUCCEEDED
    tally.update()
    tally.update()  # a second tick (or another qcluster) finds nothing new
    list(metrics.DatabaseCollector().collect())  # a scrape catches up too: still nothing new
    row = RotationTally.objects.get(configuration_id=env.directory.configuration_id, outcome="succeeded")
    assert row.count == 2 and row.timed == 2 and row.buckets[-1] == 2
