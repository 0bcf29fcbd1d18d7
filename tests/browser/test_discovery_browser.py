"""Discovery in a real browser: Discover accounts, select all, adopt (no CSP violation on the way)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from records.models import PamUser
from tests.browser.test_records_browser import save_screenshot, sign_in
from tests.conftest import make_persona
from tests.test_discovery import directory_for, slapd_ou
from tests.test_rotation import STRONG

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


def test_alice_discovers_selects_all_and_adopts(page, live_server, slapd, unique_name):
    make_persona("alice")
    ou = slapd_ou(slapd, unique_name)
    dns = [slapd.add_user(unique_name("brw"), STRONG, ou_dn=ou) for _ in range(3)]
    directory = directory_for(slapd, unique_name, user_match=ou)
    sign_in(page, live_server.url, "alice")

    page.goto(live_server.url + directory.get_absolute_url())
    page.click("#discover-accounts")
    expect(page.locator("#discovery-summary")).to_contain_text("3 accounts found")
    page.check("#select-all")
    expect(page.locator("input.adopt-choice:checked")).to_have_count(3)
    save_screenshot(page, "discovery")
    page.click("#adopt-selected")

    expect(page.locator(".alert")).to_contain_text("3 accounts adopted")
    assert PamUser.objects.filter(resource=directory).count() == len(dns)
    assert page.csp_errors == []
