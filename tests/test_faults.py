"""Fault injection with real servers and real worker processes: no account is ever locked out.

- a worker killed (SIGKILL) at each step of the protocol, ten times per step;
- slapd stopped in the middle of a 600-account burst of batches, then started again;
- PostgreSQL stopped while the worker runs, then started again;
- fifty concurrent "Rotate now" presses for one account while its schedule comes due.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection
from django.db.models import Count, Q
from django.test import Client
from django.utils import timezone

from records import schedules
from records.models import PamUser
from rotation import services
from rotation.models import AttemptState, ErrorClass, RotationAttempt, Trigger
from tests.conftest import make_persona
from tests.pgserver import Qcluster, app_env, call, wait_for
from tests.test_postgres import add_slapd_accounts, pg_app, seed, stored_passwords  # noqa: F401  (fixture)
from tests.test_rotation import STRONG, make_env

FINISHED = (AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.RECONCILED, AttemptState.REFUSED)
ACTIVE = (AttemptState.QUEUED, AttemptState.RUNNING, AttemptState.UNKNOWN)


def sqlite_env(tmp_path, **extra: str) -> dict[str, str]:
    """The environment of a worker process on this test's SQLite database."""
    return app_env(
        f"sqlite:///{connection.settings_dict['NAME']}",
        tmp_path,
        DJANGO_SETTINGS_MODULE="tests.settings",
        **extra,
    )


def scheduled_accounts(env, unique_name, count: int, prefix: str) -> list[PamUser]:
    """Create ``count`` accounts on the env's server, all due a second ago."""
    accounts = add_slapd_accounts(env.server, unique_name(prefix), count)
    users = []
    for login, dn in accounts:
        user = PamUser(
            configuration=env.directory.configuration,
            title=login,
            login=login,
            distinguished_name=dn,
            resource=env.directory,
            rotation_enabled=True,
            schedule_type=schedules.DAILY,
            schedule_time=dt.time(3, 0),
            next_rotation_at=timezone.now() - dt.timedelta(seconds=1),
        )
        user.set_password(STRONG)
        users.append(user)
    PamUser.objects.bulk_create(users)
    return list(PamUser.objects.filter(resource=env.directory, login__in=[login for login, _ in accounts]))


def assert_every_stored_password_binds(server, users) -> None:
    locked_out = []
    for user in PamUser.objects.filter(pk__in=[u.pk for u in users]):
        if not server.can_bind(user.distinguished_name, user.get_password()):
            locked_out.append(user.login)
    assert locked_out == [], f"{len(locked_out)} accounts do not bind with their stored password"


# -- A worker killed at each step -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "fault, expected",
    [
        ("after_write_ahead", AttemptState.FAILED),
        ("after_change", AttemptState.RECONCILED),
        ("before_commit", AttemptState.RECONCILED),
    ],
)
def test_a_worker_killed_ten_times_at_each_step_locks_no_account_out(
    slapd, unique_name, tmp_path, fault, expected
):
    env = make_env(slapd, unique_name)
    users = scheduled_accounts(env, unique_name, 10, "kill")
    attempts = RotationAttempt.objects.filter(user__in=users)
    faulty = sqlite_env(
        tmp_path,
        PAMROTATE_FAULT_POINT=fault,
        PAMROTATE_FAULT_JITTER_MS="100",
        PAMROTATE_ROTATION_LEASE_SECONDS="2",
    )
    with Qcluster(faulty, tmp_path / "faulty.log") as cluster:
        # Every task kills its worker: ten attempts left running means the sentinel restarted
        # the two workers at least eight times.
        wait_for(
            lambda: attempts.filter(state=AttemptState.RUNNING).count() == 10
            and cluster.output().count("reincarnated worker") >= 10,
            60,
            message=cluster.output()[-3000:],
        )
        assert cluster.alive
        assert attempts.exclude(pending_password_encrypted="").count() == 10  # written ahead
    # A fresh qcluster without the fault: its dispatcher reconciles what the dead workers left.
    # An attempt that never reached the directory fails as an interruption and is retried; the
    # retries' backoff is pulled forward so the test need not wait for it.
    with Qcluster(sqlite_env(tmp_path), tmp_path / "fresh.log") as cluster:
        wait_for(
            lambda: _pull_retries_forward(users) or not attempts.filter(state__in=ACTIVE).exists(),
            90,
            message=cluster.output()[-3000:],
        )
    killed = attempts.filter(trigger=Trigger.SCHEDULED)
    states = list(killed.values_list("state", flat=True))
    assert states == [expected] * 10, list(killed.values_list("error_message", flat=True))
    retries = attempts.filter(trigger=Trigger.RETRY)
    if expected == AttemptState.FAILED:
        assert list(retries.values_list("state", flat=True)) == [AttemptState.SUCCEEDED] * 10
    else:
        assert not retries.exists()
    assert_every_stored_password_binds(slapd, users)
    for user in PamUser.objects.filter(pk__in=[u.pk for u in users]):
        assert user.get_password() != STRONG


