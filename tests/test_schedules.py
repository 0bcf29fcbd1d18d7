"""Schedules: Keeper's types with time zones and DST, and dispatch exactly once per slot."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import pytest
from django.db import connection
from django.utils import timezone

from records import schedules
from records.models import PamUser
from records.schedules import UTC, Schedule, ScheduleError
from rotation import services
from rotation.dispatch import dispatch_due, release_retries
from rotation.models import AttemptState, ErrorClass, RotationAttempt, Trigger
from tests.test_rotation import STRONG, make_env


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# -- The schedule types ------------------------------------------------------------------------


def test_daily_runs_at_local_time_across_the_berlin_spring_forward():
    s = Schedule(type=schedules.DAILY, time=dt.time(2, 30), tz="Europe/Berlin")
    # 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day and runs at 03:30.
    assert s.next_runs(utc(2026, 3, 27, 12), 3) == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]


def test_daily_runs_once_when_new_york_falls_back():
    s = Schedule(type=schedules.DAILY, time=dt.time(1, 30), tz="America/New_York")
    # 2026-11-01 01:30 happens twice (EDT then EST): it runs the first time only.
    assert s.next_runs(utc(2026, 10, 31, 12), 3) == [
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
        utc(2026, 11, 3, 6, 30),
    ]


def test_every_n_days_counts_from_the_anchor():
    s = Schedule(type=schedules.DAILY, time=dt.time(4, 0), interval=3, tz="UTC")
    assert s.next_after(utc(2026, 1, 1, 5), anchor=utc(2026, 1, 1)) == utc(2026, 1, 4, 4)


def test_weekly_on_sunday_at_two_in_berlin():
    s = Schedule(type=schedules.WEEKLY, time=dt.time(2, 0), weekday=6, tz="Europe/Berlin")
    assert s.describe() == "Every Sunday at 02:00, Europe/Berlin"
    assert s.next_runs(utc(2026, 3, 20), 2) == [utc(2026, 3, 22, 1), utc(2026, 3, 29, 1)]


def test_monthly_day_31_runs_on_the_last_day_of_short_months():
    s = Schedule(type=schedules.MONTHLY_BY_DAY, time=dt.time(0, 0), day=31, tz="UTC")
    assert s.next_runs(utc(2026, 1, 31, 1), 3) == [utc(2026, 2, 28), utc(2026, 3, 31), utc(2026, 4, 30)]


def test_monthly_on_the_last_friday_and_the_second_tuesday():
    last_friday = Schedule(
        type=schedules.MONTHLY_BY_WEEKDAY, time=dt.time(3, 0), weekday=4, week=-1, tz="UTC"
    )
    assert last_friday.next_runs(utc(2026, 1, 1), 2) == [utc(2026, 1, 30, 3), utc(2026, 2, 27, 3)]
    second_tuesday = Schedule(
        type=schedules.MONTHLY_BY_WEEKDAY, time=dt.time(3, 0), weekday=1, week=2, tz="UTC"
    )
    assert second_tuesday.next_after(utc(2026, 2, 1)) == utc(2026, 2, 10, 3)


def test_keeper_quartz_cron_maps_to_five_fields_and_follows_dst():
    s = Schedule(type=schedules.CRON, cron="0 0 2 ? * 1", tz="America/New_York")
    s.validate()
    assert schedules.normalize_cron(s.cron) == "0 2 * * 0"
    # 2026-03-08 02:00 does not exist in New York: that Sunday's run is at 03:00 EDT.
    assert s.next_runs(utc(2026, 3, 1), 3) == [utc(2026, 3, 1, 7), utc(2026, 3, 8, 7), utc(2026, 3, 15, 6)]


@pytest.mark.parametrize(
    "cron, message",
    [
        ("*/5 * * * *", "at most once an hour"),
        ("0 0 L * ?", "cannot express"),
        ("0 0 12 ? * 6#3", "cannot express"),
        ("0 0 2 * * ? 2027", "year field"),
        ("30 0 2 * * ?", "seconds must be 0"),
        ("0 2 * * ?", r"write \* instead"),
        ("every day", "5 fields"),
        ("0 25 * * *", "not a valid cron"),
    ],
)
def test_cron_that_cannot_run_is_rejected_with_what_to_write(cron, message):
    with pytest.raises(ScheduleError, match=message):
        Schedule(type=schedules.CRON, cron=cron).validate()


def test_an_unknown_time_zone_is_rejected():
    with pytest.raises(ScheduleError, match="IANA"):
        Schedule(type=schedules.DAILY, time=dt.time(1), tz="Mars/Olympus").validate()


def test_on_demand_never_runs_by_itself():
    assert Schedule(type=schedules.ON_DEMAND).next_after(utc(2026, 1, 1)) is None


# -- Dispatching -------------------------------------------------------------------------------


@pytest.fixture
def due_user(db, slapd, unique_name):
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("sched"), schedule_type=schedules.DAILY, schedule_time=dt.time(3, 0))
    PamUser.objects.filter(pk=user.pk).update(next_rotation_at=timezone.now() - dt.timedelta(seconds=5))
    user.refresh_from_db()
    return user


def scheduled(user):
    return RotationAttempt.objects.filter(user=user, trigger=Trigger.SCHEDULED)


def test_a_due_account_rotates_once_and_moves_to_its_next_slot(
    due_user, slapd, django_capture_on_commit_callbacks
):
    slot = due_user.next_rotation_at
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_due()["dispatched"] == 1
        assert dispatch_due()["dispatched"] == 0
    attempt = scheduled(due_user).get()
    assert attempt.slot == slot and attempt.state == AttemptState.SUCCEEDED, attempt.error_message
    due_user.refresh_from_db()
    assert due_user.next_rotation_at > timezone.now()
    assert due_user.next_rotation_at.astimezone(UTC).time() == dt.time(3, 0)
    assert slapd.can_bind(due_user.distinguished_name, due_user.get_password())
    assert due_user.get_password() != STRONG


def test_after_downtime_an_overdue_account_rotates_once_not_once_per_missed_slot(due_user):
    PamUser.objects.filter(pk=due_user.pk).update(next_rotation_at=timezone.now() - dt.timedelta(days=10))
    dispatch_due()
    dispatch_due()
    assert scheduled(due_user).count() == 1
    due_user.refresh_from_db()
    assert due_user.next_rotation_at > timezone.now()


def test_a_slot_taken_by_another_dispatcher_is_not_dispatched_again(due_user):
    # Another cluster's dispatcher already made this slot's attempt but has not moved the slot yet.
    RotationAttempt.objects.create(user=due_user, trigger=Trigger.SCHEDULED, slot=due_user.next_rotation_at)
    assert dispatch_due()["dispatched"] == 0
    assert scheduled(due_user).count() == 1


def test_a_restarted_worker_never_rotates_before_the_time(due_user):
    PamUser.objects.filter(pk=due_user.pk).update(next_rotation_at=timezone.now() + dt.timedelta(minutes=5))
    for _ in range(3):
        dispatch_due()
    assert not scheduled(due_user).exists()


def test_a_manual_rotation_racing_the_schedule_leaves_one_rotation(due_user):
    manual = services.request_rotation(due_user, enqueue=False)
    dispatch_due()
    attempt = scheduled(due_user).get()
    assert attempt.state == AttemptState.REFUSED and attempt.error_class == ErrorClass.BUSY
    assert manual.state == AttemptState.QUEUED


@pytest.mark.parametrize("field, value", [("rotation_enabled", False), ("managed", True)])
def test_blocked_accounts_are_skipped_and_lose_their_next_slot(due_user, field, value):
    PamUser.objects.filter(pk=due_user.pk).update(**{field: value})
    assert dispatch_due()["skipped"] == 1
    assert not scheduled(due_user).exists()
    due_user.refresh_from_db()
    assert due_user.next_rotation_at is None


def test_transient_failures_retry_at_most_three_times_per_slot(due_user, slapd):
    slapd.stop()
    try:
        dispatch_due()
        for _ in range(3):
            RotationAttempt.objects.filter(user=due_user, state=AttemptState.QUEUED).update(
                retry_at=timezone.now() - dt.timedelta(seconds=1)
            )
            release_retries(timezone.now())
    finally:
        slapd.start()
    tries = RotationAttempt.objects.filter(user=due_user).order_by("try_number")
    assert [a.try_number for a in tries] == [1, 2, 3]
    assert all(a.state == AttemptState.FAILED and a.error_class == ErrorClass.TRANSIENT for a in tries)
    assert {a.slot for a in tries} == {tries[0].slot}
    due_user.refresh_from_db()
    assert due_user.rotation_status == "failed" and "unreachable" in due_user.rotation_error
    assert slapd.can_bind(due_user.distinguished_name, STRONG)


def test_migrate_creates_the_two_dispatch_schedules_thirty_seconds_apart(db):
    from django_q.models import Schedule as QSchedule

    rows = list(QSchedule.objects.filter(func="rotation.tasks.dispatch").order_by("name"))
    assert [r.name for r in rows] == ["pamrotate-dispatch-a", "pamrotate-dispatch-b"]
    assert (rows[1].next_run - rows[0].next_run).total_seconds() % 60 == 30


# -- End to end: a real qcluster process -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_real_qcluster_runs_a_scheduled_and_an_on_demand_rotation(slapd, unique_name, tmp_path):
    from django_q.models import Schedule as QSchedule

    from rotation.dispatch import ensure_dispatch_schedules

    ensure_dispatch_schedules()
    QSchedule.objects.filter(func="rotation.tasks.dispatch").update(next_run=timezone.now())
    env = make_env(slapd, unique_name)
    sched_user = env.account(unique_name("e2es"), schedule_type=schedules.DAILY, schedule_time=dt.time(3, 0))
    PamUser.objects.filter(pk=sched_user.pk).update(next_rotation_at=timezone.now() + dt.timedelta(seconds=2))
    demand_user = env.account(unique_name("e2ed"))

    child_env = dict(
        os.environ,
        PAMROTATE_Q_SYNC="0",
        DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    log = open(tmp_path / "qcluster.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], env=child_env, stdout=log, stderr=log
    )
    try:
        on_demand = services.request_rotation(demand_user)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            done = RotationAttempt.objects.filter(
                user__in=[sched_user, demand_user], state__in=[AttemptState.SUCCEEDED, AttemptState.FAILED]
            ).count()
            if done >= 2:
                break
            time.sleep(0.5)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
    output = (tmp_path / "qcluster.log").read_text()
    on_demand.refresh_from_db()
    assert on_demand.state == AttemptState.SUCCEEDED, output[-3000:]
    runs = scheduled(sched_user)
    assert runs.count() == 1, output[-3000:]
    assert runs.get().state == AttemptState.SUCCEEDED
    for user in (sched_user, demand_user):
        user.refresh_from_db()
        assert slapd.can_bind(user.distinguished_name, user.get_password())
        assert user.get_password() not in output


# -- Health ------------------------------------------------------------------------------------


def test_healthz_is_503_until_a_worker_heartbeat_and_200_after(client, db):
    from rotation.tasks import dispatch

    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["worker"] is False
    dispatch()
    body = client.get("/healthz").json()
    assert body["ok"] and body["database"] and body["worker"] and body["scheduler"]
    assert "worker:default" in body["heartbeats"]


def test_healthz_turns_503_when_the_heartbeat_is_older_than_two_minutes(client, db, time_machine):
    from rotation.tasks import dispatch

    time_machine.move_to(timezone.now())
    dispatch()
    time_machine.shift(dt.timedelta(minutes=3))
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"] is True


def test_an_account_whose_dispatched_attempt_no_worker_took_is_overdue_and_mailed(
    due_user, settings, mailoutbox, monkeypatch
):
    settings.NOTIFY_EMAIL_TO = ["secops@example.test"]
    monkeypatch.setattr("rotation.queue.enqueue_batch", lambda gateway, ids: None)  # no worker
    from django.core.cache import cache

    from rotation.dispatch import notify_overdue_accounts

    cache.clear()
    dispatch_due()  # the slot moves on and its attempt waits in the queue
    assert not PamUser.objects.overdue().filter(pk=due_user.pk).exists()
    later = timezone.now() + dt.timedelta(minutes=6)  # and no worker took it meanwhile
    assert PamUser.objects.overdue(later).filter(pk=due_user.pk).exists()
    assert notify_overdue_accounts(later) == 1
    assert notify_overdue_accounts(later) == 0  # at most one mail per account per hour
    assert len(mailoutbox) == 1 and due_user.title in mailoutbox[0].body
    assert STRONG not in mailoutbox[0].body


def test_the_fallback_task_and_the_qcluster_dispatcher_run_the_same_tick(due_user, monkeypatch):
    from rotation import dispatch, tasks, worker
    from rotation.models import Heartbeat

    ticks = []
    monkeypatch.setattr(dispatch, "tick", lambda *a, **kw: ticks.append(kw) or {})
    monkeypatch.setattr(worker, "close_old_connections", lambda: None)  # it would end the test's transaction
    tasks.dispatch()  # a worker took the fallback task: its gateway's heartbeat
    taken = Heartbeat.objects.get(name="worker:default").seen_at
    dispatcher = worker.Dispatcher(housekeeping_every=30)
    for _ in range(3):
        dispatcher.step()
    assert ticks == [{}, {"housekeeping": True}, {"housekeeping": False}, {"housekeeping": False}]
    # The dispatcher itself never says a worker is alive.
    assert Heartbeat.objects.get(name="worker:default").seen_at == taken


def test_a_tick_resends_a_queued_attempt_that_no_worker_took(due_user, monkeypatch):
    from rotation import dispatch

    sent = []
    monkeypatch.setattr("rotation.dispatch.enqueue_attempt", sent.append)
    orphan = RotationAttempt.objects.create(user=due_user, trigger=Trigger.ON_DEMAND)
    RotationAttempt.objects.filter(pk=orphan.pk).update(created_at=timezone.now() - dt.timedelta(minutes=2))
    PamUser.objects.filter(pk=due_user.pk).update(next_rotation_at=None)

    dispatch.tick()  # finds the orphan (its broker queue is empty) and marks it for sending
    dispatch.tick()  # sends it
    assert [attempt.pk for attempt in sent] == [orphan.pk]


def test_a_slot_moves_once_and_only_from_its_due_value(due_user):
    slot = due_user.next_rotation_at
    following = slot + dt.timedelta(days=1)
    assert PamUser.objects.take_slots([(due_user.pk, slot, following)]) == {due_user.pk}
    assert PamUser.objects.take_slots([(due_user.pk, slot, following)]) == set()  # another dispatcher
    assert PamUser.objects.get(pk=due_user.pk).next_rotation_at == following
    assert PamUser.objects.take_slots([(due_user.pk, following, None)]) == {due_user.pk}
    assert PamUser.objects.get(pk=due_user.pk).next_rotation_at is None
