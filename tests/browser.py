"""Debian's Chromium driven by Playwright (no browser download is possible here)."""

import os

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


@pytest.fixture
def page(transactional_db, live_server, tmp_path):
    # transactional_db first: the session-wide test database must be set up
    # before the live server, so it is torn down after the server stops.
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls a
    # test makes around it are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(base_url=live_server.url)
            page = context.new_page()
            # Anything the Content Security Policy blocks shows up in the console.
            violations = []
            page.on(
                "console",
                lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
            )
            try:
                yield page
                assert not violations, f"blocked by the Content Security Policy: {violations}"
            finally:
                page.screenshot(path=str(tmp_path / "last.png"))
                browser.close()
                # ORM calls made while Playwright's loop ran opened their own
                # connection (another context); close it or the test database
                # cannot be dropped at the end of the session.
                connections.close_all()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
