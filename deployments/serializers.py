"""JSON shapes of the API, shared by every endpoint that returns them."""

from deployments.models import ModelRepository


def repository_json(repository: ModelRepository) -> dict:
    return {
        "id": repository.pk,
        "name": repository.name,
        "line": repository.line_id,
        "revision": repository.revision,
        "digest": repository.digest,
        "status": repository.status,
        "source": repository.source,
        "source_name": repository.source_name,
        "file_count": repository.file_count,
        "total_bytes": repository.total_bytes,
        "uploaded_by": repository.uploaded_by.get_username() if repository.uploaded_by else None,
        "uploaded_at": repository.uploaded_at.isoformat(),
        "findings": repository.findings,
        "warnings": [f["message"] for f in repository.warnings],
        "models": [
            {
                "name": model.name,
                "backend": model.backend,
                "platform": model.platform,
                "max_batch_size": model.max_batch_size,
                "versions": model.versions,
                "inputs": model.inputs,
                "outputs": model.outputs,
                "config": model.config_source,
                "warnings": model.warnings,
            }
            for model in repository.models.all()
        ],
    }


def line_json(line) -> dict:
    """A line from selectors.lines.line_detail, its revisions newest first."""
    return {
        "id": line.pk,
        "name": line.name,
        "revisions": [
            {
                "id": revision.pk,
                "revision": revision.revision,
                "digest": revision.digest,
                "status": revision.status,
                "uploaded_by": revision.uploaded_by.get_username() if revision.uploaded_by else None,
                "uploaded_at": revision.uploaded_at.isoformat(),
                "runs_in": [
                    {
                        "deployment": d.pk,
                        "name": d.name,
                        "environment": d.target.environment.name,
                        "target": d.target.name,
                        "status": d.status,
                    }
                    for d in revision.running
                ],
                "registered_as": [
                    {"workspace": r.workspace, "model": r.label, "asset_type": r.asset_type}
                    for r in revision.azure_models
                ],
            }
            for revision in line.revision_rows
        ],
    }


def operation_json(operation) -> dict:
    return {
        "id": operation.pk,
        "kind": operation.kind,
        "status": operation.status,
        "reason": operation.reason,
        "attempts": operation.attempts,
        "waits": operation.waits,
        "started_at": operation.started_at.isoformat() if operation.started_at else None,
        "finished_at": operation.finished_at.isoformat() if operation.finished_at else None,
        "error": operation.error,
        "steps": operation.steps,
    }


def request_json(request) -> dict:
    approvals = list(request.approvals.all())
    return {
        "id": request.pk,
        "kind": request.kind,
        "status": "expired" if request.is_expired else request.status,
        "spec_digest": request.spec_digest,
        "requested_by": request.requested_by_name,
        "requested_at": request.requested_at.isoformat(),
        "expires_at": request.expires_at.isoformat(),
        "approvals_required": request.approvals_required,
        "approvals": sum(a.decision == "approve" for a in approvals),
        "decisions": [
            {"by": a.approver_name, "decision": a.decision, "comment": a.comment, "at": a.at.isoformat()}
            for a in approvals
        ],
        "params": request.params,
    }


def approval_json(deployment) -> dict:
    """The deployment's approval state: its environment's policy and the
    latest request (pending, or how the last one ended)."""
    environment = deployment.target.environment
    latest = getattr(deployment, "latest_requests", None)
    if latest is None:
        latest = list(deployment.requests.prefetch_related("approvals").order_by("-id")[:1])
    body = {"required": environment.approvals_required > 0, "approvals_required": environment.approvals_required}
    if latest:
        body["status"] = "expired" if latest[0].is_expired else latest[0].status
        body["request"] = request_json(latest[0])
    else:
        body["status"] = "not_required" if not environment.approvals_required else "none"
    return body


