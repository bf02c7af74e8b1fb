"""Every main page as a person sees it, in real Chromium, at a desktop width
(1440 px) and a phone width (390 px), in its main states (empty, filled,
error): a screenshot of each goes to test-artifacts/screenshots/ (CI keeps the
folder), and the page fails if its visible text shows template syntax or a
raw timestamp, or if it (its navigation included) is wider than the screen."""

import re
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser import page  # noqa: F401 - the fixture
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
WIDTHS = (1440, 390)
TEMPLATE_SYNTAX = re.compile(r"\{#|\{%|\{\{")
# ISO 8601 as stored (2026-11-30T01:52:23.123456+00:00): people read 2026-11-30 01:52:23.
RAW_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+|[+-]\d\d:\d\d)")
# The text a person reads: everything but code and preformatted blocks (which may show config or snippets).
VISIBLE_TEXT = """() => {
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll("code, pre, script, style, template").forEach((node) => node.remove());
  document.body.appendChild(copy);
  copy.style.position = "absolute";
  const text = copy.innerText;
  copy.remove();
  return text;
}"""


def look(page, name: str, path: str) -> None:  # noqa: F811
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(path)
        page.wait_for_load_state("networkidle")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        text = page.evaluate(VISIBLE_TEXT)
        leaked = TEMPLATE_SYNTAX.findall(text)
        assert not leaked, f"{name} at {width} px shows template syntax: {text[:300]!r}"
        raw_time = RAW_TIMESTAMP.search(text)
        assert raw_time is None, f"{name} at {width} px shows a raw timestamp: {raw_time.group(0)}"
        overflow = page.evaluate(
            "() => [...document.querySelectorAll('header nav ul')].some((ul) => ul.scrollWidth > ul.clientWidth + 1)"
            " || document.querySelector('header') && document.querySelector('header').scrollWidth > innerWidth + 1"
        )
        assert not overflow, f"{name} at {width} px: the navigation does not fit"
        wider = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert wider <= 1, f"{name} at {width} px is {wider} px wider than the screen"


@pytest.fixture
def world(django_user_model):
    """A filled dashboard: repositories valid and invalid, deployments running,
    queued, waiting for approval and deleted, audit events."""
    from deployments.models import Deployment
    from deployments.services.deployments import deployment_create
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.conftest import make_user
    from tests.engine import local_target

    admin = make_user(django_user_model, "admin", "admin")
    make_user(django_user_model, "requester", "deployer")
    valid = repository_load_example(path=EXAMPLES / "add_sub", actor=admin).repository
    broken = repository_load_example(path=EXAMPLES / "broken", actor=admin).repository
    dev = local_target()
    running = deployment_create(name="add-sub", repository=valid, target=dev, actor=admin)
    Deployment.objects.filter(pk=running.pk).update(
        status=Deployment.Status.HEALTHY,
        scoring_uri="http://127.0.0.1:20000",
        observed={"models": [{"name": "add_sub", "version": "1", "ready": True, "reason": ""}], "traffic": {}},
    )
    gone = deployment_create(name="retired", repository=valid, target=dev, actor=admin)
    Deployment.objects.filter(pk=gone.pk).update(status=Deployment.Status.DELETED)
    from django.utils import timezone

    from deployments.models import Target

    tested = {"state": "ok", "message": "Triton 2.51 answers", "at": timezone.now().isoformat(), "by": "admin"}
    Target.objects.filter(pk=dev.pk).update(last_test=tested)
    prod = local_target("local-prod", "prod", approvals=1)
    waiting = deployment_create(
        name="add-sub-prod", repository=valid, target=prod, actor=django_user_model.objects.get(username="requester")
    )
    from deployments.models import ConfigSearch, LoadTest

    def point(concurrency, throughput, p95, batch):
        server = {
            "requests": 600,
            "failures": 0,
            "queue_us": 900.0,
            "compute_input_us": 20.0,
            "compute_infer_us": 10500.0,
            "compute_output_us": 150.0,
            "executions": 300,
            "inferences": 600,
            "batch": batch,
        }
        return {
            "concurrency": concurrency,
            "throughput": throughput,
            "mean_ms": p95 * 0.7,
            "p50_ms": p95 * 0.6,
            "p90_ms": p95 * 0.9,
            "p95_ms": p95,
            "p99_ms": p95 * 1.3,
            "stable": True,
            "trials": 3,
            "requests": 900,
            "errors": 0,
            "measured": 600,
            "error_samples": [],
            "stopped": "",
            "server": server,
        }

    runs = [
        LoadTest.objects.create(
            deployment=running,
            model="add_sub",
            concurrency=[1, 4, 8],
            max_requests=100_000,
            max_seconds=600,
            status=LoadTest.Status.SUCCEEDED,
            requested_by=admin,
            label=label,
            mode="triton",
            points=[
                point(1, 71.8, 24.4, 1.0),
                point(4, 90.6 * gain, 48.8 / gain, gain),
                point(8, 91.9 * gain, 92.3 / gain, gain),
            ],
        )
        for label, gain in (("shipped config", 1.0), ("after the search", 2.6))
    ]
    grid = [
        {"dynamic_batching": False, "max_queue_delay_us": 0, "instances": 1},
        {"dynamic_batching": True, "max_queue_delay_us": 0, "instances": 1},
    ]
    search = ConfigSearch.objects.create(
        repository=valid,
        model="add_sub",
        target=dev,
        deployment=running,
        grid=grid,
        concurrency=[1, 4, 8],
        latency_budget_ms=100,
        status=ConfigSearch.Status.SUCCEEDED,
        requested_by=admin,
        results=[
            {
                "config": config,
                "label": label,
                "config_text": 'name: "add_sub"\n',
                "error": "",
                "points": [point(1, 70.0, 20.0, 1.0), point(8, 90.0 * gain, 90.0 / gain, gain)],
            }
            for config, label, gain in (
                (grid[0], "no dynamic batching, 1 instance", 1.0),
                (grid[1], "dynamic batching (queue delay 0 µs), 1 instance", 3.9),
            )
        ],
        best={
            "latency": {"index": 1, "concurrency": 8, "throughput": 351.0},
            "throughput": {"index": 1, "concurrency": 8, "throughput": 351.0},
        },
    )
    from deployments.audit import audit

    script = "def init():\n    pass\n\n\ndef run(data):\n    return data\n"
    spec = {"mode": "entry_script", "entry_script": script, "worker_count": 1, "resources": {"cpu_cores": 1}}
    changed = {
        **spec,
        "entry_script": script.replace("return data", "return {'echo': data}"),
        "worker_count": 2,
        "resources": {"cpu_cores": 2, "memory_gb": 4},
    }
    redeploy = audit(
        action="deployment.redeploy_requested",
        actor=admin,
        obj=running,
        before=spec,
        after=changed,
        details={"spec_changed": True, "needs_approval": False},
    )
    return {
        "event": redeploy,
        "runs": runs,
        "search": search,
        "valid": valid,
        "broken": broken,
        "running": running,
        "waiting": waiting,
        "target": dev,
        "environment": prod.environment,
    }


