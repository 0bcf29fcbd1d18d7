"""Rotation windows and blackouts: a due slot outside the window waits for its start; notices before a rotation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops import notices
from ops.models import Notice
from records import schedules
from records.models import PamUser
from rotation import dispatch
from tests.conftest import examples, make_configuration, make_user
from tests.test_records_forms import configuration_data

UTC = dt.UTC
WEEKNIGHTS = schedules.Window(
    mode=schedules.WINDOW_ALLOW, weekdays="01234", start=dt.time(22), end=dt.time(5), tz="Europe/Berlin"
)


def test_a_slot_outside_the_window_moves_to_the_window_start():
    daily_noon = schedules.Schedule(
        type=schedules.DAILY, time=dt.time(12), tz="Europe/Berlin", window=WEEKNIGHTS
    )
    # Wednesday 2 December 2026, 09:00 UTC: noon Berlin is outside; the window opens at 22:00 Berlin (21:00 UTC).
    runs = daily_noon.next_runs(dt.datetime(2026, 12, 2, 9, tzinfo=UTC), 4)
    assert runs == [
        dt.datetime(2026, 12, 2, 21, tzinfo=UTC),
        dt.datetime(2026, 12, 3, 21, tzinfo=UTC),
        dt.datetime(2026, 12, 4, 21, tzinfo=UTC),  # Friday night
        dt.datetime(2026, 12, 7, 21, tzinfo=UTC),  # then Monday: no period starts at the weekend
    ]


def test_a_slot_inside_the_window_keeps_its_time():
    nightly = schedules.Schedule(type=schedules.DAILY, time=dt.time(2), tz="Europe/Berlin", window=WEEKNIGHTS)
    # Saturday 02:00 is inside Friday's 22:00–05:00 period.
    assert nightly.next_after(dt.datetime(2026, 12, 4, 12, tzinfo=UTC)) == dt.datetime(
        2026, 12, 5, 1, tzinfo=UTC
    )


def test_a_blackout_pushes_a_slot_to_its_end():
    blackout = schedules.Window(
        mode=schedules.WINDOW_BLACKOUT, weekdays="0123456", start=dt.time(8), end=dt.time(18), tz="UTC"
    )
    hourly = schedules.Schedule(type=schedules.CRON, cron="0 * * * *", tz="UTC", window=blackout)
    assert hourly.next_after(dt.datetime(2026, 12, 2, 7, 30, tzinfo=UTC)) == dt.datetime(
        2026, 12, 2, 18, tzinfo=UTC
    )
    assert "never Mon, Tue, Wed, Thu, Fri, Sat, Sun 08:00–18:00" in hourly.describe()


def test_a_blackout_of_the_whole_week_is_refused():
    always = schedules.Window(mode=schedules.WINDOW_BLACKOUT, start=dt.time(0), end=dt.time(0), tz="UTC")
    with pytest.raises(schedules.ScheduleError, match="whole week"):
        always.validate()


def _windowed_account(db_now: dt.datetime) -> PamUser:
    configuration = make_configuration(
        title="Windowed",
        schedule_type=schedules.DAILY,
        schedule_time=dt.time(12),
        schedule_tz="Europe/Berlin",
        window_mode=schedules.WINDOW_ALLOW,
        window_weekdays="01234",
        window_start=dt.time(22),
        window_end=dt.time(5),
        notice_hours=2,
    )
    user = make_user(
        configuration=configuration,
        title="svc-windowed",
        rotation_type="scripts_only",
        rotation_enabled=True,
        schedule_type=schedules.USE_DEFAULT,
    )
    user.next_rotation_at = user.compute_next_rotation(after=db_now)
    PamUser.objects.filter(pk=user.pk).update(next_rotation_at=user.next_rotation_at)
    return user


def test_a_due_slot_outside_the_window_is_dispatched_at_the_window_start(db):
    morning = dt.datetime(2026, 12, 2, 9, tzinfo=UTC)  # the clock seam: dispatch takes "now"
    user = _windowed_account(morning)
    assert user.next_rotation_at == dt.datetime(2026, 12, 2, 21, tzinfo=UTC)
    assert (
        dispatch.dispatch_due(dt.datetime(2026, 12, 2, 11, 5, tzinfo=UTC))["dispatched"] == 0
    )  # noon Berlin
    assert dispatch.dispatch_due(dt.datetime(2026, 12, 2, 21, 0, 1, tzinfo=UTC))["dispatched"] == 1
    user.refresh_from_db()
    assert user.next_rotation_at == dt.datetime(2026, 12, 3, 21, tzinfo=UTC)


def test_the_schedule_preview_shows_the_window(db, alice, client):
    user = _windowed_account(dt.datetime(2026, 12, 2, 9, tzinfo=UTC))
    client.force_login(alice)
    page = client.get(reverse("records:user-detail", args=[user.pk])).content.decode()
    assert "only Mon, Tue, Wed, Thu, Fri 22:00–05:00" in page


def test_a_notice_goes_out_once_n_hours_before(db, settings):
    settings.NOTIFY_EMAIL_TO = "sec@example.com"
    user = _windowed_account(dt.datetime(2026, 12, 2, 9, tzinfo=UTC))
    assert (
        notices.send_due(dt.datetime(2026, 12, 2, 18, tzinfo=UTC), force=True)["upcoming"] == 0
    )  # 3 h before
    assert notices.send_due(dt.datetime(2026, 12, 2, 19, 30, tzinfo=UTC), force=True)["upcoming"] == 1
    assert notices.send_due(dt.datetime(2026, 12, 2, 19, 45, tzinfo=UTC), force=True)["upcoming"] == 0
    assert Notice.objects.filter(user=user).count() == 1
    assert len(mail.outbox) == 1 and "Rotation of svc-windowed in 2 hours" in mail.outbox[0].body


@settings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode=st.one_of(st.sampled_from(["none", "allow", "blackout", ""]), st.text(max_size=12)),
    weekdays=st.one_of(st.sampled_from(["01234", "0123456", "7", "00", ""]), st.text(max_size=10)),
    start=st.one_of(st.sampled_from(["22:00", "05:00", "00:00", "25:61", ""]), st.text(max_size=8)),
    end=st.one_of(st.sampled_from(["05:00", "22:00", "00:00", ""]), st.text(max_size=8)),
    notice=st.one_of(st.sampled_from(["0", "2", "-1", "99999", ""]), st.text(max_size=6)),
)
def test_no_window_input_gives_a_server_error(db, alice, client, mode, weekdays, start, end, notice):
    data = configuration_data(
        title="Windowed form",
        window_mode=mode,
        window_weekdays=weekdays,
        window_start=start,
        window_end=end,
        notice_hours=notice,
    )
    data = {key: value.replace("\x00", "") for key, value in data.items()}
    with transaction.atomic():
        client.force_login(alice)
        response = client.post(reverse("records:configuration-create"), data)
        assert response.status_code in (200, 302)
        transaction.set_rollback(True)


def test_the_api_reads_and_sets_the_window_and_notice_of_a_configuration(client, alice):
    configuration = make_configuration(title="By API")
    client.force_login(alice)
    url = f"/api/v1/configurations/{configuration.uid}/"
    body = {"window_mode": schedules.WINDOW_ALLOW, "window_weekdays": "56", "window_start": "01:00:00",
            "window_end": "04:00:00", "notice_hours": 6}  # fmt: skip
    response = client.patch(url, body, content_type="application/json")
    assert response.status_code == 200, response.content
    shown = client.get(url).json()
    assert {name: shown[name] for name in body} == body
    configuration.refresh_from_db()
    assert (configuration.window_weekdays, configuration.window_start, configuration.notice_hours) == (
        "56",
        dt.time(1),
        6,
    )
    whole_week = {"window_mode": schedules.WINDOW_BLACKOUT, "window_weekdays": "0123456",
                  "window_start": "00:00:00", "window_end": "00:00:00"}  # fmt: skip
    refused = client.patch(url, whole_week, content_type="application/json")
    assert refused.status_code == 400 and "whole week" in refused.content.decode()
