"""Targets: admins create and change them; admins of a target's environment
test its connection and adopt its webservices, one run of each at a time
(each starts work on a worker). Secrets are encrypted here and never leave
in an event."""

import logging

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from deployments import queue
from deployments.audit import audit
from deployments.errors import Conflict, DomainError
from deployments.integrity import atomic
from deployments.models import Deployment, Environment, Target
from deployments.services.permissions import require
from workers.targets import registry
from workers.targets.base import Capability, TargetError

log = logging.getLogger(__name__)

# How long an adoption run holds its target; the run ends the lease itself,
# this bounds it when a worker dies mid-run.
ADOPTION_LEASE_SECONDS = 15 * 60


def _public(target: Target) -> dict:
    return {
        "name": target.name,
        "kind": target.kind,
        "environment": target.environment.name,
        "auth_method": target.auth_method,
        "settings": target.settings,
        "has_secrets": target.has_secrets,
    }


@atomic
def target_create(
    *,
    actor,
    name: str,
    kind: str,
    environment: Environment,
    auth_method: str = "",
    settings: dict | None = None,
    secrets: dict | None = None,
) -> Target:
    require(actor, "deployments.add_target", "Creating a target", role="admin")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise DomainError("Give the target a name of at most 100 characters.", path="name")
    if Target.objects.filter(name=name).exists():
        raise Conflict(f"A target named {name} exists already.", path="name")
    descriptor = registry.offered_descriptor(kind)
    auth_method = auth_method or descriptor.auth_methods[0]
    secrets = descriptor.clean_secrets(secrets)
    clean = descriptor.clean_settings(auth_method, settings or {}, secrets)
    target = Target(name=name, kind=kind, environment=environment, auth_method=auth_method, settings=clean)
    target.set_secrets(secrets)
    target.save()
    audit(action="target.created", actor=actor, obj=target, after=_public(target))
    return target


@atomic
def target_update(
    *, actor, target: Target, settings: dict | None = None, auth_method: str | None = None, secrets: dict | None = None
) -> Target:
    """Change settings and credentials; secrets left out keep their stored value."""
    require(actor, "deployments.change_target", "Changing a target", role="admin")
    locked = Target.objects.select_for_update().select_related("environment").get(pk=target.pk)
    before = _public(locked)
    descriptor = registry.descriptor(locked.kind)
    new_secrets = descriptor.clean_secrets(secrets)
    merged_secrets = {**locked.secrets(), **new_secrets}
    auth_method = auth_method or locked.auth_method
    if auth_method != Target.AuthMethod.SERVICE_PRINCIPAL:
        merged_secrets = {}
    locked.settings = descriptor.clean_settings(
        auth_method, settings if settings is not None else locked.settings, merged_secrets
    )
    locked.auth_method = auth_method
    locked.set_secrets(merged_secrets)
    locked.last_test = {}
    locked.save()
    after = _public(locked)
    audit(
        action="target.changed",
        actor=actor,
        obj=locked,
        before=before,
        after=after,
        details={"secret_changed": bool(new_secrets)},
    )
    return locked


@atomic
def target_test_request(*, actor, target: Target) -> None:
    require(actor, "deployments.change_target", "Testing a target", environment=target.environment, role="admin")
    locked = Target.objects.select_for_update().get(pk=target.pk)
    if locked.test_state == "running":
        raise Conflict(
            f"A test of {locked.name} is already running (asked by {locked.last_test.get('by')}); its answer"
            " appears here when it ends."
        )
    locked.last_test = {"state": "running", "at": timezone.now().isoformat(), "by": actor.get_username()}
    locked.save(update_fields=["last_test"])
    audit(action="target.test_requested", actor=actor, obj=locked)
    queue.test_target(locked, actor.get_username())


def target_test_run(*, target_id: int, requested_by: str) -> dict:
    """In a worker: ask the target's adapter; record and audit the answer."""
    target = Target.objects.select_related("environment").get(pk=target_id)
    try:
        message = registry.adapter_for(target).test_connection()
        result = {"state": "ok", "message": message}
    except TargetError as exc:
        result = {"state": "failed", "message": exc.message}
    except Exception as exc:  # a bug of ours: logged as one, and the page still gets an answer
        log.exception("testing target %s crashed", target_id)
        result = {"state": "failed", "message": f"internal error: {type(exc).__name__}: {exc}"}
    result.update({"at": timezone.now().isoformat(), "by": requested_by})
    with transaction.atomic():
        Target.objects.filter(pk=target_id).update(last_test=result)
        audit(action="target.tested", actor_name=requested_by, obj=target, details=result)
    return result


@atomic
def target_adopt_request(*, actor, target: Target) -> None:
    require(actor, "deployments.change_target", "Adopting webservices", environment=target.environment, role="admin")
    registry.require(target, Capability.ADOPT)
    if not cache.add(_adoption_key(target.pk), actor.get_username(), ADOPTION_LEASE_SECONDS):
        raise Conflict(f"Adoption on {target.name} is already running; its deployments appear when it ends.")
    try:
        audit(action="target.adopt_requested", actor=actor, obj=target)
        queue.adopt_services(target, actor.get_username())
    except BaseException:
        cache.delete(_adoption_key(target.pk))
        raise


def _adoption_key(target_id: int) -> str:
    return f"target-adoption:{target_id}"


def target_adopt_run(*, target_id: int, requested_by: str) -> list[str]:
    """In a worker: record the target's webservices that the dashboard does not
    know yet as adopted deployments; the reconciler then watches them."""
    try:
        return _adopt(target_id, requested_by)
    finally:
        cache.delete(_adoption_key(target_id))


def _adopt(target_id: int, requested_by: str) -> list[str]:
    target = Target.objects.select_related("environment").get(pk=target_id)
    found = registry.adapter_for(target).list_services()
    adopted = []
    for service in found:
        if service.managed_here:
            continue  # deployed from here: its deployment exists already
        with transaction.atomic():
            known = Deployment.objects.filter(target=target, name=service.name).exclude(status__in=Deployment.TERMINAL)
            if known.exists():
                continue
            deployment = Deployment.objects.create(
                name=service.name[:63],
                repository=None,
                repository_name=("adopted: " + ", ".join(service.models))[:100],
                repository_digest="",
                target=target,
                spec_digest="",
                status=Deployment.Status.DEPLOYING,
                status_reason="adopted; waiting for the first observation",
                scoring_uri=service.scoring_uri,
                adopted=True,
            )
            audit(action="deployment.adopted", actor_name=requested_by, obj=deployment, details=service.as_dict())
            adopted.append(deployment.name)
    return adopted
