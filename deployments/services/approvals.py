"""Four eyes on changes to environments that ask for them.

A change there (a deploy, a redeploy with a spec never approved, and where
the policy says so a delete or a traffic change) becomes a DeployRequest
bound to one spec digest. Other people approve or reject it; the requester
can only cancel it. The N-th approval releases its Operation, exactly once:
the request row is locked and leaves `pending` in the same transaction.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from deployments import policy
from deployments import spec as deployment_spec
from deployments.audit import audit
from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.integrity import atomic
from deployments.models import Approval, Deployment, DeployRequest, ModelRepository, Operation
from deployments.services import notifications
from deployments.services import rollout_requests as rollouts
from deployments.services.operation_start import start_operation

Status = DeployRequest.Status


def proposed_spec(deployment: Deployment, **overrides) -> dict:
    """What a deploy request would deploy: the repository and every spec field."""
    spec = {
        "repository_id": deployment.repository_id,
        "repository_name": deployment.repository_name,
        "repository_revision": deployment.repository_revision,
        "repository_digest": deployment.repository_digest,
        "target": deployment.target.name,
        **deployment_spec.spec_of(deployment),
        "spec_digest": deployment.spec_digest,
    }
    spec.update(overrides)
    return spec


def changed_spec_of(deployment: Deployment, repository, spec: dict, digest: str, **extra) -> dict:
    """proposed_spec for a change: another repository and spec fields, under their digest."""
    return proposed_spec(
        deployment,
        **spec,
        repository_id=repository.pk,
        repository_name=repository.name,
        repository_revision=repository.revision,
        repository_digest=repository.digest,
        spec_digest=digest,
        **extra,
    )


def was_released(deployment: Deployment, digest: str) -> bool:
    """Whether this exact spec was once let through (approved, or deployed
    where no approval was asked): deploying it again needs no new approval."""
    return deployment.operations.filter(kind=Operation.Kind.DEPLOY, spec_digest=digest).exists()


def request_change(*, deployment: Deployment, kind: str, actor, spec: dict | None = None, params=None) -> DeployRequest:
    """Record a change that waits for approval (inside the caller's
    transaction). A newer request replaces a pending one: approvals given
    to the old spec do not carry over."""
    environment = deployment.target.environment
    now = timezone.now()
    spec = spec or proposed_spec(deployment)
    if kind == DeployRequest.Kind.ROLLOUT:
        digest = params["plan_digest"]  # four eyes approve the whole plan, not only its spec
    else:
        digest = spec["spec_digest"] if kind == DeployRequest.Kind.DEPLOY else deployment.spec_digest
    pending = DeployRequest.objects.select_for_update().filter(deployment=deployment, status=Status.PENDING)
    same = pending.filter(kind=kind, spec_digest=digest, params=params or {}, expires_at__gt=now).first()
    if same is not None:
        # Asking again for the same thing must not void the approvals it has.
        raise WrongState(f"This change is already waiting for approval (request #{same.pk}).")
    for old in pending:
        old.status, old.decided_at = Status.SUPERSEDED, now
        old.save(update_fields=["status", "decided_at"])
        audit(action="deployment.request_superseded", actor=actor, obj=deployment, details={"request": old.pk})
        rollouts.close_for_request(old, "its request was superseded by a newer one")
    released = deployment.operations.filter(kind=Operation.Kind.DEPLOY).exists()
    request = DeployRequest.objects.create(
        deployment=deployment,
        environment=environment,
        kind=kind,
        spec_digest=digest,
        spec=spec if kind in (DeployRequest.Kind.DEPLOY, DeployRequest.Kind.ROLLOUT) else {},
        current=proposed_spec(deployment) if released else {},
        params=params or {},
        approvals_required=environment.approvals_required,
        requested_by=actor,
        requested_by_name=actor.get_username(),
        requested_at=now,
        expires_at=now + timedelta(hours=environment.approval_lifetime_hours),
    )
    audit(
        action="deployment.approval_requested",
        actor=actor,
        obj=deployment,
        details={
            "request": request.pk,
            "kind": kind,
            "environment": environment.name,
            "spec_digest": request.spec_digest,
            "approvals_required": request.approvals_required,
            "params": request.params,
        },
    )
    notifications.approval_requested(request)
    return request


def _locked(request: DeployRequest) -> DeployRequest:
    # The deployment first, then the request: the order redeploy, delete and
    # traffic changes take them in, so the two can never deadlock.
    _lock_deployment(request.deployment_id)
    locked = (
        DeployRequest.objects.select_for_update(of=("self",))
        .select_related("environment", "deployment__target__environment")
        .get(pk=request.pk)
    )
    if locked.status != Status.PENDING:
        raise WrongState(f"This request is {locked.get_status_display().lower()}; nothing is waiting for a decision.")
    if locked.is_expired:
        raise WrongState("This request has expired; ask again for a fresh one.", code="expired")
    return locked


def _check_decider(request: DeployRequest, actor, verb: str) -> None:
    if actor.pk is not None and actor.pk == request.requested_by_id:
        raise NotAllowed(f"You asked for this change; someone else must {verb} it (four eyes).")
    if not policy.may_approve(actor, request.environment):
        group = request.environment.approver_group
        extra = f" and membership of {group.name}" if group else ""
        raise NotAllowed(f"Deciding on {request.environment.name} requests needs the approver role{extra}.")
    if request.approvals.filter(approver=actor).exists():
        raise WrongState("You have already decided on this request.")


def _record(request: DeployRequest, actor, decision: str, comment: str) -> Approval:
    # requester_id is copied for the database's own four-eyes constraint.
    return Approval.objects.create(
        request=request,
        approver=actor,
        approver_name=actor.get_username(),
        requester_id=request.requested_by_id,
        decision=decision,
        comment=(comment or "").strip(),
        spec_digest=request.spec_digest,
    )


@atomic
def deployment_approve(*, deploy_request: DeployRequest, actor, comment: str = "") -> DeployRequest:
    request = _locked(deploy_request)
    _check_decider(request, actor, "approve")
    _record(request, actor, Approval.Decision.APPROVE, comment)
    given = request.approvals.filter(decision=Approval.Decision.APPROVE).count()
    operation = _release(request) if given >= request.approvals_required else None
    audit(
        action="deployment.approved",
        actor=actor,
        obj=request.deployment,
        details={
            "request": request.pk,
            "kind": request.kind,
            "spec_digest": request.spec_digest,
            "comment": (comment or "").strip(),
            "approvals": given,
            "approvals_required": request.approvals_required,
            "released_operation": operation.pk if operation else None,
        },
    )
    notifications.request_decided(request, actor=actor, approved=True, released=operation is not None)
    return request


def _release(request: DeployRequest) -> Operation:
    """The last approval landed: apply the change and queue its operation."""

    deployment = Deployment.objects.select_for_update().select_related("target").get(pk=request.deployment_id)
    if deployment.operations.filter(status__in=Operation.ACTIVE).exists():
        raise WrongState("An operation is under way for this deployment; approve once it has finished.")
    if deployment.status == Deployment.Status.DELETED:
        raise WrongState("This deployment was deleted meanwhile.")
    if request.kind == DeployRequest.Kind.ROLLOUT:
        operation = rollouts.released_by_approval(request)
        request.status, request.decided_at, request.operation = Status.APPROVED, timezone.now(), operation
        request.save(update_fields=["status", "decided_at", "operation"])
        return operation
    if request.kind == DeployRequest.Kind.DEPLOY:
        repository = ModelRepository.objects.filter(pk=request.spec.get("repository_id")).first()
        if repository is None or repository.digest != request.spec["repository_digest"]:
            raise WrongState("The repository this request deploys was deleted meanwhile; ask again.")
        deployment.repository = repository
        deployment.repository_name = repository.name
        deployment.repository_revision = repository.revision
        deployment.repository_digest = repository.digest
        for field in deployment_spec.SPEC_FIELDS:
            setattr(deployment, field, request.spec[field])
        deployment.spec_digest = request.spec_digest
        deployment.desired_state = Deployment.Desired.PRESENT
        deployment.status = Deployment.Status.QUEUED
        kind = Operation.Kind.DEPLOY
    elif request.kind == DeployRequest.Kind.DELETE:
        deployment.desired_state = Deployment.Desired.ABSENT
        deployment.status = Deployment.Status.DELETING
        kind = Operation.Kind.DELETE
    else:
        kind = Operation.Kind.TRAFFIC
    deployment.status_reason = ""
    deployment.save()
    operation = start_operation(
        deployment=deployment,
        kind=kind,
        actor=request.requested_by,
        reason=f"approved request #{request.pk}",
        params=request.params,
    )
    request.status, request.decided_at, request.operation = Status.APPROVED, timezone.now(), operation
    request.save(update_fields=["status", "decided_at", "operation"])
    return operation


@atomic
def deployment_reject(*, deploy_request: DeployRequest, actor, comment: str) -> DeployRequest:
    comment = (comment or "").strip()
    if not comment:
        raise DomainError("Say why in a comment: the requester reads it.", path="comment")
    request = _locked(deploy_request)
    _check_decider(request, actor, "reject")
    _record(request, actor, Approval.Decision.REJECT, comment)
    request.status, request.decided_at = Status.REJECTED, timezone.now()
    request.save(update_fields=["status", "decided_at"])
    _close_unreleased(request, Deployment.Status.REJECTED, f"Rejected by {actor.get_username()}: {comment}")
    audit(
        action="deployment.rejected",
        actor=actor,
        obj=request.deployment,
        details={"request": request.pk, "kind": request.kind, "spec_digest": request.spec_digest, "comment": comment},
    )
    notifications.request_decided(request, actor=actor, approved=False, released=False)
    return request


def _close_unreleased(request: DeployRequest, status: str, reason: str) -> None:
    """A deployment that exists only as this request ends with it; so does a rollout waiting on it."""
    rollouts.close_for_request(request, reason)
    Deployment.objects.filter(pk=request.deployment_id, status=Deployment.Status.PENDING_APPROVAL).update(
        status=status, status_reason=reason, updated_at=timezone.now()
    )


@atomic
def deployment_request_cancel(*, deploy_request: DeployRequest, actor) -> DeployRequest:
    request = _locked(deploy_request)
    if actor.pk != request.requested_by_id and not actor.is_superuser:
        raise NotAllowed("Only the requester (or an administrator) can cancel a request.")
    request.status, request.decided_at = Status.CANCELLED, timezone.now()
    request.save(update_fields=["status", "decided_at"])
    _close_unreleased(request, Deployment.Status.DELETED, "The request was cancelled before anything was deployed.")
    audit(
        action="deployment.request_cancelled",
        actor=actor,
        obj=request.deployment,
        details={"request": request.pk, "kind": request.kind},
    )
    return request


def cancel_pending(*, deployment: Deployment, actor, why: str) -> None:
    """Inside a caller's transaction: a pending request that a direct change
    made pointless (e.g. the deployment is being deleted) is cancelled."""
    for request in DeployRequest.objects.select_for_update().filter(deployment=deployment, status=Status.PENDING):
        request.status, request.decided_at = Status.CANCELLED, timezone.now()
        request.save(update_fields=["status", "decided_at"])
        audit(
            action="deployment.request_cancelled",
            actor=actor,
            obj=deployment,
            details={"request": request.pk, "kind": request.kind, "why": why},
        )
        rollouts.close_for_request(request, why)


def _lock_deployment(deployment_id: int) -> None:
    list(Deployment.objects.select_for_update().filter(pk=deployment_id).values_list("pk"))


def requests_expire(now=None) -> int:
    """Pending requests past their lifetime lapse, each with its audit event."""
    now = now or timezone.now()
    expired = 0
    lapsed = DeployRequest.objects.filter(status=Status.PENDING, expires_at__lte=now)
    for request_id, deployment_id in lapsed.values_list("pk", "deployment_id"):
        with transaction.atomic():
            _lock_deployment(deployment_id)
            request = (
                DeployRequest.objects.select_for_update()
                .filter(pk=request_id, status=Status.PENDING)
                .select_related("deployment")
                .first()
            )
            if request is None:
                continue
            request.status, request.decided_at = Status.EXPIRED, now
            request.save(update_fields=["status", "decided_at"])
            _close_unreleased(request, Deployment.Status.REJECTED, "The request expired before enough approvals.")
            audit(action="deployment.request_expired", obj=request.deployment, details={"request": request.pk})
            notifications.request_expired(request)
            expired += 1
    return expired
