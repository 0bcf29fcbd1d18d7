"""The records journey in a real browser: sign in, create the three records, find the user."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import PERSONA_PASSWORD, make_persona
from tests.test_records_forms import make_ca_pem

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


def save_screenshot(page, name: str) -> None:
    """Save a screenshot for a human look when PAMROTATE_SCREENSHOTS names a directory."""
    directory = os.environ.get("PAMROTATE_SCREENSHOTS")
    if directory:
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)


def sign_in(page, base_url: str, username: str) -> None:
    page.goto(base_url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", PERSONA_PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Dashboard")


def test_alice_creates_a_configuration_a_directory_and_a_user_and_finds_it(page, live_server):
    make_persona("alice")
    base = live_server.url
    sign_in(page, base, "alice")
    expect(page.locator("#signed-in-user")).to_have_text("alice")

    page.click("nav >> text=Configurations")
    page.click("text=New configuration")
    page.fill("#id_title", "Browser configuration")
    page.fill("#id_network_cidr", "10.20.0.0/16")
    page.click("input[type=submit][value=Save]")
    expect(page.locator("h1")).to_have_text("Browser configuration")

    page.click("nav >> text=Directories")
    page.click("text=New directory")
    page.fill("#id_title", "Browser LDAP")
    page.select_option("#id_configuration", label="Browser configuration")
    page.select_option("#id_directory_type", label="OpenLDAP")
    page.fill("#id_hostname", "127.0.0.1")
    page.fill("#id_port", "636")
    expect(page.locator("#id_use_ssl")).to_be_checked()
    page.fill("#id_ca_certificate", make_ca_pem())
    page.click("input[type=submit][value=Save]")
    expect(page.locator("h1")).to_have_text("Browser LDAP")
    expect(page.locator("#verify-off-warning")).to_have_count(0)

    page.click("nav >> text=Users")
    page.click("text=New user")
    expect(page.locator("#div_id_schedule_time")).to_be_hidden()  # on demand needs no time
    page.fill("#id_title", "Browser service account")
    page.select_option("#id_configuration", label="Browser configuration")
    page.fill("#id_login", "svc-browser")
    page.fill("#id_password", "Initial-Secret-1")
    page.fill("#id_distinguished_name", "cn=svc-browser,ou=people,dc=example,dc=com")
    page.check("#id_rotation_enabled")
    page.select_option("#id_resource", label="Browser LDAP — Browser configuration")
    page.select_option("#id_schedule_type", label="Weekly")
    expect(page.locator("#div_id_schedule_time")).to_be_visible()
    expect(page.locator("#div_id_schedule_cron")).to_be_hidden()
    page.fill("#id_schedule_time", "02:00")
    page.select_option("#id_schedule_weekday", label="Sunday")
    page.fill("#id_schedule_tz", "Europe/Berlin")
    save_screenshot(page, "user-form")
    page.click("input[type=submit][value=Save]")
    expect(page.locator("h1")).to_have_text("Browser service account")
    expect(page.locator("#password-state")).to_have_text("set")

    page.click("nav >> text=Users")
    page.fill("input[name=q]", "svc-browser")
    page.press("input[name=q]", "Enter")
    rows = page.locator("#user-table tbody tr")
    expect(rows).to_have_count(1)
    save_screenshot(page, "user-list")
    rows.locator("a", has_text="Browser service account").click()
    expect(page.locator("h1")).to_have_text("Browser service account")
    expect(page.locator("#schedule-description")).to_contain_text("Every Sunday at 02:00, Europe/Berlin")
    expect(page.locator("#next-rotation")).not_to_have_text("not scheduled")
    assert "Initial-Secret-1" not in page.content()
    save_screenshot(page, "user-detail")

    # Bootstrap's stylesheet is really applied (the CSP lets our own files through).
    assert page.eval_on_selector("nav.navbar", "el => getComputedStyle(el).display") == "flex"
    assert page.csp_errors == []


def test_a_viewer_sees_no_change_buttons_and_signs_out(page, live_server):
    make_persona("carol")
    sign_in(page, live_server.url, "carol")
    page.click("nav >> text=Users")
    expect(page.locator("text=New user")).to_have_count(0)
    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.locator(".alert")).to_contain_text("You are signed out")
    assert page.csp_errors == []
