"""Playwright fixtures: Debian's Chromium, headless, against pytest-django's live server."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import ensure_roles

# Playwright's sync API keeps an event loop running in the main thread, which Django would
# otherwise take for async code and refuse ORM calls from the test body.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def roles(transactional_db):
    """Recreate the role groups: a transactional test before this one flushed the migration's rows."""
    ensure_roles()


# One Chromium per test process (a launch per module cost 1-2 s each). Playwright's event loop then
# stays open in the main thread until the session ends: DJANGO_ALLOW_ASYNC_UNSAFE above lets the
# ORM run beside it, in the browser tests and in the tests after them.
@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser page that collects Content-Security-Policy violations in page.csp_errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.csp_errors = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and page.csp_errors.append(message.text),
    )
    request.node.browser_page = page
    yield page
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    page = getattr(item, "browser_page", None)
    if report.when == "call" and report.failed and page is not None and not page.is_closed():
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # a screenshot must never hide the real failure
            report.sections.append(("screenshot", f"could not save a screenshot: {exc}"))
    return report
