"""Approval and break-glass through the pages in a real browser, against a real slapd and a live server.

Bob asks for an account whose configuration requires approval, Alice approves, Bob checks it out
(the password binds) and checks it in (it no longer does); then Alice breaks the glass, every
approver is alerted, and the end of the window rotates the password.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from playwright.sync_api import expect

from access.models import AccessRequest, CheckOut, ConfigurationAccess, RequestState
from rotation import dispatch
from tests.browser.test_records_browser import sign_in
from tests.conftest import PERSONA_PASSWORD, make_persona
from tests.test_rotation import STRONG, make_env

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


def test_approval_check_out_check_in_and_break_glass(browser, page, live_server, slapd, unique_name):
    make_persona("alice")
    make_persona("bob")
    erin = User.objects.create_user("erin", "erin@example.test", PERSONA_PASSWORD)
    erin.groups.add(Group.objects.get(name="Administrators"))
    env = make_env(slapd, unique_name)
    user = env.account(unique_name("guarded"))
    ConfigurationAccess.objects.create(configuration=user.configuration, require_approval=True)
    base = live_server.url

    sign_in(page, base, "bob")
    page.goto(base + user.get_absolute_url())
    expect(page.locator("#approval-required")).to_be_visible()
    page.click("#request-access")
    page.fill("#id_reason", "rotate the backup job's credential")
    page.fill("#id_wanted_minutes", "20")
    page.click("#send-request")
    expect(page.locator("#request-state")).to_have_text("Pending")
    access = AccessRequest.objects.get(user=user)

    approver = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    approver.csp_errors = []
    approver.on(
        "console", lambda m: "Content Security Policy" in m.text and approver.csp_errors.append(m.text)
    )
    sign_in(approver, base, "alice")
    approver.click("#nav-access")
    approver.click(f"#waiting >> text=#{access.pk}")  # the request waits for her decision
    approver.select_option("#id_decision", "approve")
    approver.fill("#id_comment", "go ahead")
    approver.click("#decide")
    expect(approver.locator("#request-state")).to_have_text("Approved")

    page.goto(base + user.get_absolute_url())
    expect(page.locator("#grant-state")).to_contain_text("Approved access until")
    page.click("#check-out")
    password = page.locator("#revealed-password").input_value()
    assert password == STRONG and slapd.can_bind(user.distinguished_name, password)
    page.goto(base + user.get_absolute_url())
    expect(page.locator("#checkout-holder")).to_have_text("bob")
    assert STRONG not in page.content()
    page.click("#check-in")
    expect(page.locator("#checkout-state")).to_have_text("Not checked out.")
    user.refresh_from_db()
    assert not slapd.can_bind(user.distinguished_name, STRONG)
    checked_in = user.get_password()
    assert slapd.can_bind(user.distinguished_name, checked_in)
    assert CheckOut.objects.get(user=user).end_reason == "checked_in"

    # Break-glass: Alice holds no grant of her own, so she takes the password with a justification.
    mail.outbox.clear()
    approver.goto(base + user.get_absolute_url())
    approver.click("#break-glass")
    approver.fill("#id_justification", "the domain controller is down")
    approver.fill("#id_minutes", "5")
    approver.click("#take-password")
    expect(approver.locator("#break-glass-notice")).to_be_visible()
    assert approver.locator("#revealed-password").input_value() == checked_in
    assert any("BREAK-GLASS" in m.subject and "erin@example.test" in m.to for m in mail.outbox)
    grant = AccessRequest.objects.get(break_glass=True)
    dispatch.tick(grant.granted_until + dt.timedelta(seconds=1), housekeeping=False)
    grant.refresh_from_db()
    user.refresh_from_db()
    assert grant.state == RequestState.EXPIRED
    assert not slapd.can_bind(user.distinguished_name, checked_in)
    assert slapd.can_bind(user.distinguished_name, user.get_password())
    assert page.csp_errors == [] and approver.csp_errors == []
    approver.context.close()
