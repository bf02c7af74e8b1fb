"""The chaos matrix: deploy, redeploy (a changed spec), traffic change (v2
only: v1 webservices have no split) and delete, on SDK v1 and v2, through
the real SDKs against the fakes, under each fault the fakes reproduce and
with the worker killed after each recorded step of the operation.

Read a row as: on this SDK, this operation, under this fault, ends with the
deployment in this status, its reason containing this text ("-": no reason),
and the operation ...
- succeeds: in one attempt (the SDK's own retries may absorb the fault);
- retried: the engine tried again (a new attempt) and succeeded;
- re-driven: its worker was killed; the reconciler re-drove it and the next
  attempt finished the work, creating nothing twice;
- fails: the target refused for good (not retried), or Azure reported the
  provisioning failed;
- needs attention: the engine stopped trying. "Needs attention" is an
  operation status (`needs_attention` in the API); the deployment is then
  failed and its reason starts "needs attention:".

`kill@1..N` stands for N rows, one per step the operation records on that
SDK (the "none" row checks N is every step there is). Rows marked `full` run
in bench/chaos_matrix.sh, not in CI: v1 under throttling and 503, where
azureml-core's own retry backoff costs 8 to 33 s a row (it ignores a 429's
Retry-After), v1's redeploy and delete kill points (v1 is kept for
existing webservices; its deploy kill points run in CI), and faults whose
retry path another operation of the same SDK already takes in CI (a 500, a
reset connection, an expired token, a long operation on a redeploy,
traffic change or delete: the engine's retry is one code path).

For every row: exactly one model registration per repository digest, one
Azure webservice or deployment per spec (counted at the fake), the final
status and reason as written, no status flip-flop (each audited status
change leaves the status the previous one reached), every operation ended,
and the audit chain verifies.
"""

import itertools
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.audit.verification import verify_chain
from deployments.health.poller import health_round
from deployments.models import AuditEvent, Deployment, Operation
from deployments.services import attempts
from deployments.services.deployments import (
    deployment_create,
    deployment_delete,
    deployment_redeploy,
    deployment_set_traffic,
)
from deployments.services.operations import operation_execute, reconcile
from tests.azure import azure_target, data_plane, fake_v1, fake_v2  # noqa: F401 - fixtures
from workers.targets.azureml_v2.adapter import azure_deployment_name