def deployment_json(deployment, *, detail: bool = False) -> dict:
    observed = deployment.observed or {}
    body = {
        "id": deployment.pk,
        "name": deployment.name,
        "target": deployment.target.name,
        "environment": deployment.target.environment.name,
        "repository": {
            "id": deployment.repository_id,
            "name": deployment.repository_name,
            "revision": deployment.repository_revision,
            "digest": deployment.repository_digest,
        },
        "mode": deployment.mode,
        "status": deployment.status,
        "status_reason": deployment.status_reason,
        "spec_digest": deployment.spec_digest,
        "scoring_uri": deployment.scoring_uri,
        "restarts": deployment.restarts,
        "updated_at": deployment.updated_at.isoformat(),
        "approval": approval_json(deployment),
    }
    if detail:
        body.update(
            {
                "spec": {
                    "entry_script": deployment.entry_script,
                    "pip_packages": deployment.pip_packages,
                    "worker_count": deployment.worker_count,
                    "resources": deployment.resources,
                    "auth_enabled": deployment.auth_enabled,
                },
                "health": {
                    "live": observed.get("live"),
                    "ready": observed.get("ready"),
                    # The poller touches checked_at every round; `observed` only changes with the verdict.
                    "checked_at": deployment.checked_at.isoformat()
                    if deployment.checked_at
                    else observed.get("checked_at"),
                    "models": observed.get("models", []),
                    "reason": deployment.status_reason,
                },
                "operations": [operation_json(op) for op in deployment.operations.all()],
            }
        )
    return body


def audit_event_json(event) -> dict:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(),
        "actor": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "environment": event.environment,
        "details": event.details,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "source_ip": event.source_ip,
        "hash": event.hash,
    }


def audit_event_detail_json(detail, link) -> dict:
    """One event with what it changed and its neighbours; `link(seq)` is the
    address of another event."""
    event = detail.event
    return {
        **audit_event_json(event),
        "prev_hash": event.prev_hash,
        "key_id": event.key_id,
        "changes": [
            {"path": change.path, "change": change.kind, "before": change.before, "after": change.after}
            for change in detail.changed
        ],
        "previous": link(detail.previous_seq) if detail.previous_seq is not None else None,
        "next": link(detail.next_seq) if detail.next_seq is not None else None,
        "same_request": [other.seq for other in detail.same_request],
    }


def rollout_json(rollout) -> dict:
    """A rollout as the API and its webhook consumers see it: the plan, where
    it is, and each step with its figures and the gates' verdict."""
    spec = rollout.spec or {}
    pending = rollout.deployment.requests.filter(kind="rollout", params__rollout=rollout.pk).order_by("-id").first()
    return {
        "id": rollout.pk,
        "deployment": {"id": rollout.deployment_id, "name": rollout.deployment.name},
        "status": rollout.status,
        "phase": rollout.phase,
        "reason": rollout.reason,
        "step": rollout.step_index + 1 if rollout.step_index >= 0 else None,
        "plan_digest": rollout.plan_digest,
        "released_digest": rollout.released_digest or None,
        "approval_request": pending.pk if pending else None,
        "baseline": {"name": rollout.baseline_name, "spec_digest": rollout.baseline_digest},
        "candidate": {
            "name": rollout.candidate_name,
            "spec_digest": rollout.candidate_digest,
            "repository": {
                "id": spec.get("repository_id"),
                "name": spec.get("repository_name", ""),
                "revision": spec.get("repository_revision"),
                "digest": spec.get("repository_digest", ""),
            },
            "worker_count": spec.get("worker_count"),
            "resources": spec.get("resources", {}),
        },
        "gates": rollout.gates,
        "golden_requests": [g["name"] for g in rollout.golden_requests],
        "on_rollback": rollout.on_rollback,
        "created_by": rollout.created_by.get_username() if rollout.created_by else None,
        "created_at": rollout.created_at.isoformat(),
        "finished_at": rollout.finished_at.isoformat() if rollout.finished_at else None,
        "steps": [
            {
                "index": step.index + 1,
                "traffic": step.traffic,
                "bake_seconds": step.bake_seconds,
                "status": step.status,
                "started_at": step.started_at.isoformat() if step.started_at else None,
                "ended_at": step.ended_at.isoformat() if step.ended_at else None,
                "figures": step.figures,
                "verdict": step.verdict,
            }
            for step in rollout.steps.all()
        ],
    }