# -- The directory goes away in the middle of a batch -------------------------------------------


def _pull_retries_forward(users) -> None:
    RotationAttempt.objects.filter(user__in=users, state=AttemptState.QUEUED, retry_at__isnull=False).update(
        retry_at=timezone.now() - dt.timedelta(seconds=1)
    )


@pytest.mark.django_db(transaction=True)
def test_slapd_stopped_mid_batch_leaves_every_account_rotated_or_retried(slapd, unique_name, tmp_path):
    env = make_env(slapd, unique_name)
    # Enough accounts that the group-committed batches (hundreds a second) are still running
    # when the first ones commit; the poll is quick so that slapd stops in the middle.
    users = scheduled_accounts(env, unique_name, 600, "batch")
    attempts = RotationAttempt.objects.filter(user__in=users)
    with Qcluster(sqlite_env(tmp_path), tmp_path / "qcluster.log") as cluster:
        wait_for(lambda: attempts.filter(state=AttemptState.SUCCEEDED).count() >= 30, 60, interval=0.02)
        slapd.stop()
        stopped_after = attempts.filter(state=AttemptState.SUCCEEDED).count()
        time.sleep(1)
        slapd.start()

        def settled() -> bool:
            _pull_retries_forward(users)  # retries wait 30 s and 2 min: no need here
            if attempts.filter(state__in=(AttemptState.QUEUED, AttemptState.RUNNING)).exists():
                return False
            if attempts.filter(state=AttemptState.UNKNOWN).exists():
                services.reconcile_stale()  # what the dispatcher does every 30 s
                return False
            return True

        wait_for(settled, 120, interval=0.5, message=cluster.output()[-3000:])
    assert stopped_after < 600, "slapd was stopped after the batch had finished"

    failed = attempts.filter(state=AttemptState.FAILED)
    assert failed.exists(), "no rotation met the stopped directory"
    where = f"the directory is unreachable at {slapd.host}:{slapd.ldaps_port}"
    for attempt in failed:
        assert attempt.error_class == ErrorClass.TRANSIENT and where in attempt.error_message, (
            attempt.error_message
        )
        retry = attempts.get(user_id=attempt.user_id, slot=attempt.slot, try_number=attempt.try_number + 1)
        assert retry.trigger == Trigger.RETRY
    rotated = PamUser.objects.filter(pk__in=[u.pk for u in users]).annotate(
        ok=Count("attempts", filter=Q(attempts__state__in=(AttemptState.SUCCEEDED, AttemptState.RECONCILED)))
    )
    assert sorted(set(rotated.values_list("ok", flat=True))) == [1], "an account was missed or rotated twice"
    assert_every_stored_password_binds(slapd, users)


# -- The database goes away while the worker runs ----------------------------------------------


def test_postgresql_stopped_while_the_worker_runs_loses_and_half_records_nothing(pg_app, slapd, unique_name):  # noqa: F811
    prefix = unique_name("pgdown")
    accounts = add_slapd_accounts(slapd, prefix, 80)
    ids = seed(pg_app.env(), slapd, accounts, prefix, due_in_seconds=2)["users"]
    rotated = (
        "SELECT count(DISTINCT user_id) FROM rotation_rotationattempt WHERE user_id = ANY(%s) "
        "AND state IN ('succeeded', 'reconciled')"
    )
    active = (
        "SELECT count(*) FROM rotation_rotationattempt WHERE user_id = ANY(%s) "
        "AND state IN ('queued', 'running', 'unknown')"
    )
    worker = pg_app.qcluster("qcluster", PAMROTATE_ROTATION_LEASE_SECONDS="5")
    with worker:
        wait_for(lambda: pg_app.scalar(rotated, [ids]) >= 10, 60, message=worker.output()[-3000:])
        pg_app.server.stop()
        time.sleep(3)
        assert worker.alive, worker.output()[-3000:]
        pg_app.server.start()

        def settled() -> bool:
            if pg_app.scalar(rotated, [ids]) >= 80 and not pg_app.scalar(active, [ids]):
                return True
            call("tests.pgserver:recover", pg_app.env(), orphaned_after=5)
            pg_app.query(
                "UPDATE rotation_rotationattempt SET retry_at = now() WHERE retry_at > now() "
                "AND user_id = ANY(%s) RETURNING id",
                [ids],
            )
            return False

        def unsettled() -> str:
            rows = pg_app.query(
                "SELECT id, state, try_number, retry_at, error_message FROM rotation_rotationattempt "
                "WHERE user_id = ANY(%s) AND state NOT IN ('succeeded', 'reconciled')",
                [ids],
            )
            return (
                f"rotated {pg_app.scalar(rotated, [ids])} of 80; not done: {rows}\n{worker.output()[-2000:]}"
            )

        wait_for(settled, 120, interval=1, message=unsettled)
        assert worker.alive, worker.output()[-3000:]
    assert "OperationalError" in worker.output() or "connection" in worker.output().lower()

    # Every success is complete: pending cleared, history kept, audited; nothing left half-way.
    rows = pg_app.query(
        "SELECT a.id, a.state, a.pending_password_encrypted = '', "
        "(SELECT count(*) FROM rotation_passwordversion v WHERE v.attempt_id = a.id), "
        "(SELECT count(*) FROM rotation_auditevent e WHERE e.attempt_id = a.id) "
        "FROM rotation_rotationattempt a WHERE a.user_id = ANY(%s)",
        [ids],
    )
    for attempt_id, state, cleared, versions, audits in rows:
        assert state in ("succeeded", "reconciled", "failed"), (attempt_id, state)
        assert cleared, f"attempt {attempt_id} kept its pending password after it ended"
        assert audits == 1, f"attempt {attempt_id} has {audits} audit events"
        assert versions == (1 if state != "failed" else 0), (attempt_id, state, versions)
    per_user = pg_app.query(
        "SELECT user_id, count(*) FROM rotation_rotationattempt WHERE user_id = ANY(%s) "
        "AND state IN ('succeeded', 'reconciled') GROUP BY user_id",
        [ids],
    )
    assert sorted(count for _, count in per_user) == [1] * 80
    for dn, password in stored_passwords(pg_app, ids).values():
        assert password != STRONG and slapd.can_bind(dn, password)


