"""Issue 25's friction items that live in the page script: confirmations, copy and download buttons."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from rotation.models import RotationAttempt
from tests.browser.test_records_browser import sign_in
from tests.conftest import make_configuration, make_directory, make_persona, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


def test_rotate_all_asks_with_the_count_and_cancel_starts_nothing(page, live_server):
    make_persona("alice")
    configuration = make_configuration()
    directory = make_directory(configuration, port=9)
    for n in range(2):
        make_user(
            configuration, title=f"Pair {n}", resource=directory, rotation_enabled=True, password="P-1!x"
        )
    sign_in(page, live_server.url, "alice")
    page.goto(live_server.url + directory.get_absolute_url())
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#rotate-directory")
    page.wait_for_timeout(300)
    assert asked == [f"Rotate the passwords of 2 accounts of {directory} now?"]
    assert not RotationAttempt.objects.exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rotate-directory")
    page.wait_for_url("**/rotation/bulk/**")
    assert RotationAttempt.objects.count() == 2
    assert page.csp_errors == []


def test_a_new_token_has_a_copy_button_the_header_and_an_example(page, live_server):
    make_persona("alice")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server.url, "alice")
    page.goto(live_server.url + reverse("api:personal-tokens"))
    page.click("button:has-text('Create token')")
    token = page.locator("#new-token").input_value()
    expect(page.locator("#token-header")).to_have_text("Authorization: Bearer <the token>")
    expect(page.locator("#token-example")).to_contain_text(live_server.url + "/api/v1/users/")
    page.click("#copy-token")
    expect(page.locator("#copy-token")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    assert token not in page.locator("#token-example").inner_text()
    assert page.csp_errors == []


def test_recovery_codes_can_be_downloaded(page, live_server):
    make_persona("alice")
    sign_in(page, live_server.url, "alice")
    page.goto(live_server.url + reverse("accounts:mfa-enrol"))
    from accounts.models import TOTPDevice
    from tests.test_mfa import current_code

    page.fill("#id_code", current_code(TOTPDevice.objects.get()))
    page.click("button:has-text('Confirm')")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    codes = page.locator("#recovery-codes li").all_inner_texts()
    with page.expect_download() as download:
        page.click("#download-recovery-codes")
    assert download.value.suggested_filename == "pamrotate-recovery-codes-alice.txt"
    assert open(download.value.path()).read().split() == [code.strip() for code in codes]
    assert page.csp_errors == []


def test_at_390_px_the_user_list_folds_its_filters_and_shows_status_and_next_rotation(browser, live_server):
    make_persona("alice")
    configuration = make_configuration()
    make_user(
        configuration, title="Phone user", rotation_enabled=True, schedule_type="DAILY", password="P-1!x"
    )
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, live_server.url, "alice")
    page.goto(live_server.url + reverse("records:user-list"))
    expect(page.locator("#user-filters select[name=configuration]")).to_be_hidden()
    expect(page.locator("#user-filters-box > summary")).to_be_visible()
    for heading in ("#status-heading", "#next-rotation-heading"):
        found = page.locator(heading).bounding_box()
        assert found is not None and found["x"] + found["width"] <= 390, (heading, found)
    page.click("#user-filters-box > summary")
    expect(page.locator("#user-filters select[name=configuration]")).to_be_visible()
    page.goto(live_server.url + reverse("records:dashboard"))
    labels = page.locator(".rotation-chart .chart-label")
    assert labels.count() > 2
    chart = page.locator(".rotation-chart").bounding_box()
    last = labels.last.bounding_box()
    assert last["x"] + last["width"] <= chart["x"] + chart["width"] + 0.5, (last, chart)
    context.close()