def migration_json(migration) -> dict:
    def side(deployment) -> dict:
        return {
            "id": deployment.pk,
            "name": deployment.name,
            "target": deployment.target.name,
            "status": deployment.status,
            "scoring_uri": deployment.scoring_uri,
        }

    return {
        "id": migration.pk,
        "status": migration.status,
        "reason": migration.reason,
        "source": side(migration.source),
        "destination": side(migration.destination),
        "golden_requests": [g["name"] for g in migration.golden_requests],
        "comparison": migration.comparison or None,
        "forced_because": migration.forced_because,
        "created_by": migration.created_by.get_username() if migration.created_by else None,
        "created_at": migration.created_at.isoformat(),
        "finished_at": migration.finished_at.isoformat() if migration.finished_at else None,
    }


def load_test_json(test) -> dict:
    """A load test as the API answers it: its parameters, where it is, and its points."""
    return {
        "id": test.pk,
        "deployment": {"id": test.deployment_id, "name": test.deployment.name},
        "model": test.model,
        "version": test.version or None,
        "label": test.label,
        "status": test.status,
        "error": test.error,
        "concurrency": test.concurrency,
        "window_seconds": test.window_seconds,
        "window_requests": test.window_requests or None,
        "stability": test.stability,
        "max_trials": test.max_trials,
        "max_requests": test.max_requests,
        "max_seconds": test.max_seconds,
        "inputs": test.inputs,
        "saved_request": test.saved_name or None,
        "endpoint_deployment": test.endpoint_deployment or None,
        "spec_digest": test.spec_digest or None,
        "progress": test.progress.get("current") if test.progress else None,
        "requests_sent": test.requests_sent,
        "points": [_point_json(point) for point in test.points],
        "requested_by": test.requested_by.get_username() if test.requested_by else None,
        "approved_by": test.approved_by.get_username() if test.approved_by else None,
        "created_at": test.created_at.isoformat(),
        "started_at": test.started_at.isoformat() if test.started_at else None,
        "ended_at": test.ended_at.isoformat() if test.ended_at else None,
    }


def _point_json(point: dict) -> dict:
    return {
        "concurrency": point["concurrency"],
        "throughput": point["throughput"],
        "mean_ms": point["mean_ms"],
        "p50_ms": point["p50_ms"],
        "p90_ms": point["p90_ms"],
        "p95_ms": point["p95_ms"],
        "p99_ms": point["p99_ms"],
        "stable": point["stable"],
        "trials": point["trials"],
        "requests": point["requests"],
        "errors": point["errors"],
        "error_samples": point.get("error_samples", []),
        "stopped": point.get("stopped") or None,
        "server": point.get("server") or {},
    }


def config_search_json(search) -> dict:
    best = search.best or {}
    return {
        "id": search.pk,
        "repository": {"id": search.repository_id, "label": search.repository.label},
        "model": search.model,
        "target": search.target.name,
        "deployment": {"id": search.deployment_id, "name": search.deployment.name} if search.deployment else None,
        "status": search.status,
        "error": search.error,
        "grid": search.grid,
        "concurrency": search.concurrency,
        "latency_budget_ms": search.latency_budget_ms,
        "progress": search.progress or None,
        "results": [
            {
                "config": result["config"],
                "label": result["label"],
                "error": result["error"] or None,
                "points": [_point_json(point) for point in result["points"]],
            }
            for result in search.results
        ],
        "best_within_budget": best.get("latency"),
        "best_throughput": best.get("throughput"),
        "created_revision": search.created_revision.label if search.created_revision else None,
        "created_at": search.created_at.isoformat(),
        "ended_at": search.ended_at.isoformat() if search.ended_at else None,
    }
