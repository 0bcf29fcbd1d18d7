"""The schedule preview endpoint: a plain-English description and the next three runs, never a 500."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from records import schedules
from tests.conftest import examples, make_configuration

URL = reverse("records:schedule-preview")
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)  # a Thursday


@pytest.fixture
def viewer(client, carol):
    client.force_login(carol)
    return client


def preview(client, **params) -> dict:
    with time_machine.travel(NOW, tick=False):
        response = client.get(URL, params)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


@pytest.mark.parametrize(
    ("params", "description", "next_runs", "first_local"),
    [
        (
            {
                "schedule_type": "WEEKLY",
                "schedule_weekday": "6",
                "schedule_time": "02:00",
                "schedule_tz": "Europe/Berlin",
            },
            "Every Sunday at 02:00, Europe/Berlin",
            ["2026-01-04T01:00:00Z", "2026-01-11T01:00:00Z", "2026-01-18T01:00:00Z"],
            "Sun 2026-01-04 02:00 CET",
        ),
        (
            {
                "schedule_type": "DAILY",
                "schedule_time": "04:15",
                "schedule_interval": "3",
                "schedule_tz": "Asia/Tokyo",
            },
            "Every 3 days at 04:15, Asia/Tokyo",
            ["2026-01-03T19:15:00Z", "2026-01-06T19:15:00Z", "2026-01-09T19:15:00Z"],
            "Sun 2026-01-04 04:15 JST",
        ),
        (
            {
                "schedule_type": "MONTHLY_BY_DAY",
                "schedule_time": "03:00",
                "schedule_day": "31",
                "schedule_tz": "UTC",
            },
            "Monthly on day 31 at 03:00, UTC",
            ["2026-01-31T03:00:00Z", "2026-02-28T03:00:00Z", "2026-03-31T03:00:00Z"],
            "Sat 2026-01-31 03:00 UTC",
        ),
        (
            {
                "schedule_type": "MONTHLY_BY_WEEKDAY",
                "schedule_time": "23:30",
                "schedule_weekday": "4",
                "schedule_week": "-1",
                "schedule_tz": "UTC",
            },
            "Monthly on the last Friday at 23:30, UTC",
            ["2026-01-30T23:30:00Z", "2026-02-27T23:30:00Z", "2026-03-27T23:30:00Z"],
            "Fri 2026-01-30 23:30 UTC",
        ),
        (
            {"schedule_type": "CRON", "schedule_cron": "30 18 * * *", "schedule_tz": "Europe/Berlin"},
            "Cron 30 18 * * *, Europe/Berlin",
            ["2026-01-01T17:30:00Z", "2026-01-02T17:30:00Z", "2026-01-03T17:30:00Z"],
            "Thu 2026-01-01 18:30 CET",
        ),
        ({"schedule_type": "ON_DEMAND"}, "On demand only", [], None),
        ({"schedule_type": "USE_DEFAULT"}, "The configuration's default schedule", [], None),
    ],
)
def test_each_schedule_type_is_described_with_its_next_runs(
    viewer, params, description, next_runs, first_local
):
    data = preview(viewer, **params)
    assert data["ok"] is True
    assert data["description"] == description
    assert data["next_runs"] == next_runs
    if first_local:
        assert data["next_runs_local"][0] == first_local


def test_use_default_follows_the_chosen_configuration(viewer):
    configuration = make_configuration(
        schedule_type=schedules.WEEKLY,
        schedule_weekday=6,
        schedule_time=dt.time(2),
        schedule_tz="Europe/Berlin",
    )
    data = preview(viewer, schedule_type="USE_DEFAULT", configuration=str(configuration.pk))
    assert data["description"] == "Every Sunday at 02:00, Europe/Berlin"
    assert len(data["next_runs"]) == 3
    unknown = preview(viewer, schedule_type="USE_DEFAULT", configuration="999999")
    assert unknown == {
        "ok": True,
        "description": "The configuration's default schedule",
        "next_runs": [],
        "next_runs_local": [],
    }


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"schedule_type": "CRON", "schedule_cron": "61 * * * *"},
            '"61 * * * *" is not a valid cron expression',
        ),
        ({"schedule_type": "CRON", "schedule_cron": "* * * * *"}, "rotations can run at most once an hour"),
        ({"schedule_type": "CRON", "schedule_cron": "0 2 * *"}, "a cron expression has 5 fields"),
        (
            {"schedule_type": "DAILY", "schedule_time": "02:00", "schedule_tz": "Mars/Olympus"},
            '"Mars/Olympus" is not an IANA time zone',
        ),
        ({"schedule_type": "WEEKLY", "schedule_time": "02:00"}, "pick the weekday the rotation runs"),
        ({"schedule_type": "DAILY"}, "pick the time of day the rotation runs"),
        ({"schedule_type": "DAILY", "schedule_time": "25:00"}, "time of day: Enter a valid time."),
        ({"schedule_type": "HOURLY"}, "schedule: Select a valid choice."),
        ({}, "schedule: This field is required."),
    ],
)
def test_a_schedule_that_cannot_run_gives_the_reason(viewer, params, error):
    data = preview(viewer, **params)
    assert data["ok"] is False
    assert data["error"].startswith(error)


def test_it_needs_a_signed_in_user_who_may_view_records(client, dave):
    assert client.get(URL, {"schedule_type": "ON_DEMAND"}).status_code == 302
    client.force_login(dave)
    assert client.get(URL, {"schedule_type": "ON_DEMAND"}).status_code == 403
    assert client.post(URL, {"schedule_type": "ON_DEMAND"}).status_code == 405


FIELDS = [
    "schedule_type",
    "schedule_time",
    "schedule_interval",
    "schedule_weekday",
    "schedule_day",
    "schedule_week",
    "schedule_cron",
    "schedule_tz",
    "configuration",
]
values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from([t for t, _ in schedules.TYPES]),
    st.sampled_from(
        ["02:00", "23:59:59", "UTC", "Europe/Berlin", "0 2 * * 0", "0 0 2 ? * 1", "0 0 30 2 *", "L"]
    ),
)


@pytest.mark.django_db
@settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=st.dictionaries(st.sampled_from(FIELDS), values))
def test_arbitrary_query_strings_never_break_the_endpoint(viewer, params):
    response = viewer.get(URL, params)
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] in (True, False)
    assert isinstance(data.get("error", data.get("description")), str)
