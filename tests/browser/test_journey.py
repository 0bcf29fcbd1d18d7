"""The whole journey in a real browser against a real slapd: records, test, rotate, history, audit, reveal.

Rotations really run: the test settings put django-q2 in sync mode, so the task queued by
"Rotate now" runs inside the request's on-commit callback on the live server.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from rotation.models import AttemptState, RotationAttempt
from tests.browser.test_records_browser import save_screenshot, sign_in
from tests.conftest import make_persona, make_user
from tests.test_rotation import STRONG, make_env

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slapd,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("roles"),
]


def sign_out(page) -> None:
    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def create_configuration(page, base: str, title: str) -> None:
    page.goto(base + reverse("records:configuration-create"))
    page.fill("#id_title", title)
    page.click("input[type=submit][value=Save]")
    expect(page.locator("h1")).to_have_text(title)


def create_user(page, base: str, title: str, configuration: str, login: str, password: str, dn: str,
                resource: str | None = None) -> None:  # fmt: skip
    page.goto(base + reverse("records:user-create"))
    page.fill("#id_title", title)
    page.select_option("#id_configuration", label=configuration)
    page.fill("#id_login", login)
    page.fill("#id_password", password)
    page.fill("#id_distinguished_name", dn)
    if resource:
        page.check("#id_rotation_enabled")
        page.select_option("#id_resource", label=resource)
        page.select_option("#id_schedule_type", value="ON_DEMAND")
    else:  # a new user rotates by default (issue 16); one without a directory cannot
        page.uncheck("#id_rotation_enabled")
    page.click("input[type=submit][value=Save]")
    expect(page.locator("h1")).to_have_text(title)


def post_with_csrf(page, url: str, form: dict | None = None):
    """POST from the signed-in browser context with its CSRF token, as a crafted request would."""
    token = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    return page.request.post(url, form=form or {}, headers={"X-CSRFToken": token, "Referer": url})


def test_alice_rotates_an_account_end_to_end_and_carol_only_watches(page, live_server, slapd, unique_name):
    make_persona("alice")
    make_persona("carol")
    base = live_server.url
    name = unique_name("journey")
    dn = slapd.add_user(name, STRONG)
    sign_in(page, base, "alice")

    # Records: a configuration, the directory's admin credential, the directory, the account.
    create_configuration(page, base, "Journey configuration")
    create_user(page, base, "Journey rotator", "Journey configuration", slapd.rotator_dn,
                slapd.rotator_password, slapd.rotator_dn)  # fmt: skip
    page.goto(base + reverse("records:directory-create"))
    page.fill("#id_title", "Journey slapd")
    page.select_option("#id_configuration", label="Journey configuration")
    page.select_option("#id_directory_type", label="OpenLDAP")
    page.fill("#id_hostname", "127.0.0.1")
    page.fill("#id_port", str(slapd.ldaps_port))
    page.fill("#id_ca_certificate", slapd.tls.ca_pem)
    page.select_option(
        "#id_administrative_credential", label=f"Journey rotator ({slapd.rotator_dn}) — Journey configuration"
    )
    # A stored credential goes to a new address only with its password typed again (issue 21).
    page.fill("#id_credential_password", slapd.rotator_password)
    page.click("input[type=submit][value=Save]")
    expect(page.locator("h1")).to_have_text("Journey slapd")
    directory_url = page.url

    # Test connection.
    page.click("#test-connection")
    expect(page.locator("#connection-result")).to_contain_text("Connection OK")

    create_user(page, base, "Journey account", "Journey configuration", name, STRONG, dn,
                resource="Journey slapd — Journey configuration")  # fmt: skip
    account_url = page.url

    # Rotate now: the attempt page ends in success by itself.
    page.click("#rotate-now")
    expect(page).to_have_url(re.compile(r"/rotation/attempts/\d+/"))
    expect(page.locator("#attempt-state")).to_have_text("Succeeded", timeout=20_000)
    attempt = RotationAttempt.objects.get(user__title="Journey account")
    assert attempt.state == AttemptState.SUCCEEDED, attempt.error_message

    # The history shows it.
    page.goto(account_url)
    page.click("#full-history")
    row = page.locator("#history-attempts tbody tr").first
    expect(row).to_contain_text("Succeeded")
    expect(row).to_contain_text("On demand")
    expect(row).to_contain_text("alice")
    expect(page.locator("#history-versions .reveal-version")).to_have_count(1)
    history_url = page.url

    # The audit log shows it, linked to the account and the attempt.
    page.click("nav >> text=Audit log")
    first = page.locator("#audit-events tbody tr").first
    expect(first).to_contain_text("On-demand rotation succeeded")
    expect(first).to_have_attribute("data-event", "record_rotation_on_demand_ok")
    expect(first.locator("a", has_text="Journey account")).to_have_attribute(
        "href", re.compile(r"/users/\d+/")
    )
    expect(first.locator("a", has_text=f"attempt #{attempt.pk}")).to_be_visible()
    page.fill("#f-q", "Journey account")
    page.press("#f-q", "Enter")
    expect(page.locator("#audit-events tbody tr").first).to_contain_text("Journey account")
    save_screenshot(page, "audit-log")

    # Reveal: the password really opens the account on slapd.
    page.goto(account_url)
    page.click("#reveal-password")
    revealed = page.locator("#revealed-password").input_value()
    assert revealed and revealed != STRONG
    assert slapd.can_bind(dn, revealed)
    # The earlier version is the starting password.
    page.goto(history_url)
    page.click("#history-versions .reveal-version")
    assert page.locator("#revealed-password").input_value() == STRONG

    # A directory-wide bulk rotation shows its progress bar reaching 100 %.
    page.goto(directory_url)
    page.once("dialog", lambda dialog: dialog.accept())  # "Rotate the passwords of 1 account … now?"
    page.click("#rotate-directory")
    expect(page.locator("#bulk-progress-bar")).to_have_text("100%")
    expect(page.locator("#bulk-attempts tbody tr")).to_have_count(1)
    expect(page.locator("#bulk-attempts")).to_contain_text("Succeeded")

    page.goto(base + "/")
    save_screenshot(page, "dashboard")
    expect(page.locator("#rotation-chart svg")).to_be_visible()
    assert page.csp_errors == []
    sign_out(page)

    # Carol, a Viewer, sees the history but no reveal or rotate button; a crafted POST is refused.
    sign_in(page, base, "carol")
    page.goto(history_url)
    expect(page.locator("#history-attempts tbody tr")).to_have_count(2)
    expect(page.locator(".reveal-version")).to_have_count(0)
    page.goto(account_url)
    expect(page.locator("#rotate-now")).to_have_count(0)
    expect(page.locator("#reveal-password")).to_have_count(0)
    account_pk = int(re.search(r"/users/(\d+)/", account_url).group(1))
    for url_name in ("rotation:rotate-now", "rotation:reveal-password"):
        response = post_with_csrf(page, base + reverse(url_name, args=[account_pk]))
        assert response.status == 403, url_name
    response = post_with_csrf(page, base + reverse("rotation:bulk-rotate"), {"user": str(account_pk)})
    assert response.status == 403
    assert RotationAttempt.objects.filter(user_id=account_pk).count() == 2
    assert page.csp_errors == []


def test_a_failed_rotation_shows_its_plain_language_reason(page, live_server, slapd, unique_name):
    make_persona("alice")
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("weak"), complexity="6,1,1,1,1")
    sign_in(page, live_server.url, "alice")
    page.goto(live_server.url + user.get_absolute_url())
    page.click("#rotate-now")
    expect(page.locator("#attempt-state")).to_have_text("Failed", timeout=20_000)
    expect(page.locator("#attempt-error")).to_contain_text("refused the new password")
    page.goto(live_server.url + reverse("rotation:user-history", args=[user.pk]))
    expect(page.locator("#history-attempts tbody tr").first).to_contain_text("Rejected by the directory")
    assert slapd.can_bind(user.distinguished_name, STRONG)  # nothing changed
    assert page.csp_errors == []


def test_the_account_page_updates_itself_when_its_rotation_ends(page, live_server, db):
    make_persona("bob")
    user = make_user(title="Live account", password=STRONG)
    attempt = RotationAttempt.objects.create(user=user, state=AttemptState.QUEUED)
    sign_in(page, live_server.url, "bob")
    page.goto(live_server.url + user.get_absolute_url())
    expect(page.locator("#active-attempt")).to_contain_text(f"Rotation #{attempt.number}")
    # A worker finishes it elsewhere: the page notices and reloads by itself.
    RotationAttempt.objects.filter(pk=attempt.pk).update(state=AttemptState.FAILED, error_message="gone")
    user.rotation_status = "failed"
    user.save(update_fields=["rotation_status"])
    expect(page.locator("#active-attempt")).to_have_count(0, timeout=10_000)
    expect(page.locator("#rotation-status")).to_have_text("Failed")
    assert page.csp_errors == []
