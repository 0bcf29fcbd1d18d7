"""Import and the schedule preview in a real browser: upload, preview, confirm; a schedule described live."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from records.models import PamUser
from tests.browser.test_records_browser import save_screenshot, sign_in
from tests.conftest import make_persona

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "keeper_project.json"


def test_alice_imports_a_keeper_project_after_seeing_the_preview(page, live_server):
    make_persona("alice")
    sign_in(page, live_server.url, "alice")
    page.click("nav >> text=Configurations")
    page.click("#import-link")
    page.set_input_files("#id_file", str(SAMPLE))
    page.click("input[type=submit][value='Upload and preview']")
    expect(page.locator("h1")).to_have_text("Import preview: keeper_project.json")
    expect(page.locator("#import-created")).to_contain_text("Sample svc-backup")
    expect(page.locator("#import-warnings")).to_contain_text("certificate verification is turned OFF")
    expect(page.locator("body")).not_to_contain_text("Backup-Start-Pass-1!")
    save_screenshot(page, "import-preview")
    assert not PamUser.objects.exists()

    page.click("#import-confirm")
    expect(page.locator("#messages")).to_contain_text("10 records created")
    page.click("nav >> text=Users")
    page.click("text=Sample svc-backup")
    expect(page.locator("h1")).to_have_text("Sample svc-backup")
    assert page.csp_errors == []


def test_the_user_form_describes_the_schedule_before_saving(page, live_server):
    make_persona("alice")
    sign_in(page, live_server.url, "alice")
    page.click("nav >> text=Users")
    page.click("text=New user")
    preview = page.locator("#schedule-preview")
    # A new user follows its configuration's schedule by default.
    expect(preview).to_contain_text("The configuration's default schedule")
    page.select_option("#id_schedule_type", label="On demand only")
    expect(preview).to_contain_text("On demand only")
    expect(page.locator("#div_id_schedule_time")).to_be_hidden()

    page.select_option("#id_schedule_type", label="Weekly")
    for name in ("time", "weekday", "tz"):
        expect(page.locator(f"#div_id_schedule_{name}")).to_be_visible()
    for name in ("interval", "day", "week", "cron"):
        expect(page.locator(f"#div_id_schedule_{name}")).to_be_hidden()
    expect(preview).to_contain_text("This schedule cannot run")
    page.fill("#id_schedule_time", "02:00")
    page.select_option("#id_schedule_weekday", label="Sunday")
    page.fill("#id_schedule_tz", "Europe/Berlin")
    expect(preview.locator(".schedule-description")).to_have_text("Every Sunday at 02:00, Europe/Berlin")
    runs = preview.locator(".next-runs li")
    expect(runs).to_have_count(3)
    for index in range(3):
        expect(runs.nth(index)).to_have_text(
            # The run in the schedule's zone and in UTC, then the viewer's own time (static/js/tz.js).
            re.compile(r"^Sun \d{4}-\d\d-\d\d 02:00 CES?T \(\d{4}-\d\d-\d\dT0[01]:00:00Z\)· your time: .+$")
        )
    save_screenshot(page, "user-form-schedule-preview")

    page.select_option("#id_schedule_type", label="Cron expression")
    expect(page.locator("#div_id_schedule_cron")).to_be_visible()
    expect(page.locator("#div_id_schedule_time")).to_be_hidden()
    page.fill("#id_schedule_cron", "* * * * *")
    expect(preview).to_contain_text("rotations can run at most once an hour")
    assert not PamUser.objects.exists()
    assert page.csp_errors == []