# -- Fifty presses of "Rotate now" while the schedule comes due ---------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_rotate_now_presses_and_a_due_schedule_rotate_one_at_a_time(
    live_server, slapd, unique_name, tmp_path, monkeypatch
):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # the live server queues to the real worker below
    env = make_env(slapd, unique_name)
    # The presses must not move the slot, or the schedule may never come due during the test.
    env.directory.configuration.manual_rotation_resets_schedule = False
    env.directory.configuration.save()
    user = env.account(unique_name("press"), schedule_type=schedules.DAILY, schedule_time=dt.time(3, 0))
    due = timezone.now() + dt.timedelta(seconds=3)
    PamUser.objects.filter(pk=user.pk).update(next_rotation_at=due)
    client = Client()
    client.force_login(make_persona("bob"))
    session = client.cookies["sessionid"].value
    csrf = "a" * 32
    url = f"{live_server.url}/rotation/users/{user.pk}/rotate/"
    statuses: list[int] = []

    def press() -> None:
        request = urllib.request.Request(  # noqa: S310 - the live server's http:// URL
            url,
            data=b"",
            method="POST",
            headers={"Cookie": f"sessionid={session}; csrftoken={csrf}", "X-CSRFToken": csrf},
        )
        try:
            with urllib.request.build_opener(_NoRedirect).open(request, timeout=60) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)

    attempts = RotationAttempt.objects.filter(user=user)
    with Qcluster(sqlite_env(tmp_path), tmp_path / "qcluster.log") as cluster:
        wait_for(lambda: "running" in cluster.output().lower() or "started" in cluster.output().lower(), 30)
        time.sleep(max(0.0, (due - timezone.now()).total_seconds() - 0.5))
        threads = [threading.Thread(target=press) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        wait_for(
            lambda: attempts.filter(trigger=Trigger.SCHEDULED).exists()
            and not attempts.filter(state__in=ACTIVE).exists(),
            60,
            message=lambda: (
                f"next rotation {PamUser.objects.get(pk=user.pk).next_rotation_at}, due {due}, "
                f"attempts {list(attempts.values_list('trigger', 'state'))[:5]}\n{cluster.output()[-3000:]}"
            ),
        )
    assert statuses == [302] * 50
    on_demand = attempts.filter(trigger=Trigger.ON_DEMAND)
    assert on_demand.count() == 50, "a press left no attempt"
    assert attempts.filter(trigger=Trigger.SCHEDULED).count() == 1
    for attempt in attempts:
        assert attempt.state in FINISHED
        if attempt.state == AttemptState.REFUSED:
            assert attempt.error_class == ErrorClass.BUSY and "Already rotating" in attempt.error_message
        else:
            assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    runs = list(attempts.filter(state=AttemptState.SUCCEEDED).order_by("started_at"))
    assert runs, "nothing rotated"
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert earlier.finished_at <= later.started_at, "two rotations of one account overlapped"
    user.refresh_from_db()
    assert slapd.can_bind(user.distinguished_name, user.get_password())
    assert user.password_versions.count() == min(len(runs), 10)