def sign_in(page, username="admin"):  # noqa: F811
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_an_empty_dashboard_as_seen(page, django_user_model):  # noqa: F811
    from tests.conftest import make_user

    look(page, "login", "/login/")
    make_user(django_user_model, "admin", "admin")
    sign_in(page)
    for name, url in (
        ("overview-empty", "overview"),
        ("repositories-empty", "repositories"),
        ("deployments-empty", "deployments"),
        ("approvals-empty", "approvals"),
        ("targets-empty", "targets"),
    ):
        look(page, name, reverse(url))


def test_a_filled_dashboard_as_seen(page, world):  # noqa: F811
    sign_in(page)
    request = world["waiting"].requests.get()
    for name, path in (
        ("overview", reverse("overview")),
        ("repositories", reverse("repositories")),
        ("repository-valid", reverse("repository", args=[world["valid"].pk])),
        ("repository-invalid", reverse("repository", args=[world["broken"].pk])),
        ("deployments", reverse("deployments")),
        ("deployments-filtered-empty", reverse("deployments") + "?status=failed"),
        ("deployment", reverse("deployment", args=[world["running"].pk])),
        ("deployment-delete-confirm", reverse("deployment-delete", args=[world["running"].pk])),
        ("deployment-waiting", reverse("deployment", args=[world["waiting"].pk])),
        ("deployment-new", reverse("deployment-create")),
        ("console-unreachable", reverse("deployment-console", args=[world["running"].pk])),
        ("targets", reverse("targets")),
        ("target-local", reverse("target", args=[world["target"].pk])),
        ("environments", reverse("environments")),
        ("environment", reverse("environment", args=[world["environment"].pk])),
        ("approvals", reverse("approvals")),
        ("approval", reverse("approval", args=[request.pk])),
        ("audit", reverse("audit")),
        ("audit-event", reverse("audit-event", args=[world["event"].seq])),
        ("audit-bad-filter", reverse("audit") + "?since=yesterday&actor=admin"),
        ("profile", reverse("profile")),
        ("loadtest", reverse("loadtest", args=[world["runs"][0].pk])),
        ("loadtest-new", reverse("loadtest-create", args=[world["running"].pk])),
        ("loadtest-compare", reverse("loadtest-compare") + f"?a={world['runs'][0].pk}&b={world['runs'][1].pk}"),
        ("loadtest-compare-pick", reverse("loadtest-compare")),
        ("config-search", reverse("config-search", args=[world["search"].pk])),
        ("config-search-new", reverse("config-search-create", args=[world["running"].pk])),
    ):
        look(page, name, path)
    # An error state of a form: the new-deployment form sent empty.
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(reverse("deployment-create"))
    page.get_by_role("button", name="Deploy").click()
    page.screenshot(path=str(SHOTS / "deployment-new-errors-1440.png"), full_page=True)
    assert not TEMPLATE_SYNTAX.findall(page.evaluate(VISIBLE_TEXT))


def test_charts_read_the_24_hour_clock(page, world):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    from deployments.models import MetricPoint

    # Two afternoon points (13:xx): a 12-hour clock would say "1:xx pm".
    afternoon = (timezone.now() - timedelta(hours=1)).replace(hour=13, minute=5, second=0, microsecond=0)
    if afternoon > timezone.now():
        afternoon -= timedelta(days=1)
    for offset, value in ((0, 2.0), (30, 3.0)):
        MetricPoint.objects.create(
            deployment=world["running"],
            minute=afternoon + timedelta(minutes=offset),
            name="requests_per_s",
            model="add_sub",
            value=value,
        )
    sign_in(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(reverse("deployment", args=[world["running"].pk]))
    # The chart's text (a canvas has none of its own) uses the same clock as its axis.
    chart = page.locator("[data-series-url][role=img]").first
    expect(chart).to_have_attribute(
        "aria-label",
        re.compile(
            r"^Requests and failures per second: add_sub requests, "
            r"read from \d{4}-\d\d-\d\d 13:05 to \d{4}-\d\d-\d\d 13:35 \(window .* to .*\)$"
        ),
    )
