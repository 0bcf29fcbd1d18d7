"""In a real browser with MFA required: an Operator enrols an authenticator (codes computed by
Debian's oathtool from the secret the page shows), keeps recovery codes, signs in again with a
code and with a recovery code (once), and nothing breaks the strict Content-Security-Policy."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audit.models import AuditEvent
from tests.conftest import PERSONA_PASSWORD, make_persona, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


def oathtool(secret: str, steps_ahead: int = 0) -> str:
    """Return the TOTP code for the secret now (or some 30 s steps later), from Debian's oathtool."""
    when = f"@{int(time.time()) + 30 * steps_ahead}"
    out = subprocess.run(["oathtool", "--totp", "-b", "--now", when, secret], capture_output=True, text=True,
                         check=True, timeout=10)  # fmt: skip
    return out.stdout.strip()


def password_step(page, base: str, username: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", PERSONA_PASSWORD)
    page.click("button:has-text('Sign in')")


def sign_out(page) -> None:
    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_an_operator_enrols_totp_then_signs_in_with_a_code_and_a_recovery_code(page, live_server, settings):
    settings.REQUIRE_MFA = True
    make_persona("bob")
    pam_user = make_user(password="Stored-Secret-1")
    base = live_server.url

    # The password alone leads only to enrolment, whatever page is asked for.
    password_step(page, base, "bob")
    expect(page).to_have_url(re.compile(r"/accounts/mfa/enrol/"))
    page.goto(base + reverse("records:user-detail", args=[pam_user.pk]))
    expect(page).to_have_url(re.compile(r"/accounts/mfa/enrol/"))
    expect(page.locator("#totp-qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").get_attribute("data-secret")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert page.locator("#totp-secret").inner_text().replace(" ", "") == secret
    page.fill("#id_code", oathtool(secret))
    page.click("button:has-text('Confirm')")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    page.click("#recovery-codes-done")
    expect(page.locator("h1")).to_have_text("Dashboard")
    sign_out(page)

    # Next time: password, then the app's next code.
    password_step(page, base, "bob")
    expect(page).to_have_url(re.compile(r"/accounts/mfa/verify/"))
    page.fill("#id_code", oathtool(secret, steps_ahead=1))
    page.click("button:has-text('Verify')")
    expect(page.locator("h1")).to_have_text("Dashboard")
    sign_out(page)

    # A recovery code signs in once.
    for attempt in range(2):
        password_step(page, base, "bob")
        page.fill("#id_code", codes[0])
        page.click("button:has-text('Verify')")
        if attempt == 0:
            expect(page.locator("h1")).to_have_text("Dashboard")
            sign_out(page)
        else:
            expect(page).to_have_url(re.compile(r"/accounts/mfa/verify/"))
            expect(page.locator(".alert, .invalid-feedback, .alert-block").first).to_contain_text("not right")
    assert AuditEvent.objects.filter(event=AuditEvent.RECOVERY_CODE_USED, actor_name="bob").count() == 1
    assert AuditEvent.objects.filter(event=AuditEvent.MFA_ENROLLED, actor_name="bob").count() == 1
    assert page.csp_errors == []
