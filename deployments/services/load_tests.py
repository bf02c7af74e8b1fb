"""Load tests: asking for one, approving, cancelling; the job itself is
deployments/loadlab/job.py. Each change is one transaction with its audit
event; the job is queued only after commit."""

from django.conf import settings
from django.utils import timezone

from deployments import policy, queue
from deployments.audit import audit
from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.integrity import atomic
from deployments.models import Deployment, Environment, GoldenRequest, LoadTest
from deployments.rollouts import plan as rollout_plan
from deployments.services import background_runs
from deployments.services.permissions import require

MAX_POINTS = 12
WINDOW_SECONDS = (0.5, 30.0)
WINDOW_REQUESTS = (10, 100_000)
TRIALS = (3, 20)


def _whole(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DomainError(f"{name} is a whole number from {low} to {high:,}.", path=name)
    return value


def clean_concurrency(values) -> list[int]:
    if not isinstance(values, list) or not values:
        raise DomainError("concurrency is a list of client counts, e.g. [1, 2, 4, 8].", path="concurrency")
    if len(values) > MAX_POINTS:
        raise DomainError(f"A sweep has at most {MAX_POINTS} points.", path="concurrency")
    clean = [_whole(v, "concurrency", 1, settings.LOADTEST_MAX_CONCURRENCY) for v in values]
    if clean != sorted(set(clean)):
        raise DomainError("concurrency values grow, each once, e.g. [1, 2, 4, 8].", path="concurrency")
    return clean


def clean_method(*, window_seconds=None, window_requests=None, max_trials=None, stability=None) -> dict:
    method = {"window_seconds": 2.0, "window_requests": 0, "max_trials": 10, "stability": 0.10}
    if window_seconds is not None:
        if isinstance(window_seconds, bool) or not isinstance(window_seconds, int | float):
            raise DomainError("window_seconds is a number of seconds.", path="window_seconds")
        if not WINDOW_SECONDS[0] <= window_seconds <= WINDOW_SECONDS[1]:
            raise DomainError(
                f"window_seconds is from {WINDOW_SECONDS[0]:g} to {WINDOW_SECONDS[1]:g}.", path="window_seconds"
            )
        method["window_seconds"] = float(window_seconds)
    if window_requests not in (None, 0):
        method["window_requests"] = _whole(window_requests, "window_requests", *WINDOW_REQUESTS)
    if max_trials is not None:
        method["max_trials"] = _whole(max_trials, "max_trials", *TRIALS)
    if stability is not None:
        if isinstance(stability, bool) or not isinstance(stability, int | float) or not 0.01 <= stability <= 0.5:
            raise DomainError("stability is a fraction from 0.01 to 0.5 (0.1: within 10 %).", path="stability")
        method["stability"] = float(stability)
    return method


def _check_model(deployment: Deployment, model, version) -> tuple[str, str]:
    if not isinstance(model, str) or not model:
        raise DomainError("Name the model to load.", path="model")
    version = "" if version in (None, "") else str(version)
    if deployment.repository is None:
        return model, version
    models = rollout_plan.models_of(deployment.repository)
    if model not in models:
        raise DomainError(
            f"{deployment.name} serves no model {model!r} (it serves {', '.join(sorted(models))}).", path="model"
        )
    if version and (not version.isdigit() or int(version) not in models[model]["versions"]):
        served = ", ".join(str(v) for v in models[model]["versions"])
        raise DomainError(f"{model} has no version {version} being served (served: {served}).", path="version")
    return model, version


def _check_deployment(deployment: Deployment) -> None:
    if deployment.status not in Deployment.RUNNING or not deployment.scoring_uri:
        raise WrongState(f"{deployment.name} is {deployment.get_status_display().lower()}: nothing answers yet.")


@atomic
def load_test_create(
    *,
    deployment: Deployment,
    actor,
    model,
    version=None,
    concurrency,
    window_seconds=None,
    window_requests=None,
    max_trials=None,
    stability=None,
    max_requests=None,
    max_seconds=None,
    inputs="random",
    saved_request=None,
    body=None,
    label="",
) -> LoadTest:
    environment = deployment.target.environment
    require(actor, "deployments.add_deployment", "Load testing", environment=environment)
    if environment.load_tests == Environment.LoadTests.OFF:
        raise NotAllowed(f"Load tests are off in {environment.name} (its policy says so).")
    _check_deployment(deployment)
    model, version = _check_model(deployment, model, version)
    method = clean_method(
        window_seconds=window_seconds, window_requests=window_requests, max_trials=max_trials, stability=stability
    )
    concurrency = clean_concurrency(concurrency)
    max_requests = _whole(
        settings.LOADTEST_MAX_REQUESTS if max_requests is None else max_requests,
        "max_requests",
        1,
        settings.LOADTEST_MAX_REQUESTS,
    )
    max_seconds = _whole(
        settings.LOADTEST_MAX_SECONDS if max_seconds is None else max_seconds,
        "max_seconds",
        10,
        settings.LOADTEST_MAX_SECONDS,
    )
    test = LoadTest(
        deployment=deployment,
        model=model,
        version=version,
        label=str(label or "").strip()[:100],
        concurrency=concurrency,
        max_requests=max_requests,
        max_seconds=max_seconds,
        requested_by=actor,
        mode=deployment.mode,
        **method,
    )
    if deployment.mode == Deployment.Mode.ENTRY_SCRIPT:
        if not isinstance(body, str) or not body.strip():
            raise DomainError("An entry-script deployment is loaded with a JSON body for its /score.", path="body")
        if len(body) > 64 * 1024:
            raise DomainError("The body is at most 64 KB.", path="body")
        test.score_body = body
        test.inputs = LoadTest.Inputs.SAVED
    else:
        if inputs not in LoadTest.Inputs.values:
            raise DomainError(f"inputs is one of {', '.join(LoadTest.Inputs.values)}.", path="inputs")
        test.inputs = inputs
        if inputs == LoadTest.Inputs.SAVED:
            saved = _saved(deployment, saved_request, model)
            test.saved_inputs, test.saved_name = saved.request["inputs"], saved.name
    if environment.load_tests == Environment.LoadTests.APPROVAL:
        test.status = LoadTest.Status.AWAITING_APPROVAL
    else:
        test.status, test.queued_at = LoadTest.Status.QUEUED, timezone.now()
    test.save()
    audit(action="loadtest.requested", actor=actor, obj=test, after=_public(test))
    if test.status == LoadTest.Status.QUEUED:
        queue.run_load_test(test)
    return test


def _saved(deployment: Deployment, saved_request, model: str) -> GoldenRequest:
    if saved_request in (None, ""):
        raise DomainError("Pick the saved request to send (inputs: saved).", path="saved_request")
    golden = deployment.golden_requests.filter(pk=saved_request if str(saved_request).isdigit() else None).first()
    if golden is None:
        golden = deployment.golden_requests.filter(name=str(saved_request)).first()
    if golden is None:
        raise DomainError(f"{deployment.name} has no saved request {saved_request!r}.", path="saved_request")
    if golden.request.get("model") != model:
        raise DomainError(
            f"The saved request {golden.name!r} is for {golden.request.get('model')}, not {model}.",
            path="saved_request",
        )
    return golden


def _public(test: LoadTest) -> dict:
    return {
        "deployment": test.deployment.name,
        "model": test.model,
        "version": test.version,
        "concurrency": test.concurrency,
        "window_seconds": test.window_seconds,
        "window_requests": test.window_requests,
        "max_trials": test.max_trials,
        "max_requests": test.max_requests,
        "max_seconds": test.max_seconds,
        "inputs": test.inputs,
        "saved_request": test.saved_name,
        "status": test.status,
    }


def _locked(test: LoadTest) -> LoadTest:
    return LoadTest.objects.select_for_update().select_related("deployment__target__environment").get(pk=test.pk)


@atomic
def load_test_approve(*, test: LoadTest, actor) -> LoadTest:
    test = _locked(test)
    environment = test.deployment.target.environment
    if not policy.may_approve(actor, environment):
        raise NotAllowed(f"Approving a load test in {environment.name} needs the approver role there.")
    if test.requested_by_id == actor.pk:
        raise NotAllowed("Somebody else approves your load test.")
    if test.status != LoadTest.Status.AWAITING_APPROVAL:
        raise WrongState(f"This load test is {test.get_status_display().lower()}, not awaiting approval.")
    _check_deployment(test.deployment)
    test.status, test.approved_by, test.queued_at = LoadTest.Status.QUEUED, actor, timezone.now()
    test.save(update_fields=["status", "approved_by", "queued_at"])
    audit(action="loadtest.approved", actor=actor, obj=test, details={"requested_by": str(test.requested_by or "")})
    queue.run_load_test(test)
    return test


def _may_stop(test: LoadTest, actor) -> None:
    environment = test.deployment.target.environment
    if policy.can(actor, "deployments.add_deployment", environment) or policy.may_approve(actor, environment):
        return
    raise NotAllowed(f"Cancelling a load test in {environment.name} needs the deployer or approver role there.")


@atomic
def load_test_cancel(*, test: LoadTest, actor) -> LoadTest:
    """Waiting: cancelled at once. Running: the job stops within a fraction
    of a second and says so (status cancelled, the points so far kept)."""
    test = _locked(test)
    _may_stop(test, actor)
    if test.status in LoadTest.TERMINAL:
        raise WrongState(f"This load test has {test.get_status_display().lower()} already.")
    if test.status == LoadTest.Status.RUNNING:
        if not test.cancel_requested:
            test.cancel_requested = True
            test.save(update_fields=["cancel_requested"])
            audit(action="loadtest.cancel_requested", actor=actor, obj=test)
        return test
    test.status, test.ended_at, test.error = LoadTest.Status.CANCELLED, timezone.now(), f"cancelled by {actor}"
    test.save(update_fields=["status", "ended_at", "error"])
    audit(action="loadtest.cancelled", actor=actor, obj=test, details={"before": "queued or awaiting approval"})
    return test


def load_tests_settle(now=None) -> dict[str, int]:
    """The reconciler's part: a running test whose job stopped beating is
    failed (its points so far are kept); a queued one whose message was lost
    is sent again (the claim makes a second delivery harmless)."""
    figures = background_runs.settle(
        LoadTest,
        now=now or timezone.now(),
        resend=lambda test: queue.run_load_test(test, now=True),
        kept="the points so far are kept",
    )
    return {"load_tests_lost": figures["lost"], "load_tests_resent": figures["resent"]}
