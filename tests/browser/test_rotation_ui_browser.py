"""The rotation pages in a real browser: the viewer's time zone, retries, a gateway without a worker, badges.

Pages run under the strict CSP: every check also asserts that no inline script or style was refused.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from records.models import PamUser
from rotation import services, status
from rotation.models import AttemptState, ErrorClass, Heartbeat, RotationAttempt, Trigger
from tests.browser.test_records_browser import sign_in
from tests.conftest import make_configuration, make_directory, make_persona, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


@pytest.fixture
def page_in(browser, request):
    """Open pages in a browser context set to a time zone; CSP violations collect in page.csp_errors."""
    contexts = []

    def open_page(zone: str):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id=zone)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.csp_errors = []
        page.on(
            "console",
            lambda message: "Content Security Policy" in message.text
            and page.csp_errors.append(message.text),
        )
        request.node.browser_page = page
        return page

    yield open_page
    for context in contexts:
        context.close()


def rotatable(gateway: str = "default", title: str = "svc-browser") -> PamUser:
    directory = make_directory(make_configuration(gateway=gateway))
    return make_user(
        title=title, resource=directory, distinguished_name=f"uid={title},dc=example", rotation_enabled=True
    )


def test_times_follow_the_browsers_zone_then_the_persons_own_with_utc_on_hover(page_in, live_server):
    make_persona("carol")
    user = make_user(title="svc-times")
    at = dt.datetime(2026, 7, 1, 10, 30, 5, tzinfo=dt.UTC)
    attempt = RotationAttempt.objects.create(user=user, state=AttemptState.SUCCEEDED)
    RotationAttempt.objects.filter(pk=attempt.pk).update(created_at=at, started_at=at, finished_at=at)
    page = page_in("America/New_York")
    base = live_server.url

    sign_in(page, base, "carol")  # the sign-in page already told the server the browser's zone
    page.goto(base + attempt.get_absolute_url())
    queued = page.locator("dt:has-text('Queued') + dd time")
    expect(queued).to_have_text("2026-07-01 06:30:05 EDT")
    expect(queued).to_have_attribute("title", "2026-07-01 10:30:05 UTC")
    expect(queued).to_have_attribute("datetime", "2026-07-01T10:30:05Z")

    page.goto(base + reverse("accounts:security"))
    expect(page.locator("#time-zone-now")).to_contain_text("America/New_York (your browser's zone)")
    page.select_option("#id_time_zone", "Asia/Tokyo")
    page.click("#save-time-zone")
    expect(page.locator("#messages")).to_contain_text("Times are now shown in Asia/Tokyo.")
    page.goto(base + attempt.get_absolute_url())
    expect(page.locator("dt:has-text('Queued') + dd time")).to_have_text("2026-07-01 19:30:05 JST")
    assert page.csp_errors == []


def test_a_schedule_preview_adds_the_viewers_time_to_each_run(page_in, live_server):
    make_persona("alice")
    page = page_in("Asia/Kolkata")
    base = live_server.url
    sign_in(page, base, "alice")

    page.goto(base + reverse("records:configuration-create"))
    page.select_option("#id_schedule_type", "DAILY")
    page.fill("#id_schedule_time", "03:00")
    if page.locator("#id_schedule_tz").evaluate("node => node.tagName") == "SELECT":
        page.select_option("#id_schedule_tz", "UTC")
    else:
        page.fill("#id_schedule_tz", "UTC")
    page.locator("#id_schedule_tz").dispatch_event("change")

    first = page.locator("#schedule-preview .next-runs li").first
    expect(first.locator(".viewer-time")).to_have_text(
        re.compile(r"· your time: \w{3} \d{4}-\d\d-\d\d 08:30 (IST|GMT\+5:30)")
    )
    assert page.csp_errors == []


def test_a_failed_try_says_retrying_and_links_to_its_retry(page_in, live_server, monkeypatch):
    make_persona("bob")
    user = rotatable(title="svc-retry")
    failed = RotationAttempt.objects.create(
        user=user,
        state=AttemptState.FAILED,
        error_class=ErrorClass.TRANSIENT,
        error_message="the directory is unreachable at 127.0.0.1:1: check that it is running",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    retry = RotationAttempt.objects.create(
        user=user,
        trigger=Trigger.RETRY,
        try_number=2,
        retry_of=failed,
        retry_at=timezone.now() + dt.timedelta(seconds=30),
    )
    # The clock seam: pages count the wait from when the retry was queued, not from a busy wall clock.
    real_note = status.retry_note
    queued_at = retry.retry_at - dt.timedelta(seconds=30)
    monkeypatch.setattr(status, "retry_note", lambda attempt, now=None: real_note(attempt, now or queued_at))
    page = page_in("UTC")
    sign_in(page, live_server.url, "bob")

    page.goto(live_server.url + failed.get_absolute_url())
    expect(page.locator("#attempt-state")).to_have_text("Retrying")
    expect(page.locator("#attempt-retry")).to_contain_text("Try 1 of 3 failed. Retrying in 30 s (try 2 of 3)")
    expect(page.locator("#attempt-error")).to_contain_text(
        "Directory unreachable. The directory is unreachable"
    )
    page.click("#retry-link")
    expect(page.locator("h1")).to_contain_text("Rotation #2 of svc-retry")
    expect(page).to_have_url(re.compile(rf"/rotation/attempts/{retry.pk}/$"))
    expect(page.locator("#attempt-retry")).to_contain_text("after rotation #1 failed")
    assert page.csp_errors == []


def test_a_queued_rotation_on_a_gateway_that_takes_no_task_says_so_once_it_waited_too_long(
    page_in, live_server
):
    make_persona("bob")
    Heartbeat.beat("worker:branch-office")
    user = rotatable(gateway="branch-office", title="svc-nowork")
    attempt = services.request_rotation(user, enqueue=False)
    page = page_in("UTC")
    sign_in(page, live_server.url, "bob")
    # The gateway took its last task 56 s ago, just before this was queued: past 60 s it is stalled.
    Heartbeat.objects.filter(name="worker:branch-office").update(
        seen_at=timezone.now() - dt.timedelta(seconds=56)
    )
    RotationAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - dt.timedelta(seconds=55))

    page.goto(live_server.url + attempt.get_absolute_url())
    warning = page.locator("#waiting-warning")
    expect(page.locator("#attempt-state")).to_have_text("Queued")
    expect(warning).to_be_hidden()
    expect(warning).to_be_visible(timeout=12_000)  # waiting.js asks the status every 3 s
    expect(warning).to_contain_text(re.compile(r"The gateway branch-office has taken no task for 6\d s"))

    page.goto(live_server.url + user.get_absolute_url())
    expect(page.locator("#rotation-panel #waiting-warning")).to_be_visible()
    assert page.csp_errors == []


def test_the_account_page_draws_one_state_in_one_colour(page_in, live_server):
    make_persona("carol")
    user = rotatable(title="svc-badge")
    PamUser.objects.filter(pk=user.pk).update(rotation_status="succeeded")
    RotationAttempt.objects.create(user=user, state=AttemptState.SUCCEEDED, started_at=timezone.now())
    page = page_in("UTC")
    sign_in(page, live_server.url, "carol")

    page.goto(live_server.url + user.get_absolute_url())

    panel = page.locator("#rotation-status").get_attribute("class")
    settings_badge = page.locator("[data-status=succeeded]").get_attribute("class")
    attempt_badge = page.locator("#attempts tbody .badge").first.get_attribute("class")
    assert "text-bg-success" in panel and panel == settings_badge == attempt_badge
    assert page.csp_errors == []