MATRIX = """
sdk op        fault              tier outcome          status     reason
v2  deploy    none               ci   succeeds         healthy    -
v2  deploy    throttle           ci   succeeds         healthy    -
v2  deploy    http_500           ci   succeeds         healthy    -
v2  deploy    http_503           ci   succeeds         healthy    -
v2  deploy    reset              ci   succeeds         healthy    -
v2  deploy    conflict           ci   retried          healthy    -
v2  deploy    conflict_persists  ci   needs_attention  failed     needs attention: still failing after 3 attempts
v2  deploy    slow_upload        ci   succeeds         healthy    -
v2  deploy    long_operations    ci   succeeds         healthy    -
v2  deploy    image_pull         ci   fails            failed     ImagePullLoopBackOff
v2  deploy    model_download     ci   fails            failed     Unable to download user model
v2  deploy    liveness_probe     ci   fails            failed     ResourceNotReady
v2  deploy    token_expiry       ci   succeeds         healthy    -
v2  deploy    unhealthy_after    ci   succeeds         unhealthy  HTTP 424
v2  deploy    kill@1..6          ci   re-driven        healthy    -
v2  redeploy  none               ci   succeeds         degraded   at 0% of the traffic
v2  redeploy  throttle           ci   succeeds         degraded   at 0% of the traffic
v2  redeploy  http_500           full succeeds         degraded   at 0% of the traffic
v2  redeploy  http_503           ci   succeeds         degraded   at 0% of the traffic
v2  redeploy  reset              full succeeds         degraded   at 0% of the traffic
v2  redeploy  conflict           ci   retried          degraded   at 0% of the traffic
v2  redeploy  long_operations    ci   succeeds         degraded   at 0% of the traffic
v2  redeploy  image_pull         ci   fails            failed     ImagePullLoopBackOff
v2  redeploy  model_download     ci   fails            failed     Unable to download user model
v2  redeploy  liveness_probe     ci   fails            failed     ResourceNotReady
v2  redeploy  token_expiry       full succeeds         degraded   at 0% of the traffic
v2  redeploy  unhealthy_after    ci   succeeds         degraded   (0% of the traffic) is unhealthy
v2  redeploy  kill@1..4          ci   re-driven        degraded   at 0% of the traffic
v2  traffic   none               ci   succeeds         healthy    -
v2  traffic   throttle           ci   succeeds         healthy    -
v2  traffic   http_500           full succeeds         healthy    -
v2  traffic   http_503           ci   succeeds         healthy    -
v2  traffic   reset              full succeeds         healthy    -
v2  traffic   conflict           ci   retried          healthy    -
v2  traffic   long_operations    full succeeds         healthy    -
v2  traffic   token_expiry       full succeeds         healthy    -
v2  traffic   unhealthy_after    ci   succeeds         unhealthy  HTTP 424
v2  traffic   kill@1..2          ci   re-driven        healthy    -
v2  delete    none               ci   succeeds         deleted    -
v2  delete    throttle           ci   succeeds         deleted    -
v2  delete    http_500           full succeeds         deleted    -
v2  delete    http_503           ci   succeeds         deleted    -
v2  delete    reset              full succeeds         deleted    -
v2  delete    conflict           ci   retried          deleted    -
v2  delete    long_operations    full succeeds         deleted    -
v2  delete    token_expiry       full succeeds         deleted    -
v2  delete    kill@1..3          ci   re-driven        deleted    -
v1  deploy    none               ci   succeeds         healthy    -
v1  deploy    throttle           full succeeds         healthy    -
v1  deploy    http_500           ci   succeeds         healthy    -
v1  deploy    http_503           full succeeds         healthy    -
v1  deploy    reset              ci   succeeds         healthy    -
v1  deploy    conflict           ci   succeeds         healthy    -
v1  deploy    conflict_persists  ci   needs_attention  failed     needs attention: still failing after 3 attempts
v1  deploy    slow_upload        ci   succeeds         healthy    -
v1  deploy    long_operations    ci   succeeds         healthy    -
v1  deploy    image_pull         ci   succeeds         failed     Back-off pulling image
v1  deploy    model_download     ci   succeeds         failed     KubernetesDeploymentFailed
v1  deploy    liveness_probe     ci   succeeds         failed     Liveness probe failed: HTTP probe failed
v1  deploy    token_expiry       ci   succeeds         healthy    -
v1  deploy    unhealthy_after    ci   succeeds         unhealthy  Unhealthy
v1  deploy    kill@1..5          ci   re-driven        healthy    -
v1  redeploy  none               ci   succeeds         healthy    -
v1  redeploy  throttle           full succeeds         healthy    -
v1  redeploy  http_500           full succeeds         healthy    -
v1  redeploy  http_503           full succeeds         healthy    -
v1  redeploy  reset              full succeeds         healthy    -
v1  redeploy  conflict           full succeeds         healthy    -
v1  redeploy  long_operations    full succeeds         healthy    -
v1  redeploy  image_pull         ci   succeeds         failed     Back-off pulling image
v1  redeploy  model_download     full succeeds         failed     KubernetesDeploymentFailed
v1  redeploy  liveness_probe     full succeeds         failed     Liveness probe failed: HTTP probe failed
v1  redeploy  token_expiry       full succeeds         healthy    -
v1  redeploy  unhealthy_after    ci   succeeds         unhealthy  Unhealthy
v1  redeploy  kill@1..4          full re-driven        healthy    -
v1  delete    none               ci   succeeds         deleted    -
v1  delete    throttle           full succeeds         deleted    -
v1  delete    http_500           full succeeds         deleted    -
v1  delete    http_503           full succeeds         deleted    -
v1  delete    reset              full succeeds         deleted    -
v1  delete    conflict           ci   retried          deleted    -
v1  delete    long_operations    ci   succeeds         deleted    -
v1  delete    token_expiry       full succeeds         deleted    -
v1  delete    kill@1..3          full re-driven        deleted    -
"""


