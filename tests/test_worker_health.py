"""Health means "a task was taken" (issue 19): canaries, stalled gateways, and a worker that gives up.

- an idle healthy gateway stays green for 10 minutes of simulated time (clock seam);
- a canary no worker takes turns /healthz 503 naming the gateway; a taken task turns it green;
- a real qcluster whose workers are stopped: 503 naming the gateway, the attempt page says so,
  the workers resume and it is green again with the same web process; SIGTERM with stopped
  workers still exits within the grace time;
- a real qcluster whose database (its broker) goes away logs one error naming the cause and
  exits with status 3 instead of reincarnating its pusher.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
from html import unescape

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit.actors import Actor
from rotation import dispatch, services, tasks
from rotation.broker import EXIT_BROKER_UNREACHABLE
from rotation.models import AttemptState, Heartbeat, RotationAttempt
from tests.conftest import make_configuration, make_directory, make_user
from tests.pgserver import ROOT, Qcluster, app_env, wait_for
from tests.test_fork_safety import descendants
from tests.test_postgres import pg_app  # noqa: F401  (fixture)
from tests.test_rotation import make_env


def test_an_idle_healthy_gateway_stays_green_for_ten_minutes(client, db, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    for _ in range(20):  # the dispatcher's housekeeping every 30 s; the canary runs (sync mode)
        dispatch.tick()
        body = client.get("/healthz").json()
        assert body["ok"] and body["stalled"] == [], body
        assert Heartbeat.objects.get(name="worker:default").seen_at == timezone.now()
        time_machine.shift(dt.timedelta(seconds=30))


@pytest.fixture
def no_worker(monkeypatch):
    """Tasks sent to the broker that no worker takes: the list of their function names."""
    sent = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kwargs: sent.append(func))
    return sent


def test_a_canary_no_worker_takes_makes_healthz_503_naming_the_gateway(
    client, alice, db, time_machine, no_worker
):
    time_machine.move_to(timezone.now(), tick=False)
    Heartbeat.beat("worker:default")  # a worker took a task once
    time_machine.shift(dt.timedelta(seconds=30))
    dispatch.tick()
    assert no_worker.count("rotation.tasks.canary") == 1
    time_machine.shift(dt.timedelta(seconds=59))
    assert client.get("/healthz").status_code == 200  # not yet: the threshold is 60 s
    dispatch.tick()
    assert no_worker.count("rotation.tasks.canary") == 1  # one waits: no second one
    time_machine.shift(dt.timedelta(seconds=2))

    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["stalled"] == [
        {
            "gateway": "default",
            "seconds": 91,
            "accounts": 0,
            "message": "gateway default has taken no task for 91 s",
        }
    ]
    dashboard = unescape(login_page(client, alice, reverse("records:dashboard")))
    assert "The gateway default has taken no task for 91 s" in dashboard

    tasks.canary()  # a worker takes it
    assert client.get("/healthz").status_code == 200


def test_a_lost_canary_is_sent_again_and_the_wait_still_counts_from_the_first(
    client, db, time_machine, no_worker
):
    time_machine.move_to(timezone.now(), tick=False)
    dispatch.tick()
    time_machine.shift(dt.timedelta(minutes=6))  # nothing is in the broker's queue: it was lost
    dispatch.tick()
    assert no_worker.count("rotation.tasks.canary") == 2
    assert client.get("/healthz").json()["stalled"][0]["seconds"] == 360


def test_a_queued_attempt_no_worker_takes_names_its_gateway_on_every_page(client, alice, db, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    Heartbeat.beat("worker:east")
    directory = make_directory(make_configuration(gateway="east"))
    user = make_user(
        title="svc-east",
        resource=directory,
        distinguished_name="uid=svc-east,dc=example",
        rotation_enabled=True,
    )
    time_machine.shift(dt.timedelta(seconds=5))
    attempt = services.request_rotation(user, enqueue=False)
    assert attempt.state == AttemptState.QUEUED
    time_machine.shift(dt.timedelta(seconds=70))
    said = "gateway east has taken no task for 75 s"  # since its last task, 5 s before the request

    assert said in client.get("/healthz").json()["stalled"][0]["message"]
    login_page(client, alice, "/")
    for url in (attempt.get_absolute_url(), user.get_absolute_url(), reverse("records:dashboard")):
        assert said in unescape(client.get(url).content.decode()), url
    # The gateway takes a task (any task): green again, and the pages say nothing.
    Heartbeat.beat("worker:east")
    assert client.get("/healthz").json()["stalled"] == []
    assert "has taken no task" not in client.get(attempt.get_absolute_url()).content.decode()


def login_page(client, user, url: str) -> str:
    from tests.test_rotation_ui import login

    login(client, user)
    return client.get(url).content.decode()


# -- A real qcluster whose workers stop --------------------------------------------------------------


def cluster_children(cluster: Qcluster) -> list[int]:
    """Return the sentinel's children (workers, pusher, monitor): the processes that take tasks."""
    tree = descendants(cluster.process.pid)
    sentinel = [pid for pid, parent in tree.items() if parent == cluster.process.pid]
    return [pid for pid, parent in tree.items() if parent in sentinel]


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@pytest.mark.django_db(transaction=True)
def test_stopped_workers_turn_healthz_503_and_resumed_ones_green_without_a_web_restart(
    client, alice, slapd, unique_name, tmp_path, settings, monkeypatch
):
    settings.WORKER_STALL_SECONDS = 5
    monkeypatch.setattr("django_q.conf.Conf.SYNC", False)  # "Rotate now" goes to the broker, not in-process
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("stall"))
    child_env = app_env(
        f"sqlite:///{connection.settings_dict['NAME']}",
        tmp_path,
        DJANGO_SETTINGS_MODULE="tests.settings",
        PAMROTATE_WORKER_CANARY_SECONDS="2",
        PAMROTATE_WORKER_STOP_GRACE_SECONDS="4",
    )
    stopped: list[int] = []
    with Qcluster(child_env, tmp_path / "qcluster.log") as cluster:
        try:
            wait_for(
                lambda: client.get("/healthz").status_code == 200,
                60,
                message=lambda: cluster.output()[-3000:],
            )
            stopped = cluster_children(cluster)
            assert len(stopped) >= 3  # two workers, the pusher, the monitor
            signal_all(stopped, signal.SIGSTOP)
            attempt = services.request_rotation(user, actor=Actor.system("test"))
            started = time.monotonic()
            body = wait_for(
                lambda: (lambda r: r.status_code == 503 and r.json()["stalled"] and r.json())(
                    client.get("/healthz")
                ),
                120,
                message=lambda: cluster.output()[-3000:],
            )
            assert time.monotonic() - started < 120
            assert [stall["gateway"] for stall in body["stalled"]] == ["default"], body
            assert body["stalled"][0]["message"].startswith("gateway default has taken no task for")
            page = unescape(login_page(client, alice, attempt.get_absolute_url()))
            assert "The gateway default has taken no task for" in page

            signal_all(stopped, signal.SIGCONT)
            stopped = []
            wait_for(
                lambda: client.get("/healthz").status_code == 200
                and RotationAttempt.objects.filter(pk=attempt.pk, state=AttemptState.SUCCEEDED).exists(),
                60,
                message=lambda: cluster.output()[-3000:],
            )
            assert "has taken no task" not in client.get(attempt.get_absolute_url()).content.decode()

            # SIGTERM while the workers cannot answer: the cluster still exits within its grace time.
            stopped = cluster_children(cluster)
            signal_all(stopped, signal.SIGSTOP)
            began = time.monotonic()
            cluster.process.send_signal(signal.SIGTERM)
            cluster.process.wait(20)
            assert time.monotonic() - began < 4 + 4, cluster.output()[-2000:]  # the grace, then the kill
            assert cluster.process.returncode == 0
        finally:
            signal_all(stopped, signal.SIGCONT)
    assert "did not stop within 4 s; killing them" in cluster.output()


