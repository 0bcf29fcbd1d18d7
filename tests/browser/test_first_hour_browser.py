"""The new admin's first hour in a real browser (issue 16): forms, empty app, delete page, small screens."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from records.forms import RETYPE_SECRET
from records.models import PamDirectory, PamUser
from tests.browser.test_records_browser import sign_in
from tests.conftest import make_configuration, make_directory, make_persona, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


def box(page, selector: str) -> dict:
    """Return an element's bounding box in CSS pixels."""
    found = page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not rendered"
    return found


@pytest.mark.slapd
def test_alice_creates_a_directory_with_its_credential_and_tests_it_before_saving(page, live_server, slapd):
    make_persona("alice")
    configuration = make_configuration(title="Lab")
    sign_in(page, live_server.url, "alice")
    page.goto(live_server.url + reverse("records:directory-create"))
    expect(page.locator("#id_configuration")).to_have_value(str(configuration.pk))  # the only one
    expect(page.locator("#id_administrative_credential")).to_be_visible()
    expect(page.locator("#div_id_administrative_credential")).to_contain_text("or create one below")

    # The port follows the TLS mode; Active Directory is LDAPS only.
    page.select_option("#id_directory_type", label="OpenLDAP")
    page.check("#id_start_tls")
    expect(page.locator("#id_port")).to_have_value("389")
    expect(page.locator("#id_use_ssl")).not_to_be_checked()
    page.select_option("#id_directory_type", label="Active Directory")
    expect(page.locator("#id_port")).to_have_value("636")
    expect(page.locator("#id_use_ssl")).to_be_checked()
    expect(page.locator("#id_start_tls")).to_be_disabled()
    page.select_option("#id_directory_type", label="OpenLDAP")
    expect(page.locator("#id_start_tls")).to_be_enabled()

    page.fill("#id_title", "Lab LDAP")
    page.fill("#id_hostname", slapd.host)
    page.fill("#id_port", str(slapd.ldaps_port))
    page.fill("#id_ca_certificate", slapd.tls.ca_pem)
    page.fill("#id_new_credential_login", slapd.rotator_dn)
    page.fill("#id_new_credential_dn", slapd.rotator_dn)
    page.fill("#id_new_credential_password", slapd.rotator_password)
    page.click("#test-unsaved-connection")
    expect(page.locator("#unsaved-test-result")).to_contain_text("Connection test passed.")
    assert not PamDirectory.objects.exists() and not PamUser.objects.exists()
    assert slapd.rotator_password not in page.locator("#unsaved-test-result").inner_text()

    page.click("input[type=submit][value=Save]")
    expect(page.locator("h1")).to_have_text("Lab LDAP")
    directory = PamDirectory.objects.get()
    assert directory.administrative_credential.get_password() == slapd.rotator_password
    assert slapd.rotator_password not in page.content()
    assert page.csp_errors == []


def test_rotation_settings_speak_people_and_a_failed_form_asks_for_the_password_again(page, live_server):
    make_persona("alice")
    configuration = make_configuration(title="Prod")
    sign_in(page, live_server.url, "alice")

    page.goto(live_server.url + reverse("records:configuration-create"))
    assert "USE_DEFAULT" not in page.locator("#id_schedule_type").inner_html()
    expect(page.locator("#div_id_gateway")).to_contain_text("The worker pool that can reach this network.")
    description = page.locator("#complexity-description")
    expect(description).to_have_text("20 characters, at least 1 uppercase, 1 lowercase, 1 digit, 1 special")
    page.fill("#id_complexity_length", "8")
    for name in ("upper", "lower", "digits", "special"):
        page.fill(f"#id_complexity_{name}", "3")
    expect(description).to_contain_text("more than the length 8")
    page.fill("#id_complexity_length", "24")
    expect(description).to_have_text("24 characters, at least 3 uppercase, 3 lowercase, 3 digits, 3 special")

    page.goto(live_server.url + reverse("records:user-create"))
    expect(page.locator("#id_schedule_type")).to_have_value("USE_DEFAULT")
    expect(page.locator("#id_rotation_enabled")).to_be_checked()
    expect(page.locator("#div_id_managed")).to_contain_text(
        "Never rotate (pamrotate leaves this password alone)"
    )
    expect(page.locator("#complexity-description")).to_have_text(
        "Uses the configuration's default complexity."
    )
    page.select_option("#id_schedule_type", label="Daily")
    page.fill("#id_schedule_time", "02:00")
    assert page.locator("#time-zones option[value='Europe/Berlin']").count() == 1
    page.fill("#id_schedule_tz", "Europe/Atlantis")
    page.uncheck("#id_rotation_enabled")
    page.fill("#id_title", "svc")
    page.fill("#id_login", "svc")
    page.fill("#id_password", "Typed-Secret-77!")
    page.click("input[type=submit][value=Save]")
    expect(page.locator("#div_id_schedule_tz")).to_contain_text("not an IANA time zone")
    expect(page.locator("#div_id_password")).to_contain_text(RETYPE_SECRET)
    expect(page.locator("#id_password")).to_have_value("")
    assert "Typed-Secret-77!" not in page.content()
    assert configuration.users.count() == 0
    assert page.csp_errors == []


