"""Load tests and config searches for pipelines: ask for one, follow it,
cancel it, take its CSV; make a revision from a search's recommendation.
The same services as the pages, so the same policy, rights and audit."""

from django.http import HttpRequest
from ninja import Router, Status

from deployments.api.bodies import ConfigSearchCreate, LoadTestCreate, RevisionFromSearch
from deployments.api.deployments import _by_id_or_name, _revision, _visible
from deployments.api.errors import NotFound
from deployments.api.schemas import ConfigSearch, LoadTest, LoadTestPage, RevisionMade, answers, changes
from deployments.loadlab.export import csv_response
from deployments.models import Deployment, Target
from deployments.selectors.load_tests import config_search_or_none, load_test_or_none, load_tests_of
from deployments.serializers import config_search_json, load_test_json
from deployments.services import config_searches, load_tests

router = Router(tags=["load tests"])


def _test(request, test_id: int):
    found = load_test_or_none(request.user, test_id)
    if found is None:
        raise NotFound("No such load test.")
    return found


def _search(request, search_id: int):
    found = config_search_or_none(request.user, search_id)
    if found is None:
        raise NotFound("No such config search.")
    return found


@router.post(
    "deployments/{int:deployment_id}/loadtests",
    response=changes({201: LoadTest}, 404),
    url_name="deployment-loadtests",
)
def load_test_create(request: HttpRequest, deployment_id: int, body: LoadTestCreate):
    """Sweep closed-loop load over `concurrency` against one model of the
    deployment, through its own endpoint, measured as perf_analyzer does.
    Bounded by `max_requests` and `max_seconds`. Where the environment's
    policy asks for approval, the test waits for it (`awaiting_approval`);
    where load tests are off, 403."""
    test = load_tests.load_test_create(
        deployment=_visible(request, deployment_id),
        actor=request.user,
        **body.model_dump(exclude_unset=True),
    )
    return Status(201, load_test_json(test))


@router.get("deployments/{int:deployment_id}/loadtests", response=answers({200: LoadTestPage}, 404))
def load_test_list(request: HttpRequest, deployment_id: int):
    """The deployment's latest load tests, newest first."""
    return {"results": [load_test_json(t) for t in load_tests_of(request.user, _visible(request, deployment_id))]}


@router.get("loadtests/{int:test_id}", response=answers({200: LoadTest}, 404), url_name="loadtest")
def load_test_detail(request: HttpRequest, test_id: int):
    return load_test_json(_test(request, test_id))


@router.get("loadtests/{int:test_id}/csv", response=answers({200: str}, 404), url_name="loadtest-csv")
def load_test_csv(request: HttpRequest, test_id: int):
    """The points with perf_analyzer's column names (latencies in µs)."""
    test = _test(request, test_id)
    return csv_response(test)


@router.post("loadtests/{int:test_id}/cancel", response=changes({200: LoadTest}, 404), url_name="loadtest-cancel")
def load_test_cancel(request: HttpRequest, test_id: int):
    """A waiting test ends at once; a running one stops within a second,
    keeping the points it measured (status cancelled)."""
    return load_test_json(load_tests.load_test_cancel(test=_test(request, test_id), actor=request.user))


@router.post("loadtests/{int:test_id}/approve", response=changes({200: LoadTest}, 404), url_name="loadtest-approve")
def load_test_approve(request: HttpRequest, test_id: int):
    """An approver there other than the requester lets a waiting test run."""
    return load_test_json(load_tests.load_test_approve(test=_test(request, test_id), actor=request.user))


@router.post("config-searches", response=changes({201: ConfigSearch}), url_name="config-searches")
def config_search_create(request: HttpRequest, body: ConfigSearchCreate):
    """Serve one model of a revision under each config of a small grid on
    scratch deployments of a local target, sweep each, and recommend the
    best config within the latency budget and the best for throughput.
    Scratch deployments are always removed."""
    targets = Target.objects.visible_to(request.user)
    deployment = (
        _by_id_or_name(Deployment.objects.visible_to(request.user), body.deployment, "deployment")
        if body.deployment is not None
        else None
    )
    search = config_searches.config_search_create(
        actor=request.user,
        repository=_revision(request, body.repository),
        model=body.model,
        target=_by_id_or_name(targets, body.target, "target"),
        grid=body.grid,
        concurrency=body.concurrency,
        latency_budget_ms=body.latency_budget_ms,
        window_seconds=body.window_seconds,
        max_trials=body.max_trials,
        deployment=deployment,
    )
    return Status(201, config_search_json(search))


@router.get("config-searches/{int:search_id}", response=answers({200: ConfigSearch}, 404), url_name="config-search")
def config_search_detail(request: HttpRequest, search_id: int):
    return config_search_json(_search(request, search_id))


@router.post(
    "config-searches/{int:search_id}/cancel",
    response=changes({200: ConfigSearch}, 404),
    url_name="config-search-cancel",
)
def config_search_cancel(request: HttpRequest, search_id: int):
    return config_search_json(
        config_searches.config_search_cancel(search=_search(request, search_id), actor=request.user)
    )


@router.post(
    "config-searches/{int:search_id}/revision",
    response=changes({201: RevisionMade}, 404),
    url_name="config-search-revision",
)
def config_search_revision(request: HttpRequest, search_id: int, body: RevisionFromSearch = None):
    """Record the line's next revision with the recommended config; deploy
    it as any revision (redeploy or rollout, through approvals)."""
    revision = config_searches.config_search_make_revision(
        search=_search(request, search_id), actor=request.user, which=body.which if body else "latency"
    )
    return Status(201, {"id": revision.pk, "label": revision.label, "digest": revision.digest})