# -- A worker that cannot reach its broker ---------------------------------------------------------


def test_a_cluster_whose_broker_is_gone_says_why_once_and_exits_3(pg_app):  # noqa: F811
    cluster = pg_app.qcluster("broker-gone", PAMROTATE_BROKER_FAILURE_SECONDS="3")
    with cluster:
        wait_for(lambda: "running" in cluster.output(), 30, message=lambda: cluster.output()[-3000:])
        pg_app.server.stop()
        try:
            cluster.process.wait(40)
        finally:
            pg_app.server.start()
    log = cluster.output()
    assert cluster.process.returncode == EXIT_BROKER_UNREACHABLE, log[-3000:]
    assert log.count("cannot reach its broker") == 1, log[-3000:]
    assert "OperationalError" in log.split("cannot reach its broker")[1].splitlines()[0]
    assert "reincarnated pusher" not in log


# -- make run / make demo show and restart a worker that stopped ------------------------------------


def test_serve_names_a_worker_that_stopped_on_an_error_and_starts_it_again(monkeypatch, capfd):
    import threading

    from records.management.commands import serve

    monkeypatch.setattr(serve, "RESTART_DELAY", 0)
    runs = []
    worker = [sys.executable, "-c", "import sys; print('worker run', flush=True); sys.exit(3)"]
    web = [sys.executable, "-c", "import time; time.sleep(60)"]
    stopper = threading.Timer(3, lambda: os.kill(os.getpid(), signal.SIGTERM))
    stopper.start()
    try:
        code = serve.supervise([worker, web], on_start=lambda: runs.append("started"), restart=(0,))
    finally:
        stopper.cancel()
    out, err = capfd.readouterr()
    assert code == 0 and runs == ["started"]
    assert out.count("worker run") >= 2  # started again after each exit
    assert "`-c import sys; print('worker run', flush=True); sys.exit(3)` stopped with exit status 3" in err


def test_make_demo_writes_the_same_env_as_make_run():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "demo"):
        line = next(
            line for line in makefile.splitlines() if line.startswith(f"{target}: ") and "venv" in line
        )
        assert ".env" in line.split(":", 1)[1].split(), line
