"""Asking for deployments: create, redeploy, delete. Each is one transaction
that checks, saves, writes its audit event and enqueues its operation after
commit. The work itself happens in services/operations.py, in a worker."""

import ast
import re

from deployments import crypto
from deployments import spec as deployment_spec
from deployments.audit import audit
from deployments.errors import Conflict, DomainError, WrongState
from deployments.integrity import atomic
from deployments.models import Deployment, ModelRepository, Operation, Rollout, Target
from deployments.selectors.deployments import delete_needs_approval
from deployments.services import approvals
from deployments.services.operation_start import start_operation
from deployments.services.permissions import require
from workers.targets import registry
from workers.targets.base import Capability
from workers.targets.descriptor import RESOURCE_LIMITS

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PIP_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~ ]*$")


def _validate_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise DomainError(
            "Names are 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit "
            "(Azure ML endpoint rules).",
            path="name",
        )
    return name


def _validate_entry_script(mode: str, script: str) -> str:
    if mode != Deployment.Mode.ENTRY_SCRIPT:
        return ""
    if not script.strip():
        raise DomainError("Entry-script mode needs the score.py text, with init() and run().", path="entry_script")
    try:
        tree = ast.parse(script)
    except SyntaxError as exc:
        raise DomainError(f"score.py line {exc.lineno}: {exc.msg}", path="entry_script") from None
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    missing = [name for name in ("init", "run") if name not in defined]
    if missing:
        raise DomainError(f"score.py must define {' and '.join(missing)}() at top level.", path="entry_script")
    return script


def _validate_packages(packages) -> list[str]:
    if packages in (None, ""):
        return []
    if isinstance(packages, str):
        packages = [line.strip() for line in packages.splitlines() if line.strip()]
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise DomainError("pip_packages is a list of requirement strings.", path="pip_packages")
    for package in packages:
        if not _PIP_REQUIREMENT.match(package):
            raise DomainError(f"'{package}' is not a pip requirement (e.g. numpy==1.26.4).", path="pip_packages")
    return packages