@dataclass(frozen=True)
class Cell:
    sdk: str
    op: str
    fault: str
    tier: str
    outcome: str
    status: str
    reason: str
    kill_at: int = 0
    kill_points: int = 0  # on the "none" row: how many steps the operation records

    @property
    def id(self) -> str:
        return f"{self.sdk}-{self.op}-{self.fault}"


def _cells() -> list[Cell]:
    rows = [line.split(maxsplit=6) for line in MATRIX.strip().splitlines()[1:]]
    kills = {(sdk, op): int(fault.split("..")[1]) for sdk, op, fault, *_ in rows if fault.startswith("kill@")}
    cells = []
    for sdk, op, fault, tier, outcome, status, reason in rows:
        reason = "" if reason == "-" else reason
        if fault.startswith("kill@"):
            first, last = (int(n) for n in fault.removeprefix("kill@").split(".."))
            cells += [
                Cell(sdk, op, f"kill@{n}", tier, outcome, status, reason, kill_at=n) for n in range(first, last + 1)
            ]
        else:
            points = kills.get((sdk, op), 0) if fault == "none" else 0
            cells.append(Cell(sdk, op, fault, tier, outcome, status, reason, kill_points=points))
    return cells


CELLS = [cell for cell in _cells() if cell.tier == "ci" or os.environ.get("CHAOS") == "full"]
pytestmark = [pytest.mark.azure, pytest.mark.django_db]


class WorkerKilled(BaseException):
    """An abrupt end no handler of the engine catches, right after a step was
    recorded: the worker process gone, as far as the database can tell."""


@pytest.fixture(scope="module")
def shared_triton(tmp_path_factory):
    """One real Triton serving the add_sub example for every deployment of the module."""
    from tests.archives import EXAMPLES
    from tests.fakes.azureml.data_plane import TritonDataPlane

    plane = TritonDataPlane(tmp_path_factory.mktemp("chaos-data-plane"))
    yield plane.shared(EXAMPLES / "add_sub")
    plane.stop_all()


@pytest.fixture
def fake(request, shared_triton, settings):
    cell: Cell = request.param
    settings.OPERATION_STALE_AFTER = 60
    settings.OPERATION_RETRY_BASE = 1
    settings.AZUREML_V2_DEPLOY_WAIT = 60
    if cell.sdk == "v2":
        azure = request.getfixturevalue("fake_v2")
        azure.on_deploy = lambda endpoint, deployment, model_dir: shared_triton
        azure.on_delete = lambda *names: None  # the shared Triton stays up
    else:
        azure = request.getfixturevalue("fake_v1")
        azure.on_deploy = lambda name, model_dir: shared_triton
        azure.on_delete = lambda *names: None  # the shared Triton stays up
    return azure


def _target(admin, cell: Cell, azure):
    if cell.sdk == "v2":
        return azure_target(
            admin, "azureml_v2_kubernetes", azure, instance_type="defaultinstancetype", compute_name="aks-gpu"
        )
    return azure_target(admin, "azureml_v1_aks", azure, compute_name="aks-gpu")


# --- faults, as each SDK meets them --------------------------------------------------------------

# The call each fault hits: the one that submits the operation's change.
_SUBMIT = {
    ("v2", "deploy"): ("PUT", "/deployments/"),
    ("v2", "redeploy"): ("PUT", "/deployments/"),
    ("v2", "traffic"): ("PUT", "/onlineEndpoints/"),
    ("v2", "delete"): ("DELETE", "/onlineEndpoints/"),
    ("v1", "deploy"): ("POST", "/services"),
    ("v1", "redeploy"): ("POST", "/services"),
    ("v1", "delete"): ("DELETE", "/services/"),
}


