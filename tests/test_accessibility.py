"""Every main page checked for accessibility by axe-core, not by eye: in real
Chromium, at a desktop width (1440 px) and a phone width (390 px), filled with
data, a page fails on any serious or critical violation (contrast, labels,
names of links and buttons, landmarks, keyboard access, ...), each listed
with its rule, impact, elements and help, and if it is wider than the screen
(a table that does not fit scrolls inside its own region). Moderate and minor
findings are not failures.

axe-core comes from the npm registry, pinned in package-lock.json and
installed into node_modules/ by `make install`; it is a test tool, never
served. It is read from disk and evaluated in the page through the DevTools
protocol, which the site's Content Security Policy (scripts only with the
response's nonce) does not govern, so the policy stays as in production.
The site pins Pico's light colour scheme (data-theme="light" in base.html),
whatever the system prefers: there is one scheme to check."""

from pathlib import Path

import pytest
from django.db import connections
from django.urls import reverse

from deployments.models import AuditEvent
from tests.browser import page_watched_for_csp, shared_browser  # noqa: F401 - the fixture
from tests.services import IN_CI
from tests.test_pages_as_seen import world  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = {"1440": {"width": 1440, "height": 900}, "390": {"width": 390, "height": 844}}
SERIOUS = {"serious", "critical"}
# Violations only: passes and incomplete checks would triple the answer, and are no failure.
RUN_AXE = "async () => await axe.run(document, {resultTypes: ['violations']})"


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        # As a missing service is: skipped outside CI, a failure in it.
        reason = f"axe-core is not installed ({AXE} is missing): run make install"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return AXE.read_text()


@pytest.fixture(autouse=True)
def quick_password_hashing_here(settings):
    """The world's users are given passwords (hashed slowly on purpose) that
    no test here types: the pages are visited signed in by a session cookie."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# name -> the page's address in the filled world of test_pages_as_seen
# (repositories valid and invalid, deployments running and waiting for
# approval, load tests, a config search; no Triton runs); None: signed out.
PAGES = {
    "overview": lambda w: reverse("overview"),
    "deployments": lambda w: reverse("deployments"),
    "deployment": lambda w: reverse("deployment", args=[w["running"].pk]),
    "deployment-waiting": lambda w: reverse("deployment", args=[w["waiting"].pk]),
    "deployment-new": lambda w: reverse("deployment-create"),
    "deployment-delete-confirm": lambda w: reverse("deployment-delete", args=[w["running"].pk]),
    "repositories": lambda w: reverse("repositories"),
    "repository": lambda w: reverse("repository", args=[w["valid"].pk]),
    "repository-invalid": lambda w: reverse("repository", args=[w["broken"].pk]),
    "line": lambda w: reverse("line", args=[w["valid"].line_id]),
    "approvals": lambda w: reverse("approvals"),
    "approval": lambda w: reverse("approval", args=[w["waiting"].requests.get().pk]),
    "audit": lambda w: reverse("audit"),
    "audit-event": lambda w: reverse("audit-event", args=[AuditEvent.objects.latest("seq").seq]),
    "environments": lambda w: reverse("environments"),
    "environment": lambda w: reverse("environment", args=[w["environment"].pk]),
    "targets": lambda w: reverse("targets"),
    "target": lambda w: reverse("target", args=[w["target"].pk]),
    "profile": lambda w: reverse("profile"),
    "console": lambda w: reverse("deployment-console", args=[w["running"].pk]),
    "loadtest-new": lambda w: reverse("loadtest-create", args=[w["running"].pk]),
    "loadtest": lambda w: reverse("loadtest", args=[w["runs"][0].pk]),
    "loadtest-compare": lambda w: reverse("loadtest-compare") + f"?a={w['runs'][0].pk}&b={w['runs'][1].pk}",
    "config-search": lambda w: reverse("config-search", args=[w["search"].pk]),
    "config-search-new": lambda w: reverse("config-search-create", args=[w["running"].pk]),
    "login": None,
}


def signed_in_cookie(user, live_server_url: str) -> dict:
    """The session cookie of a sign-in made by Django's test client: the pages
    under test are the point here, not the sign-in form (which has its own case)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    return {"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server_url}


def describe(violations: list[dict]) -> list[str]:
    lines = []
    for violation in violations:
        targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:8])
        more = len(violation["nodes"]) - 8
        lines.append(
            f"  {violation['id']} ({violation['impact']}): {violation['help']} [{violation['helpUrl']}]\n"
            f"    on {targets}{f' and {more} more' if more > 0 else ''}"
        )
    return lines


@pytest.mark.parametrize("name", PAGES)
def test_a_main_page_has_no_serious_accessibility_violation(
    shared_browser,  # noqa: F811 - the fixture
    axe_source,
    live_server,
    world,  # noqa: F811 - the fixture
    django_user_model,
    name,
):
    address = PAGES[name]
    context = shared_browser.new_context(base_url=live_server.url)
    if address is not None:
        admin = django_user_model.objects.get(username="admin")
        context.add_cookies([signed_in_cookie(admin, live_server.url)])
    path = reverse("login") if address is None else address(world)
    problems = []
    try:
        with page_watched_for_csp(context) as page:
            for width, viewport in VIEWPORTS.items():
                # Loaded afresh at each width, as a phone would load it (charts size themselves at load).
                page.set_viewport_size(viewport)
                answer = page.goto(path)
                assert answer.ok, f"{name}: {path} answered {answer.status}"
                page.wait_for_load_state("networkidle")
                page.evaluate(axe_source)
                found = page.evaluate(RUN_AXE)["violations"]
                serious = [violation for violation in found if violation["impact"] in SERIOUS]
                if serious:
                    problems += [f"{name} at {width} px:", *describe(serious)]
                wider = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
                if wider > 0:
                    problems.append(f"{name} at {width} px is {wider} px wider than the screen")
    finally:
        context.close()
        # The ORM calls made while Playwright's loop ran opened a connection of their own.
        connections.close_all()
    assert not problems, "\n".join(problems)
