"""The Overview: tiles grouped by environment with their figures and last
change, filters, what needs the viewer, and a query count that does not
grow with the fleet."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deployments.health.verdict import DRIFT
from deployments.models import Deployment, MetricPoint, Operation, Target
from deployments.selectors.fleet import FleetFilters, fleet
from deployments.selectors.needs_you import SHOWN, needs_you
from deployments.selectors.tile_figures import figures_for
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from tests.archives import EXAMPLES
from tests.engine import local_target

pytestmark = pytest.mark.django_db


@pytest.fixture
def repository(deployer):
    return repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository


def running(name, repository, target, actor, status=Deployment.Status.HEALTHY, reason=""):
    deployment = deployment_create(name=name, repository=repository, target=target, actor=actor)
    Operation.objects.filter(deployment=deployment).update(status=Operation.Status.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(status=status, status_reason=reason)
    deployment.refresh_from_db()
    return deployment


def minutes(deployment, name, values, *, model="add_sub", now=None):
    """One point a minute, the last value in the current minute."""
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    for back, value in enumerate(reversed(values)):
        MetricPoint.objects.create(
            deployment=deployment, name=name, model=model, minute=now - timedelta(minutes=back), value=value
        )


# Half past seven past the hour: the minutes :05 to :07 share one five-minute slot.
NOW = timezone.now().replace(minute=7, second=30, microsecond=0)


def test_a_tile_shows_rate_errors_and_p95_over_its_models_in_five_minute_slots(deployer, repository):
    deployment = running("busy", repository, local_target(), deployer)
    minutes(deployment, "requests_per_s", [8.0, 4.0, 6.0], now=NOW)  # :05 to :07
    minutes(deployment, "requests_per_s", [0.0, 1.0, 4.0], model="other", now=NOW)
    minutes(deployment, "failures_per_s", [0.0, 0.0, 0.5], now=NOW)
    minutes(deployment, "p95_ms", [12.0, 12.0, 30.0], now=NOW)
    minutes(deployment, "p95_ms", [40.0, 20.0, 20.0], model="other", now=NOW)
    minutes(deployment, "requests_per_s", [50.0], now=NOW - timedelta(minutes=10))  # the slot at :55
    requests, errors, p95 = figures_for([deployment], now=NOW)[deployment.pk]
    assert requests.value == pytest.approx(23 / 3)  # the models' sums averaged over the slot's minutes
    assert errors.value == pytest.approx(100 * (0.5 / 3) / (23 / 3))
    assert p95.value == 40.0  # the worst model's worst minute
    # Two slots with readings, :55 and :05, with :00 missing between them: two lines.
    assert len(requests.lines) == 2


def test_a_stale_reading_is_not_shown_as_current(deployer, repository):
    deployment = running("quiet", repository, local_target(), deployer)
    minutes(deployment, "requests_per_s", [3.0, 3.0], now=NOW - timedelta(minutes=20))
    requests, _, p95 = figures_for([deployment], now=NOW)[deployment.pk]
    assert requests.lines  # drawn where it was read...
    assert requests.value is None  # ...not shown as now
    assert (requests.given, requests.missing) == (True, "no reading lately")
    assert (p95.value, p95.lines, p95.missing) == (None, [], "no requests lately")


def test_a_kind_that_gives_no_figures_says_why_rather_than_zero(client, deployer, repository):
    env = local_target().environment
    fake = Target.objects.create(name="fake", kind="fake", environment=env)
    deployment = running("blind", repository, fake, deployer)
    figures = figures_for([deployment])[deployment.pk]
    assert [f.given for f in figures] == [False, False, False]
    assert all(f.value is None and f.missing for f in figures)
    client.force_login(deployer)
    page = client.get(reverse("overview")).content.decode()
    assert page.count(">n/a</abbr>") == 1 + 3  # the legend, and each figure of the tile


def test_tiles_are_grouped_by_environment_in_order_with_problems_first(deployer, repository):
    dev = local_target()
    prod = local_target("local-prod", "prod")
    prod.environment.position = 9
    prod.environment.save()
    running("b-fine", repository, dev, deployer)
    running("a-broken", repository, dev, deployer, status=Deployment.Status.UNHEALTHY, reason="add_sub not ready")
    running("p-one", repository, prod, deployer)
    groups = fleet(deployer).groups
    assert [g.environment for g in groups] == ["dev", "prod"]
    assert [t.deployment.name for t in groups[0].tiles] == ["a-broken", "b-fine"]
    change = groups[0].tiles[0].change
    assert (change.what, change.by) == ("deploy", deployer.username)


def test_filters_select_environment_status_and_target(client, deployer, repository):
    dev = local_target()
    prod = local_target("local-prod", "prod")
    running("dev-ok", repository, dev, deployer)
    running("dev-bad", repository, dev, deployer, status=Deployment.Status.FAILED)
    running("prod-ok", repository, prod, deployer)

    def names(**query):
        return [t.deployment.name for g in fleet(deployer, FleetFilters(**query)).groups for t in g.tiles]

    assert sorted(names(environment="prod")) == ["prod-ok"]
    assert names(status="failed") == ["dev-bad"]
    assert sorted(names(target="local-dev")) == ["dev-bad", "dev-ok"]
    assert FleetFilters.from_query({"status": "nonsense", "environment": " prod "}) == FleetFilters(environment="prod")
    client.force_login(deployer)
    page = client.get(reverse("overview"), {"environment": "prod"}).content.decode()
    assert ">prod-ok</a>" in page
    assert ">dev-ok</a>" not in page  # as a tile (the activity table names it)
    # The live part polls with the same filters, so it stays filtered.
    assert 'hx-get="/?environment=prod" hx-trigger="every 10s"' in page
    nothing = client.get(reverse("overview"), {"environment": "prod", "status": "failed"}).content.decode()
    assert "No live deployment matches these filters" in nothing


def test_the_poll_returns_the_live_part_only_and_a_history_restore_the_whole_page(client, deployer, repository):
    running("polled", repository, local_target(), deployer)
    client.force_login(deployer)
    fragment = client.get(reverse("overview"), HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="live"')
    assert "polled" in fragment
    assert "<html" not in fragment
    restored = client.get(reverse("overview"), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in restored.content.decode()


def test_needs_you_lists_my_approvals_failed_operations_and_drift(client, deployer, approver, repository):
    prod = local_target("local-prod", "prod", approvals=1)
    deployment_create(name="asks", repository=repository, target=prod, actor=deployer)
    broken = running("broken", repository, local_target(), deployer, status=Deployment.Status.FAILED)
    Operation.objects.filter(deployment=broken).update(status=Operation.Status.FAILED, error="Triton exited: 1")
    healed = running("healed", repository, local_target("local-2"), deployer)
    healed.operations.update(status=Operation.Status.FAILED, created_at=timezone.now() - timedelta(hours=1))
    healed.operations.create(kind=Operation.Kind.DEPLOY, status=Operation.Status.SUCCEEDED)
    drift = f"{DRIFT} the target runs spec 0000, desired 1234 (redeploy to apply)"
    running("drifted", repository, local_target("local-3"), deployer, status=Deployment.Status.DEGRADED, reason=drift)
    for_approver = needs_you(approver)
    assert [r.deployment.name for r in for_approver.approvals] == ["asks"]
    mine = needs_you(deployer)
    assert mine.approvals == []  # nobody approves their own request
    assert [o.deployment.name for o in mine.failed_operations] == ["broken"]  # "healed" ran again since
    assert [d.name for d in mine.drift] == ["drifted"]
    client.force_login(deployer)
    page = client.get(reverse("overview")).content.decode()
    needs = page.split('id="needs-you"')[1].split("</section>")[0]
    assert "Triton exited: 1" in needs
    assert "drift: the target runs spec" in needs


def test_needs_you_says_when_it_shows_only_the_first_of_a_list(client, deployer, repository):
    target = local_target()
    for n in range(SHOWN + 1):
        running(f"drifted-{n}", repository, target, deployer, status=Deployment.Status.DEGRADED, reason=f"{DRIFT} x")
    needs = needs_you(deployer)
    assert len(needs.drift) == SHOWN
    assert needs.more_drift
    assert not needs.more_failures
    assert needs.count_label == f"{SHOWN}+"  # at least that many, not exactly
    client.force_login(deployer)
    page = client.get(reverse("overview")).content.decode()
    assert f"More deployments drift than these {SHOWN}" in page


def test_a_viewer_of_one_environment_sees_only_its_tiles(client, viewer, deployer, repository):
    from deployments.models import EnvironmentMembership

    running("dev-one", repository, local_target(), deployer)
    prod = local_target("local-prod", "prod")
    running("prod-one", repository, prod, deployer)
    viewer.groups.clear()
    EnvironmentMembership.objects.create(user=viewer, environment=prod.environment, role="viewer")
    client.force_login(viewer)
    page = client.get(reverse("overview")).content.decode()
    assert ">prod-one</a>" in page
    assert "dev-one" not in page


def test_the_overview_runs_a_constant_number_of_queries(client, deployer, repository):
    targets = [local_target(), local_target("local-prod", "prod")]
    client.force_login(deployer)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("overview")).status_code == 200
        with CaptureQueriesContext(connection) as poll:
            assert client.get(reverse("overview"), HTTP_HX_REQUEST="true").status_code == 200
        return len(queries), len(poll)

    def add(start, stop):
        for n in range(start, stop):
            status = [Deployment.Status.HEALTHY, Deployment.Status.FAILED, Deployment.Status.DEGRADED][n % 3]
            deployment = running(f"d{n}", repository, targets[n % 2], deployer, status=status)
            minutes(deployment, "requests_per_s", [1.0, 2.0])

    add(0, 6)
    count()
    few = count()
    add(6, 40)
    assert count() == few
    assert Target.objects.count() == 2