def _switch_on(cell: Cell, azure, deployment) -> None:
    method, path = _SUBMIT[(cell.sdk, cell.op)]
    busy = "Another operation is in progress on this resource; retry later."
    match cell.fault:
        case "throttle":
            azure.throttle(method, path, times=1, retry_after=1)
        case "http_500":
            azure.fail_next_request(method, path, 500, "InternalServerError", "Something went wrong.")
        case "http_503":
            azure.fail_next_request(method, path, 503, "ServiceUnavailable", "The service is unavailable.")
        case "reset":
            azure.reset_next_request(method, path)
        case "conflict":
            azure.fail_next_request(method, path, 409, "Conflict", busy)
        case "conflict_persists":
            azure.fail_next_request(method, path, 409, "Conflict", busy, times=50)
        case "slow_upload":
            azure.slow_upload(0.3)
        case "long_operations":
            azure.long_operations(2, retry_after=1)
        case "image_pull" | "model_download" | "liveness_probe":
            azure.fail_provisioning(cell.fault, after_seconds=0.5)
        case "token_expiry":
            # Tokens live 3 s (Azure checks expiry to the second, so 1 s could
            # expire in flight) while the operation runs longer: the
            # credential must fetch new ones on the way.
            azure.expire_tokens(3)
            azure.long_operations(2, retry_after=1)


def _after_success(cell: Cell, azure, deployment) -> None:
    if cell.fault != "unhealthy_after":
        return
    if cell.sdk == "v1":
        azure.turn_unhealthy(deployment.name)
    else:
        azure.turn_unhealthy(deployment.name, azure_deployment_name(deployment.spec_digest))


# --- driving the engine ---------------------------------------------------------------------------


def _run_once(operation: Operation, kill_at: int) -> bool:
    """Run the operation as a worker would; True if it was killed."""
    if not kill_at:
        operation_execute(operation_id=operation.pk, task_id=f"chaos-{operation.pk}")
        return False
    real_step, recorded = attempts.Attempt.step, []

    def step(self, message):
        real_step(self, message)
        if message is not None:
            recorded.append(message)
            if len(recorded) == kill_at:
                raise WorkerKilled(message)

    attempts.Attempt.step = step
    try:
        operation_execute(operation_id=operation.pk, task_id=f"chaos-{operation.pk}")
    except WorkerKilled:
        return True
    finally:
        attempts.Attempt.step = real_step
    pytest.fail(f"the operation recorded {len(recorded)} steps; no step {kill_at} to kill at")


