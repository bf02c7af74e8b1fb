"""A config search's run, in its Celery task on the local target's host.

For each config of the grid: a copy of the one model with its config.pbtxt
rewritten, served by a scratch deployment of the local target (its own
Triton behind its own endpoint, as any local deployment), swept like a load
test, then removed. A scratch deployment's id is written down (`scratch`)
before it starts and struck off once it is gone, so whatever kills the job,
the reconciler removes what is left (scratch_cleanup).

Scratch deployments have no Deployment row (they are not the team's
deployments: no list, health or audit shows them); the local target knows
them by ids from SCRATCH_IDS up, far above any deployment's.
"""

import hashlib
import logging
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from deployments.audit import audit
from deployments.errors import DomainError
from deployments.loadlab import configs, endpoint
from deployments.loadlab import generator as load
from deployments.loadlab.job import Sweep
from deployments.models import ConfigSearch, LoadTest
from deployments.services import background_runs
from workers.targets import registry
from workers.targets.base import DeploymentRef, DeploySpec, TargetError

log = logging.getLogger(__name__)

SCRATCH_IDS = 2_000_000_000
PER_SEARCH = 100
# Requests one config's sweep may send.
MAX_REQUESTS_PER_CONFIG = 200_000


def scratch_id(search_id: int, index: int) -> int:
    return SCRATCH_IDS + search_id * PER_SEARCH + index


def scratch_folder(search_id: int, index: int | None = None) -> Path:
    folder = Path(settings.STORAGE_ROOT) / "scratch" / f"config-search-{search_id}"
    return folder if index is None else folder / str(index)


def write_repository(search: ConfigSearch, index: int, config_text: str) -> Path:
    """The searched model alone, its config.pbtxt replaced (inside STORAGE_ROOT/scratch)."""
    source = search.repository.path / search.model
    folder = scratch_folder(search.pk, index)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder / search.model, symlinks=False)
    (folder / search.model / "config.pbtxt").write_text(config_text)
    return folder


def _ref(local_id: int) -> DeploymentRef:
    return DeploymentRef(id=local_id, name=f"scratch-{local_id}")


def remove_scratch(search_id: int, local_id: int, target) -> None:
    """Stop the scratch deployment, remove its folders, and strike it off."""
    from workers.targets.local.adapter import workdir

    registry.adapter_for(target).delete(_ref(local_id), lambda message: None)
    shutil.rmtree(workdir(local_id), ignore_errors=True)
    with transaction.atomic():
        search = ConfigSearch.objects.select_for_update().get(pk=search_id)
        search.scratch = [i for i in search.scratch if i != local_id]
        search.save(update_fields=["scratch"])
    if not search.scratch:
        shutil.rmtree(scratch_folder(search_id), ignore_errors=True)


def _beat(search_id: int, **fields) -> None:
    ConfigSearch.objects.filter(pk=search_id).update(heartbeat_at=timezone.now(), **fields)


def _cancelled(search_id: int) -> bool:
    return ConfigSearch.objects.filter(pk=search_id, cancel_requested=True).exists()


def _claim(search_id: int) -> bool:
    return background_runs.claim(
        ConfigSearch, search_id, action="configsearch.started", details=lambda search: {"configs": len(search.grid)}
    )


def best_of(results: list[dict], budget_ms: float) -> dict:
    """The best config under the latency budget (highest throughput among
    points with p95 within it and no errors) and the best for throughput
    (highest throughput at any latency), each with the point that shows it."""

    def candidates(within_budget: bool):
        for index, result in enumerate(results):
            for point in result.get("points", []):
                if point["errors"] or not point["throughput"]:
                    continue
                if within_budget and point["p95_ms"] > budget_ms:
                    continue
                yield point["throughput"], index, point["concurrency"]

    best = {}
    for name, within in (("latency", True), ("throughput", False)):
        found = max(candidates(within), default=None)
        best[name] = {"index": found[1], "concurrency": found[2], "throughput": found[0]} if found else None
    return best


