"""Debian's Chromium driven by Playwright (no browser download is possible here)."""

import os
from contextlib import contextmanager

import pytest
from django.db import connections

from tests.services import CHROMIUM

# Without the background-networking flags Chromium keeps dialling out, and
# this machine's closed network refuses it many times a second.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def playwright_running():
    """Playwright's sync API runs an event loop in this thread; the ORM calls a
    test makes around it are still plain synchronous code."""
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            yield playwright
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@contextmanager
def page_watched_for_csp(context):
    """A new page of the context; the test fails if the Content Security Policy
    blocked anything on it (Chromium says so in the console)."""
    page = context.new_page()
    violations = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield page
    assert not violations, f"blocked by the Content Security Policy: {violations}"


@pytest.fixture
def page(transactional_db, live_server, tmp_path):
    # transactional_db first: the session-wide test database must be set up
    # before the live server, so it is torn down after the server stops.
    with playwright_running() as playwright:
        browser = launch(playwright)
        context = browser.new_context(base_url=live_server.url)
        try:
            with page_watched_for_csp(context) as page:
                try:
                    yield page
                finally:
                    page.screenshot(path=str(tmp_path / "last.png"))
        finally:
            browser.close()
            # ORM calls made while Playwright's loop ran opened their own
            # connection (another context); close it or the test database
            # cannot be dropped at the end of the session.
            connections.close_all()


@pytest.fixture(scope="module")
def shared_browser():
    """One Chromium for all of a module's tests (about a second saved per
    test); each test opens its own context, so no cookie or storage is shared.
    It needs no database: the live server's address is given per context."""
    with playwright_running() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()