def test_the_empty_app_leads_the_way_and_a_person_without_a_role_is_told_whom_to_ask(page, live_server):
    make_persona("alice")
    make_persona("dave")
    sign_in(page, live_server.url, "alice")
    expect(page.locator("#get-started")).to_be_visible()
    expect(page.locator("#get-started-import")).to_be_visible()
    page.click("#step-configuration >> text=Create a configuration")
    expect(page.locator("h1")).to_have_text("New PAM configuration")
    page.click("nav >> text=Directories")
    expect(page.locator("#empty-state")).to_contain_text("create that first")
    page.click("#empty-state >> text=Create a configuration")
    expect(page.locator("h1")).to_have_text("New PAM configuration")
    page.click("button:has-text('Sign out')")

    page.fill("#id_username", "dave")
    page.fill("#id_password", "correct horse battery staple 42")
    page.click("button:has-text('Sign in')")
    expect(page.locator("#no-role")).to_be_visible()
    expect(page.locator("#administrators")).to_contain_text("alice")
    assert page.csp_errors == []


def test_the_delete_page_lists_what_refers_to_the_record_before_the_click(page, live_server):
    make_persona("alice")
    configuration = make_configuration(title="Busy")
    make_directory(configuration, title="Busy LDAP")
    sign_in(page, live_server.url, "alice")
    page.goto(live_server.url + reverse("records:configuration-delete", args=[configuration.pk]))
    expect(page.locator("#delete-referrers")).to_contain_text("1 directory:")
    expect(page.locator("#delete-referrers a", has_text="Busy LDAP")).to_be_visible()
    expect(page.locator("button", has_text="Delete")).to_have_count(0)
    assert page.csp_errors == []


def test_small_screens_put_problems_first_and_scroll_tables_and_1280_shows_next_rotation(page, live_server):
    make_persona("alice")
    configuration = make_configuration(title="Production network configuration")
    directory = make_directory(configuration, title="Corporate Active Directory")
    now = timezone.now()
    for index in range(3):
        make_user(
            configuration=configuration,
            resource=directory,
            title=f"Backup service account number {index}",
            login=f"svc_backup_reporting_account_{index}@corp.example.com",
            distinguished_name=f"cn=svc{index},dc=corp",
            rotation_enabled=True,
            rotation_status="failed",
            account_state="drifted",
            last_rotated_at=now,
            next_rotation_at=now,
        )
    sign_in(page, live_server.url, "alice")

    # 1280 px: the users list shows "Next rotation" without scrolling sideways.
    page.goto(live_server.url + reverse("records:user-list"))
    wrapper = page.locator("#user-table").locator("xpath=..")
    assert "table-responsive" in wrapper.get_attribute("class")
    heading, frame = box(page, "#next-rotation-heading"), wrapper.bounding_box()
    assert heading["x"] + heading["width"] <= frame["x"] + frame["width"] + 0.5
    assert page.evaluate("w => w.scrollWidth <= w.clientWidth", wrapper.element_handle())

    # 390 px: the accounts needing attention come before the counts and the chart.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + reverse("records:dashboard"))
    problems, counts, chart = (
        box(page, "#rotation-problems"),
        box(page, "#dashboard-counts"),
        box(page, "#rotation-chart"),
    )
    assert problems["y"] < counts["y"] < chart["y"]
    expect(page.locator("#rotation-problems")).to_contain_text("Backup service account number 0")
    label_heights = page.eval_on_selector_all(
        ".rotation-chart .chart-label", "ls => ls.map(l => l.getBoundingClientRect().height)"
    )
    assert label_heights and min(label_heights) >= 9  # px on screen: readable

    # The table keeps the columns that matter on a phone and fits (issue 25: it scrolled Status and
    # Next rotation out of sight); its frame would scroll, the page itself does not scroll sideways.
    page.goto(live_server.url + reverse("records:user-list"))
    wrapper = page.locator("#user-table").locator("xpath=..")
    assert page.evaluate(
        "w => w.scrollWidth <= w.clientWidth && getComputedStyle(w).overflowX === 'auto'",
        wrapper.element_handle(),
    )
    expect(page.locator("#next-rotation-heading")).to_be_in_viewport()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert page.csp_errors == []

    # From xl the counts lead again.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + reverse("records:dashboard"))
    assert box(page, "#dashboard-counts")["y"] < box(page, "#rotation-problems")["y"]
