"""Config searches: asking for one, cancelling it, settling lost ones, and
recording the line's next revision from a recommended config. The run is
deployments/loadlab/search.py."""

from django.conf import settings
from django.utils import timezone

from deployments import policy, queue
from deployments.audit import audit
from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.integrity import atomic
from deployments.loadlab import configs
from deployments.models import ConfigSearch, Deployment, Environment, ModelRepository, Target
from deployments.services import background_runs
from deployments.services.load_tests import clean_concurrency
from deployments.services.permissions import require
from deployments.services.repositories import repository_revise_config

DEFAULT_CONCURRENCY = [1, 4, 8]
DEFAULT_BUDGET_MS = 100.0


def search_targets(user) -> list[Target]:
    """Targets whose kind takes scratch deployments (the local target, while
    it is on) where `user` may deploy and load tests are allowed."""
    return [
        target
        for target in Target.objects.select_related("environment")
        if target.descriptor.scratch_deployments
        and target.descriptor.available()
        and policy.can(user, "deployments.add_deployment", target.environment)
        and target.environment.load_tests == Environment.LoadTests.ALLOWED
    ]


def why_no_search() -> str:
    if not settings.LOCAL_TARGET_ENABLED:
        return (
            "A config search runs scratch deployments on the local target, which is off here "
            "(LOCAL_TARGET_ENABLED=false, the default with production settings)."
        )
    return ""


@atomic
def config_search_create(
    *,
    actor,
    repository: ModelRepository,
    model: str,
    target: Target,
    grid=None,
    concurrency=None,
    latency_budget_ms=None,
    window_seconds=None,
    max_trials=None,
    deployment: Deployment | None = None,
) -> ConfigSearch:
    reason = why_no_search()
    if reason:
        raise WrongState(reason)
    environment = target.environment
    require(actor, "deployments.add_deployment", "Searching configs", environment=environment)
    if not target.descriptor.scratch_deployments:
        raise DomainError("A config search runs on a local target (scratch deployments).", path="target")
    if environment.load_tests == Environment.LoadTests.OFF:
        raise NotAllowed(f"Load tests are off in {environment.name} (its policy says so).")
    if environment.load_tests == Environment.LoadTests.APPROVAL:
        raise NotAllowed(
            f"Load tests need approval in {environment.name}; a config search runs unattended, "
            "so run it on a local target of an environment where they are allowed."
        )
    if repository.status != ModelRepository.Status.VALID:
        raise WrongState(f"{repository.label} did not pass validation.")
    triton_model = repository.models.filter(name=model).first() if isinstance(model, str) else None
    if triton_model is None:
        names = ", ".join(repository.models.values_list("name", flat=True))
        raise DomainError(f"{repository.label} has no model {model!r} (it has {names}).", path="model")
    if triton_model.config_source != triton_model.ConfigSource.EXPLICIT:
        raise DomainError(
            f"{model} has no readable config.pbtxt to vary (Triton completes it at load time).", path="model"
        )
    grid = configs.clean_grid(grid, triton_model.max_batch_size)
    concurrency = clean_concurrency(DEFAULT_CONCURRENCY if concurrency is None else concurrency)
    budget = DEFAULT_BUDGET_MS if latency_budget_ms is None else latency_budget_ms
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0.1 <= budget <= 60_000:
        raise DomainError("latency_budget_ms is from 0.1 to 60000 (the p95 to stay within).", path="latency_budget_ms")
    window = 1.0 if window_seconds is None else window_seconds
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0.5 <= window <= 10:
        raise DomainError("window_seconds is from 0.5 to 10.", path="window_seconds")
    trials = 6 if max_trials is None else max_trials
    if isinstance(trials, bool) or not isinstance(trials, int) or not 3 <= trials <= 20:
        raise DomainError("max_trials is a whole number from 3 to 20.", path="max_trials")
    search = ConfigSearch.objects.create(
        repository=repository,
        model=model,
        target=target,
        deployment=deployment,
        grid=grid,
        concurrency=concurrency,
        latency_budget_ms=float(budget),
        window_seconds=float(window),
        max_trials=trials,
        requested_by=actor,
        queued_at=timezone.now(),
    )
    audit(
        action="configsearch.requested",
        actor=actor,
        obj=search,
        after={
            "repository": repository.label,
            "model": model,
            "target": target.name,
            "grid": grid,
            "concurrency": concurrency,
            "latency_budget_ms": search.latency_budget_ms,
        },
    )
    queue.run_config_search(search)
    return search


@atomic
def config_search_cancel(*, search: ConfigSearch, actor) -> ConfigSearch:
    search = ConfigSearch.objects.select_for_update().select_related("target__environment").get(pk=search.pk)
    require(actor, "deployments.add_deployment", "Cancelling a config search", environment=search.target.environment)
    if search.status in ConfigSearch.TERMINAL:
        raise WrongState(f"This search has {search.get_status_display().lower()} already.")
    if search.status == ConfigSearch.Status.RUNNING:
        if not search.cancel_requested:
            search.cancel_requested = True
            search.save(update_fields=["cancel_requested"])
            audit(action="configsearch.cancel_requested", actor=actor, obj=search)
        return search
    search.status, search.ended_at, search.error = (
        ConfigSearch.Status.CANCELLED,
        timezone.now(),
        f"cancelled by {actor}",
    )
    search.save(update_fields=["status", "ended_at", "error"])
    audit(action="configsearch.cancelled", actor=actor, obj=search)
    return search


def config_search_make_revision(*, search: ConfigSearch, actor, which: str) -> ModelRepository:
    """The line's next revision with the recommended config ("latency": the
    best under the budget, "throughput": the best overall). It deploys as
    any revision does: update a deployment to it, through approvals where
    the environment asks for them."""
    if search.status != ConfigSearch.Status.SUCCEEDED:
        raise WrongState("Only a finished search recommends a config.")
    best = (search.best or {}).get(which)
    if which not in ("latency", "throughput"):
        raise DomainError("which is latency or throughput.", path="which")
    if not best:
        raise WrongState(
            "No config stayed within the latency budget." if which == "latency" else "No config was measured."
        )
    result = search.results[best["index"]]
    why = f"best within p95 {search.latency_budget_ms:g} ms" if which == "latency" else "best throughput"
    header = (
        f"# Config search #{search.pk} on {search.repository.label}: {result['label']}\n"
        f"# ({why}: {best['throughput']:.1f} inferences/s at concurrency {best['concurrency']} on the local target)\n"
    )
    outcome = repository_revise_config(
        repository=search.repository,
        model=search.model,
        config_text=header + result["config_text"],
        source_name=f"config search #{search.pk}: {result['label']}",
        actor=actor,
    )
    _note_revision(search, outcome.repository, actor, which, outcome.created)
    return outcome.repository


@atomic
def _note_revision(search: ConfigSearch, revision: ModelRepository, actor, which: str, created: bool) -> None:
    ConfigSearch.objects.filter(pk=search.pk).update(created_revision=revision)
    audit(
        action="configsearch.revision_created",
        actor=actor,
        obj=search,
        details={"revision": revision.label, "which": which, "new": created},
    )


def config_searches_settle(now=None) -> dict[str, int]:
    """Lost workers: a running search that stopped beating is failed; its
    scratch deployments are then removed by scratch_cleanup on their host."""
    figures = background_runs.settle(
        ConfigSearch,
        now=now or timezone.now(),
        resend=lambda search: queue.run_config_search(search, now=True),
        kept="its scratch deployments are removed",
    )
    return {"searches_lost": figures["lost"], "searches_resent": figures["resent"]}