def _sweep_one(search: ConfigSearch, index: int, config: dict, original: str, deadline: float) -> dict:
    """Start the config's scratch deployment, sweep it, remove it; its result."""
    local_id = scratch_id(search.pk, index)
    config_text = configs.rewrite(original, config)
    result = {
        "config": config,
        "label": configs.describe(config),
        "config_text": config_text,
        "points": [],
        "error": "",
    }
    with transaction.atomic():
        locked = ConfigSearch.objects.select_for_update().get(pk=search.pk)
        locked.scratch = sorted({*locked.scratch, local_id})
        locked.progress = {"index": index, "label": result["label"], "step": "starting its Triton"}
        locked.heartbeat_at = timezone.now()
        locked.save(update_fields=["scratch", "progress", "heartbeat_at"])
    try:
        folder = write_repository(search, index, config_text)
        digest = hashlib.sha256(f"{search.repository.digest}:{config_text}".encode()).hexdigest()
        spec = DeploySpec(
            deployment_id=local_id,
            name=f"scratch-{local_id}",
            repository_path=folder,
            repository_digest=digest,
            spec_digest=digest,
            mode="triton",
            entry_script="",
            pip_packages=[],
            worker_count=1,
            resources={},
            auth_enabled=False,
            idempotency_key=f"config-search-{search.pk}-{index}",
        )
        deployed = registry.adapter_for(search.target).deploy(spec, lambda message: _beat(search.pk))
        _beat(search.pk, progress={"index": index, "label": result["label"], "step": "sweeping"})
        target = endpoint.triton_target(
            deployed.scoring_uri.rstrip("/"), {}, search.model, "", LoadTest.Inputs.RANDOM, []
        )
        bounds = load.Bounds(max_requests=MAX_REQUESTS_PER_CONFIG, deadline=deadline)
        method = load.Method(window_seconds=search.window_seconds, max_trials=search.max_trials)
        result["error"] = Sweep(target, method, search.concurrency, bounds).run(
            lambda concurrency, trial, window: _beat(
                search.pk,
                progress={
                    "index": index,
                    "label": result["label"],
                    "step": f"{concurrency} concurrent, window {trial}",
                },
            ),
            lambda point: result["points"].append(point.as_json()),
            lambda: _cancelled(search.pk),
            lambda: _beat(search.pk),
        )
    except (TargetError, DomainError) as exc:
        result["error"] = getattr(exc, "message", str(exc))
    finally:
        remove_scratch(search.pk, local_id, search.target)
    return result


def run_search(search_id: int) -> None:
    if not _claim(search_id):
        return
    search = ConfigSearch.objects.select_related("target__environment", "repository").get(pk=search_id)
    deadline = time.monotonic() + settings.CONFIG_SEARCH_MAX_SECONDS
    results: list[dict] = []
    status, error = ConfigSearch.Status.SUCCEEDED, ""
    try:
        original = search.repository.models.get(name=search.model).config_text
        for index, config in enumerate(search.grid):
            if _cancelled(search_id):
                status, error = ConfigSearch.Status.CANCELLED, "cancelled; the configs measured so far are kept"
                break
            if time.monotonic() >= deadline:
                error = f"stopped at the search's time bound ({settings.CONFIG_SEARCH_MAX_SECONDS} s)"
                break
            results.append(_sweep_one(search, index, config, original, deadline))
            ConfigSearch.objects.filter(pk=search_id).update(results=results, heartbeat_at=timezone.now())
        else:
            if _cancelled(search_id):
                status, error = ConfigSearch.Status.CANCELLED, "cancelled; the configs measured so far are kept"
    except Exception as exc:
        log.exception("config search %s failed", search_id)
        status, error = ConfigSearch.Status.FAILED, f"{type(exc).__name__}: {exc}"
    finally:
        scratch_cleanup(search_id=search_id)
    if status == ConfigSearch.Status.SUCCEEDED and not any(r["points"] for r in results):
        status, error = ConfigSearch.Status.FAILED, "; ".join(r["error"] for r in results if r["error"])[:2000]
    _end(search_id, status, error, results)


def _end(search_id: int, status: str, error: str, results: list[dict]) -> None:
    with transaction.atomic():
        search = ConfigSearch.objects.select_for_update().select_related("target__environment").get(pk=search_id)
        if search.status != ConfigSearch.Status.RUNNING:
            return
        search.results = results
        search.best = best_of(results, search.latency_budget_ms)
        search.status, search.error, search.ended_at = status, error, timezone.now()
        search.progress = {}
        search.save(update_fields=["results", "best", "status", "error", "ended_at", "progress"])
        audit(
            action=f"configsearch.{status}",
            obj=search,
            details={
                "configs": len(results),
                "best_under_budget": _label(results, search.best.get("latency")),
                "best_throughput": _label(results, search.best.get("throughput")),
                **({"reason": error} if error else {}),
            },
        )


def _label(results: list[dict], best: dict | None) -> str | None:
    return results[best["index"]]["label"] if best else None


def scratch_cleanup(*, search_id: int | None = None, host: str | None = None) -> int:
    """Remove scratch deployments left by searches that ended (or lost their
    worker), on this host; how many were removed. With `search_id`, that
    search's, whatever its state (its own job, finishing)."""
    searches = ConfigSearch.objects.exclude(scratch=[]).select_related("target")
    if search_id is not None:
        searches = searches.filter(pk=search_id)
    else:
        searches = searches.exclude(status__in=ConfigSearch.ACTIVE)
    removed = 0
    for search in searches:
        if search_id is None and registry.target_host(search.target) != (host or settings.WORKER_HOST):
            continue
        for local_id in list(search.scratch):
            try:
                remove_scratch(search.pk, local_id, search.target)
                removed += 1
            except TargetError as exc:
                log.warning("config search %s: scratch %s not removed yet: %s", search.pk, local_id, exc.message)
    return removed


def run(search_id: int) -> None:
    close_old_connections()
    try:
        run_search(search_id)
    finally:
        connection.close()
