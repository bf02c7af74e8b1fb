"""Targets: admins create and change them; anyone who may see one can have its
connection tested. Secrets are encrypted here and never leave in an event."""

from django.db import transaction
from django.utils import timezone

from deployments.audit import audit
from deployments.errors import DomainError
from deployments.models import Environment, Target
from deployments.services.permissions import require
from deployments.target_settings import clean_settings

_SECRET_KEYS = {"client_secret"}


def _clean_secrets(secrets) -> dict:
    if secrets in (None, ""):
        return {}
    if not isinstance(secrets, dict) or set(secrets) - _SECRET_KEYS:
        raise DomainError("secrets takes only client_secret.", path="secrets")
    return {key: value for key, value in secrets.items() if isinstance(value, str) and value}


def _public(target: Target) -> dict:
    return {
        "name": target.name,
        "kind": target.kind,
        "environment": target.environment.name,
        "auth_method": target.auth_method,
        "settings": target.settings,
        "has_secrets": target.has_secrets,
    }


@transaction.atomic
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
        raise DomainError(f"A target named {name} exists already.", path="name")
    auth_method = auth_method or (Target.AuthMethod.NONE if kind == Target.Kind.LOCAL else "")
    secrets = _clean_secrets(secrets)
    clean = clean_settings(kind, auth_method, settings or {}, secrets)
    target = Target(name=name, kind=kind, environment=environment, auth_method=auth_method, settings=clean)
    target.set_secrets(secrets)
    target.save()
    audit(action="target.created", actor=actor, obj=target, after=_public(target))
    return target


@transaction.atomic
def target_update(
    *, actor, target: Target, settings: dict | None = None, auth_method: str | None = None, secrets: dict | None = None
) -> Target:
    """Change settings and credentials; secrets left out keep their stored value."""
    require(actor, "deployments.change_target", "Changing a target", role="admin")
    locked = Target.objects.select_for_update().select_related("environment").get(pk=target.pk)
    before = _public(locked)
    new_secrets = _clean_secrets(secrets)
    merged_secrets = {**locked.secrets(), **new_secrets}
    auth_method = auth_method or locked.auth_method
    if auth_method != Target.AuthMethod.SERVICE_PRINCIPAL:
        merged_secrets = {}
    locked.settings = clean_settings(
        locked.kind, auth_method, settings if settings is not None else locked.settings, merged_secrets
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


@transaction.atomic
def target_test_request(*, actor, target: Target) -> None:
    require(actor, "deployments.view_target", "Testing a target", environment=target.environment, role="viewer")
    Target.objects.filter(pk=target.pk).update(
        last_test={"state": "running", "at": timezone.now().isoformat(), "by": actor.get_username()}
    )
    from workers.tasks import test_target

    target_id, username = target.pk, actor.get_username()
    transaction.on_commit(lambda: test_target.delay(target_id, username))


def target_test_run(*, target_id: int, requested_by: str) -> dict:
    """In a worker: ask the target's adapter; record and audit the answer."""
    from workers.targets import TargetError, adapter_for

    target = Target.objects.select_related("environment").get(pk=target_id)
    try:
        message = adapter_for(target).test_connection()
        result = {"state": "ok", "message": message}
    except TargetError as exc:
        result = {"state": "failed", "message": exc.message}
    except Exception as exc:  # an SDK's own exception types vary; show what it said
        result = {"state": "failed", "message": f"{type(exc).__name__}: {exc}"}
    result.update({"at": timezone.now().isoformat(), "by": requested_by})
    with transaction.atomic():
        Target.objects.filter(pk=target_id).update(last_test=result)
        audit(action="target.tested", actor_name=requested_by, obj=target, details=result)
    return result


@transaction.atomic
def target_adopt_request(*, actor, target: Target) -> None:
    require(actor, "deployments.add_deployment", "Adopting webservices", environment=target.environment)
    if target.kind != Target.Kind.AZUREML_V1_AKS:
        raise DomainError("Adoption lists SDK v1 AKS webservices; this target is not one.")
    from workers.tasks import adopt_services

    target_id, username = target.pk, actor.get_username()
    transaction.on_commit(lambda: adopt_services.delay(target_id, username))


def target_adopt_run(*, target_id: int, requested_by: str) -> list[str]:
    """In a worker: record the target's webservices that the dashboard does not
    know yet as adopted deployments; the reconciler then watches them."""
    from deployments.models import Deployment
    from workers.targets import adapter_for

    target = Target.objects.select_related("environment").get(pk=target_id)
    found = adapter_for(target).list_services()
    adopted = []
    for service in found:
        if service["managed_here"]:
            continue  # deployed from here: its deployment exists already
        with transaction.atomic():
            known = Deployment.objects.filter(target=target, name=service["name"]).exclude(
                status__in=Deployment.TERMINAL
            )
            if known.exists():
                continue
            deployment = Deployment.objects.create(
                name=service["name"][:63],
                repository=None,
                repository_name=("adopted: " + ", ".join(service["models"]))[:100],
                repository_digest="",
                target=target,
                spec_digest="",
                status=Deployment.Status.DEPLOYING,
                status_reason="adopted; waiting for the first observation",
                scoring_uri=service["scoring_uri"],
                adopted=True,
            )
            audit(action="deployment.adopted", actor_name=requested_by, obj=deployment, details=service)
            adopted.append(deployment.name)
    return adopted
