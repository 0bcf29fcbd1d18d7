"""The API's documentation and token pages in a real browser, under the site's strict CSP."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_records_browser import sign_in
from tests.conftest import make_configuration, make_persona

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


def test_swagger_ui_and_redoc_render_without_a_csp_violation(page, live_server):
    make_persona("carol")
    sign_in(page, live_server.url, "carol")
    page.goto(live_server.url + "/api/docs/")
    # The vendored bundles parse a large spec: on a loaded 2-core machine that took more than 5 s.
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=30_000)
    expect(page.locator(".swagger-ui")).to_contain_text("/api/v1/users/{uid}/credential/")
    page.goto(live_server.url + "/api/redoc/")
    expect(page.locator("h1").first).to_contain_text("pamrotate API", timeout=30_000)
    expect(page.get_by_text("/api/v1/users/{uid}/credential/").first).to_be_attached()
    # Redoc's "API docs by Redocly" badge always points at its CDN: the CSP stops that request.
    unexpected = [error for error in page.csp_errors if "cdn.redoc.ly/redoc/logo-mini.svg" not in error]
    assert unexpected == []


def test_an_administrator_creates_an_application_and_sees_its_token_once(page, live_server):
    make_persona("alice")
    make_configuration(title="Browser configuration")
    sign_in(page, live_server.url, "alice")
    page.click("#nav-applications")
    page.click("text=New application")
    page.fill("#id_name", "browser-app")
    page.check("text=Browser configuration")
    page.click("input[type=submit][value=Save]")
    token = page.locator("#new-token")
    expect(token).to_have_value(re.compile(r"^pr_app_"))
    page.click("text=Done")
    expect(page.locator("h1")).to_have_text("browser-app")
    expect(page.locator("#tokens")).to_contain_text("active")
    assert page.csp_errors == []