def _validate_resources(resources, target: Target) -> dict:
    resources = {**target.settings.get("default_resources", {}), **(resources or {})}
    clean = {}
    for key, value in resources.items():
        if key not in RESOURCE_LIMITS:
            raise DomainError(
                f"Unknown resource '{key}' (use gpu_cores, cpu_cores, memory_gb).", path=f"resources.{key}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value > RESOURCE_LIMITS[key]:
            raise DomainError(f"{key} must be a number from 0 to {RESOURCE_LIMITS[key]}.", path=f"resources.{key}")
        clean[key] = value
    return clean


def _validate_worker_count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise DomainError("worker_count (WORKER_COUNT) must be a whole number from 1 to 32.", path="worker_count")
    return value


def _clean_spec(*, target: Target, mode, entry_script, pip_packages, worker_count, resources, auth_enabled) -> dict:
    if mode not in Deployment.Mode.values:
        raise DomainError("mode is 'triton' or 'entry_script'.", path="mode")
    if mode == Deployment.Mode.ENTRY_SCRIPT:
        registry.require(target, Capability.ENTRY_SCRIPT)
    if not isinstance(auth_enabled, bool):
        raise DomainError("auth_enabled is true or false.", path="auth_enabled")
    return {
        "mode": mode,
        "entry_script": _validate_entry_script(mode, entry_script or ""),
        "pip_packages": _validate_packages(pip_packages),
        "worker_count": _validate_worker_count(worker_count),
        "resources": _validate_resources(resources, target),
        "auth_enabled": auth_enabled,
    }


def _snapshot(deployment: Deployment) -> dict:
    return {
        "repository": deployment.repository_name,
        "repository_revision": deployment.repository_revision,
        "repository_digest": deployment.repository_digest,
        "target": deployment.target.name,
        "spec_digest": deployment.spec_digest,
        **deployment_spec.spec_of(deployment),
    }


@atomic
def deployment_create(
    *,
    name: str,
    repository: ModelRepository,
    target: Target,
    actor,
    mode: str = Deployment.Mode.TRITON,
    entry_script: str = "",
    pip_packages=None,
    worker_count: int = 1,
    resources: dict | None = None,
    auth_enabled: bool = True,
    promoted_from: dict | None = None,
) -> Deployment:
    """`promoted_from` names the deployment a promotion copies (for the
    approval page and the audit)."""
    require(actor, "deployments.add_deployment", "Deploying", environment=target.environment)
    name = _validate_name(name)
    if target.descriptor.name_rule is not None:
        target.descriptor.name_rule.check(name)
    if repository.status != ModelRepository.Status.VALID:
        raise DomainError(
            f"Repository “{repository.name}” is invalid ({len(repository.errors)} errors); fix them and upload again.",
            path="repository",
        )
    spec = _clean_spec(
        target=target,
        mode=mode,
        entry_script=entry_script,
        pip_packages=pip_packages,
        worker_count=worker_count,
        resources=resources,
        auth_enabled=auth_enabled,
    )
    if Deployment.objects.filter(target=target, name=name).exclude(status__in=Deployment.TERMINAL).exists():
        raise Conflict(f"Target {target.name} already has a deployment named {name}.", path="name")
    deployment = Deployment.objects.create(
        name=name,
        repository=repository,
        repository_name=repository.name,
        repository_revision=repository.revision,
        repository_digest=repository.digest,
        target=target,
        spec_digest=deployment_spec.spec_digest(repository_digest=repository.digest, target_id=target.pk, **spec),
        created_by=actor,
        **spec,
    )
    audit(
        action="deployment.requested",
        actor=actor,
        obj=deployment,
        after=_snapshot(deployment),
        details={"promoted_from": promoted_from} if promoted_from else None,
    )
    if target.environment.needs_approval("deploy"):
        deployment.status = Deployment.Status.PENDING_APPROVAL
        deployment.save(update_fields=["status", "updated_at"])
        spec = approvals.proposed_spec(deployment, promoted_from=promoted_from) if promoted_from else None
        approvals.request_change(deployment=deployment, kind="deploy", actor=actor, spec=spec)
    else:
        start_operation(deployment=deployment, kind=Operation.Kind.DEPLOY, actor=actor)
    return deployment


def _lock(deployment: Deployment) -> Deployment:
    locked = Deployment.objects.select_for_update().select_related("target__environment").get(pk=deployment.pk)
    if locked.status == Deployment.Status.DELETED:
        raise WrongState("This deployment is deleted.")
    if locked.operations.filter(status__in=Operation.ACTIVE).exists():
        raise WrongState("An operation is already under way for this deployment; wait for it to finish.")
    rollout = locked.rollouts.filter(status__in=Rollout.ACTIVE).first()
    if rollout is not None:
        raise WrongState(
            f"Rollout #{rollout.pk} is {rollout.get_status_display().lower()} on this deployment: "
            "let it finish, or abort it, first.",
            code="rollout_active",
        )
    return locked


def _check_revision(current: Deployment, repository: ModelRepository, confirm_other_line: bool) -> None:
    """A deployment moves to a valid revision of its own line; another line's
    only when the caller says so (clients calling this endpoint get other models)."""
    if repository.status != ModelRepository.Status.VALID:
        raise DomainError(
            f"{repository.label} is invalid ({len(repository.errors)} errors): it cannot be deployed.",
            path="repository",
        )
    line_id = current.repository.line_id if current.repository else None
    if repository.line_id != line_id and not confirm_other_line:
        raise DomainError(
            f"{repository.label} is of the line “{repository.name}”, and {current.name} runs “"
            f"{current.repository_name}”: send confirm_other_line true to switch lines.",
            code="other_line",
            path="confirm_other_line",
        )


def changed_spec(
    locked: Deployment, changes: dict | None, repository: ModelRepository | None, confirm_other_line: bool
) -> tuple[ModelRepository, dict, str]:
    """The repository, spec fields and digest a change would run: the
    deployment's own with `changes` applied, on `repository` if given."""
    changes = changes or {}
    unknown = set(changes) - set(deployment_spec.SPEC_FIELDS)
    if unknown:
        raise DomainError(
            f"These cannot be changed by a redeploy: {', '.join(sorted(unknown))}.", path=sorted(unknown)[0]
        )
    if repository is None or repository.pk == locked.repository_id:
        repository = locked.repository
    else:
        _check_revision(locked, repository, confirm_other_line)
    spec = _clean_spec(target=locked.target, **{**deployment_spec.spec_of(locked), **changes})
    digest = deployment_spec.spec_digest(repository_digest=repository.digest, target_id=locked.target_id, **spec)
    return repository, spec, digest


@atomic
def deployment_redeploy(
    *,
    deployment: Deployment,
    actor,
    changes: dict | None = None,
    repository: ModelRepository | None = None,
    confirm_other_line: bool = False,
    promoted_from: dict | None = None,
) -> Deployment:
    """The same spec again (a no-op at the target when it still runs), or a
    changed one: other spec fields, or another revision (`repository`).
    Where the environment asks for approvals, a spec that was never let
    through becomes a request and the deployment keeps running what it
    runs until the request is approved."""
    require(actor, "deployments.add_deployment", "Redeploying", environment=deployment.target.environment)
    locked = _lock(deployment)
    if locked.adopted or locked.repository_id is None:
        raise WrongState(
            "This deployment has no recorded repository to deploy again; create a deployment from a repository instead."
        )
    if locked.status == Deployment.Status.REJECTED:
        # The name was free while this one stood rejected; it may be taken again.
        taken = (
            Deployment.objects.filter(target=locked.target, name=locked.name)
            .exclude(pk=locked.pk)
            .exclude(status__in=Deployment.TERMINAL)
            .first()
        )
        if taken is not None:
            raise Conflict(
                f"{locked.name} on {locked.target.name} is now deployment #{taken.pk}: redeploy that one, or"
                " create this spec under another name.",
                path="name",
            )
    before = _snapshot(locked)
    repository, spec, digest = changed_spec(locked, changes, repository, confirm_other_line)
    if digest != locked.spec_digest and locked.target.environment.require_rollouts:
        raise WrongState(
            f"{locked.target.environment.name} takes spec changes only as rollouts: start a rollout instead.",
            code="rollout_required",
            path="spec",
        )
    needs_approval = locked.target.environment.needs_approval("deploy") and not approvals.was_released(locked, digest)
    if not needs_approval:
        _apply_spec(locked, repository, spec, digest, status=Deployment.Status.QUEUED)
    elif locked.status in (Deployment.Status.PENDING_APPROVAL, *Deployment.TERMINAL):
        # Nothing runs: the row itself shows the spec being asked for.
        _apply_spec(locked, repository, spec, digest, status=Deployment.Status.PENDING_APPROVAL)
    moved = {
        "repository": repository.name,
        "repository_revision": repository.revision,
        "repository_digest": repository.digest,
    }
    details = {"spec_changed": before["spec_digest"] != digest, "needs_approval": needs_approval}
    if promoted_from:
        details["promoted_from"] = promoted_from
    audit(
        action="deployment.redeploy_requested",
        actor=actor,
        obj=locked,
        before=before,
        after={**before, **moved, **spec, "spec_digest": digest},
        details=details,
    )
    if needs_approval:
        spec = approvals.changed_spec_of(
            locked, repository, spec, digest, **({"promoted_from": promoted_from} if promoted_from else {})
        )
        approvals.request_change(deployment=locked, kind="deploy", actor=actor, spec=spec)
        return locked
    approvals.cancel_pending(deployment=locked, actor=actor, why="an approved spec was deployed instead")
    start_operation(deployment=locked, kind=Operation.Kind.DEPLOY, actor=actor, reason="redeploy")
    return locked


def _apply_spec(deployment: Deployment, repository: ModelRepository, spec: dict, digest: str, *, status: str) -> None:
    deployment.repository = repository
    deployment.repository_name = repository.name
    deployment.repository_revision = repository.revision
    deployment.repository_digest = repository.digest
    for field, value in spec.items():
        setattr(deployment, field, value)
    deployment.spec_digest = digest
    deployment.desired_state = Deployment.Desired.PRESENT
    deployment.status = status
    deployment.status_reason = ""
    deployment.save()


@atomic
def deployment_set_traffic(*, deployment: Deployment, actor, traffic) -> Deployment:
    """Shift an endpoint's traffic between its deployments (safe rollout, rollback)."""
    require(actor, "deployments.add_deployment", "Changing traffic", environment=deployment.target.environment)
    registry.require(deployment.target, Capability.TRAFFIC)
    locked = _lock(deployment)
    if not isinstance(traffic, dict) or not traffic:
        raise DomainError("traffic maps Azure deployment names to percentages.", path="traffic")
    known = set((locked.observed or {}).get("traffic", {}))
    for name, share in traffic.items():
        if known and name not in known:
            raise DomainError(
                f"The endpoint has no deployment {name} (it has {', '.join(sorted(known))}).", path=f"traffic.{name}"
            )
        if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100:
            raise DomainError(f"{name}: a whole percentage from 0 to 100.", path=f"traffic.{name}")
    if sum(traffic.values()) != 100:
        raise DomainError(f"The shares add up to {sum(traffic.values())}%, not 100%.", path="traffic")
    before = (locked.observed or {}).get("traffic", {})
    audit(
        action="deployment.traffic_requested",
        actor=actor,
        obj=locked,
        before={"traffic": before},
        after={"traffic": traffic},
    )
    if locked.target.environment.needs_approval("traffic"):
        approvals.request_change(deployment=locked, kind="traffic", actor=actor, params={"traffic": traffic})
        return locked
    start_operation(
        deployment=locked,
        kind=Operation.Kind.TRAFFIC,
        actor=actor,
        reason="traffic change",
        params={"traffic": traffic},
    )
    return locked


@atomic
def deployment_delete(*, deployment: Deployment, actor) -> Deployment:
    require(actor, "deployments.delete_deployment", "Deleting", environment=deployment.target.environment)
    locked = _lock(deployment)
    before = _snapshot(locked)
    if delete_needs_approval(locked):
        audit(
            action="deployment.delete_requested",
            actor=actor,
            obj=locked,
            before=before,
            details={"needs_approval": True},
        )
        approvals.request_change(deployment=locked, kind="delete", actor=actor)
        return locked
    approvals.cancel_pending(deployment=locked, actor=actor, why="the deployment is being deleted")
    locked.desired_state = Deployment.Desired.ABSENT
    locked.status = Deployment.Status.DELETING
    locked.save(update_fields=["desired_state", "status", "updated_at"])
    audit(action="deployment.delete_requested", actor=actor, obj=locked, before=before)
    start_operation(deployment=locked, kind=Operation.Kind.DELETE, actor=actor)
    return locked


# --- endpoint keys and addresses ---------------------------------------------------

KEY_NAMES = ("primary", "secondary")


def _keyed(deployment: Deployment, actor, doing: str) -> None:
    require(actor, "deployments.add_deployment", doing, environment=deployment.target.environment)
    registry.require(deployment.target, Capability.KEYS)
    if not deployment.auth_enabled:
        raise WrongState("This endpoint is open (auth_enabled is off): it checks no key.")


@atomic
def deployment_reveal_keys(*, deployment: Deployment, actor) -> list[str]:
    """The endpoint's keys as last read from the target, primary first; who
    looked is audited (a key is the endpoint's whole protection)."""
    _keyed(deployment, actor, "Showing keys")
    keys = [crypto.decrypt(value) for value in (deployment.key_encrypted, deployment.secondary_key_encrypted) if value]
    audit(action="deployment.keys_shown", actor=actor, obj=deployment, details={"keys": len(keys)})
    return keys


@atomic
def deployment_regenerate_key(*, deployment: Deployment, actor, key) -> Deployment:
    """A new primary or secondary key at the target; the other keeps working,
    so clients move to it first. Not held for approval: it is also the answer
    to a leaked key."""
    _keyed(deployment, actor, "Regenerating keys")
    if key not in KEY_NAMES:
        raise DomainError("key is primary or secondary.", path="key")
    locked = _lock(deployment)
    audit(action="deployment.key_regeneration_requested", actor=actor, obj=locked, details={"key": key})
    start_operation(
        deployment=locked, kind=Operation.Kind.KEY, actor=actor, reason=f"{key} key regeneration", params={"key": key}
    )
    return locked


@atomic
def deployment_acknowledge_address(*, deployment: Deployment, actor) -> Deployment:
    """The page stops saying that the scoring address changed."""
    require(actor, "deployments.add_deployment", "Acknowledging", environment=deployment.target.environment)
    locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if locked.scoring_uri_before:
        audit(
            action="deployment.address_change_acknowledged",
            actor=actor,
            obj=locked,
            before={"scoring_uri": locked.scoring_uri_before},
            after={"scoring_uri": locked.scoring_uri},
        )
        locked.scoring_uri_before = ""
        locked.save(update_fields=["scoring_uri_before", "updated_at"])
    return locked