def drive(deployment: Deployment, kill_at: int = 0) -> bool:
    """Run the deployment's operation to its end, retries and re-drives
    included (a delayed retry runs at once: the fakes' faults count calls,
    not time). True if a worker was killed on the way."""
    killed = False
    for _ in range(20):
        operation = deployment.operations.filter(status__in=Operation.ACTIVE).first()
        if operation is None:
            return killed
        if operation.status == Operation.Status.RUNNING:
            # Its worker is gone: once its heartbeat is stale the reconciler re-drives it.
            Operation.objects.filter(pk=operation.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
            assert reconcile()["reaped"] == 1
            continue
        killed = _run_once(operation, 0 if killed else kill_at) or killed
    pytest.fail("the operation never ended")


def settle(deployment: Deployment) -> None:
    """Reconcile and probe until the status stops moving (Azure provisions asynchronously)."""
    for _ in range(30):
        reconcile()  # the control plane first, then probes that know its routes
        health_round()
        deployment.refresh_from_db()
        if deployment.status != Deployment.Status.DEPLOYING:
            return
        time.sleep(0.5)


def prepare(cell: Cell, admin, repository, azure) -> tuple[Deployment, int]:
    """The deployment as the operation under test finds it; the specs created so far."""
    deployment = deployment_create(
        name=f"chaos-{cell.op}", repository=repository, target=_target(admin, cell, azure), actor=admin
    )
    if cell.op == "deploy":
        return deployment, 0
    drive(deployment)
    settle(deployment)
    if cell.op == "redeploy":
        return deployment, 1
    if cell.op == "traffic":
        deployment_redeploy(deployment=deployment, actor=admin, changes={"resources": {"cpu_cores": 2}})
        drive(deployment)
        settle(deployment)
        return deployment, 2
    return deployment, 1


def start(cell: Cell, admin, deployment: Deployment) -> int:
    """Ask for the operation under test; the specs it creates."""
    if cell.op == "deploy":
        return 1
    if cell.op == "redeploy":
        deployment_redeploy(deployment=deployment, actor=admin, changes={"resources": {"cpu_cores": 2}})
        return 1
    if cell.op == "traffic":
        deployment_set_traffic(
            deployment=deployment, actor=admin, traffic={azure_deployment_name(deployment.spec_digest): 100}
        )
        return 0
    deployment_delete(deployment=deployment, actor=admin)
    return 0


# --- what every row must show ---------------------------------------------------------------------


def registrations_by_digest(azure) -> dict[str, int]:
    from workers.targets.azure.common import TAG_DIGEST

    if hasattr(azure, "model_versions"):  # v2
        tags = [model["properties"]["tags"] for model in azure._models.values()]
    else:
        tags = [model.tags for model in azure.models.values()]
    counts: dict[str, int] = {}
    for tag in tags:
        counts[tag.get(TAG_DIGEST, "")] = counts.get(tag.get(TAG_DIGEST, ""), 0) + 1
    return counts


def assert_no_flip_flop(deployment: Deployment) -> None:
    changes = list(
        AuditEvent.objects.filter(
            action="deployment.status_changed", object_type="deployments.deployment", object_id=str(deployment.pk)
        ).order_by("seq")
    )
    for event in changes:
        assert event.before["status"] != event.after["status"], event
    for earlier, later in itertools.pairwise(changes):
        # Between two audited changes only an operation moves the status (to
        # deploying or deleting, audited as the operation's start).
        if earlier.after["status"] == later.before["status"]:
            continue
        assert later.before["status"] in (Deployment.Status.DEPLOYING, Deployment.Status.DELETING), (earlier, later)


@pytest.mark.parametrize("fake", CELLS, ids=[cell.id for cell in CELLS], indirect=True)
def test_chaos_matrix(fake, request, admin, repository):
    cell: Cell = request.node.callspec.params["fake"]
    deployment, specs_before = prepare(cell, admin, repository, fake)
    creates_before = fake.create_calls
    specs = specs_before + start(cell, admin, deployment)
    _switch_on(cell, fake, deployment)
    killed = drive(deployment, kill_at=cell.kill_at)
    operation = deployment.operations.order_by("-id").first()
    if operation.status == Operation.Status.SUCCEEDED:
        settle(deployment)
        _after_success(cell, fake, deployment)
    settle(deployment)

    # The operation ended, as the row says.
    assert not deployment.operations.filter(status__in=Operation.ACTIVE).exists()
    expected_operation = {
        "succeeds": Operation.Status.SUCCEEDED,
        "retried": Operation.Status.SUCCEEDED,
        "re-driven": Operation.Status.SUCCEEDED,
        "fails": Operation.Status.FAILED,
        "needs_attention": Operation.Status.NEEDS_ATTENTION,
    }[cell.outcome]
    assert operation.status == expected_operation, (operation.error, operation.steps)
    tries = operation.attempts - operation.waits
    if cell.outcome == "succeeds":
        assert tries == 1, operation.steps
    elif cell.outcome in ("retried", "re-driven"):
        assert tries == 2, operation.steps
    assert killed == cell.outcome.startswith("re-driven")
    if cell.kill_points:
        steps = [s["message"] for s in operation.steps if s["message"] != "Done"]
        assert len(steps) == cell.kill_points, f"kill points listed {cell.kill_points}, steps recorded: {steps}"

    # The final status and its reason.
    assert deployment.status == cell.status, deployment.status_reason
    if cell.reason:
        assert cell.reason in deployment.status_reason
    elif cell.status in (Deployment.Status.HEALTHY, Deployment.Status.DELETED):
        assert deployment.status_reason == ""

    # Nothing created twice at the target.
    assert all(count == 1 for count in registrations_by_digest(fake).values()), registrations_by_digest(fake)
    created = fake.create_calls - creates_before
    # A submit refused every time created nothing; otherwise one per new spec, kills and retries included.
    assert created == (0 if cell.outcome == "needs_attention" else specs - specs_before), created
    assert_no_flip_flop(deployment)
    assert verify_chain().ok
