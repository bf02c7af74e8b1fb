"""Rollouts on the local target: real Tritons behind the real router, the
figures from their own /metrics and the router's counts, requests flowing
through the split all along. One deployment meets four candidates in turn:
one with wrong outputs (its golden request rolls it back), one that fails
a request in four (the failure gate), a slow one (the latency gate), and a
good one, promoted step by step."""

import time

import pytest

from deployments.models import Deployment, Operation, Rollout
from deployments.rollouts import driver
from deployments.services.deployments import deployment_create
from deployments.services.operations import reconcile
from deployments.services.rollouts import rollout_create
from tests.azure import azure_target, data_plane, fake_v2  # noqa: F401 - fixtures
from tests.engine import endpoint_headers, run_pending
from tests.load import Load
from tests.rollout_models import GOLDEN, candidate_revision
from tests.test_local_target import deploy_example
from workers.targets.azureml_v2.adapter import azure_deployment_name
from workers.targets.local import adapter as local
from workers.targets.local import endpoints

pytestmark = [pytest.mark.django_db, pytest.mark.triton]

# Two looks per step at least (RECONCILE_INTERVAL 1 s here), and at 30 % of
# ~40 requests/s enough requests for the gates to judge: a p95 needs 60.
STEPS = [{"traffic": 30, "bake_seconds": 7}, {"traffic": 100, "bake_seconds": 3}]
# The p95 floor sits between a good candidate's p95 on a busy CI machine (up to
# 34 ms seen with all the traffic on it) and the slow one's (60 ms more per request).
GATES = {"failure_rate": {}, "p95_ms": {"max_ratio": 2.0, "floor": 45}, "min_requests": 15}


@pytest.fixture(autouse=True)
def quick_looks(settings):
    settings.RECONCILE_INTERVAL = 1


def drive(rollout: Rollout, *, within: float = 120) -> Rollout:
    """The reconciler's part, looked at every half second, with the operations
    it queues run here as a worker would."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        driver.advance_one(rollout.pk)
        if rollout.deployment.operations.filter(status=Operation.Status.QUEUED).exists():
            run_pending(rollout.deployment)
        rollout.refresh_from_db()
        if rollout.status in Rollout.TERMINAL:
            return rollout
        time.sleep(0.5)
    raise AssertionError(f"rollout #{rollout.pk} is still {rollout.status} ({rollout.phase}): {rollout.reason}")


def meet(deployment, actor, tmp_path, behaviour: str, **plan) -> Rollout:
    """A rollout of the add_sub revision that behaves as named, driven to its end."""
    rollout = rollout_create(
        deployment=deployment,
        actor=actor,
        repository=candidate_revision(tmp_path, behaviour, actor),
        steps=STEPS,
        gates=GATES,
        **plan,
    )
    return drive(rollout, within=180)


def failed_step(rollout: Rollout):
    """The step whose gates sent the traffic back."""
    return rollout.steps.get(status="failed")


def figures_of(rollout: Rollout) -> str:
    """Each judged step's checks, in a line a failed assertion can show whole."""
    return "; ".join(
        f"step {step.index + 1}: "
        + ", ".join(
            f"{c['gate']} {c['baseline']} vs {c['candidate']} (limit {c['limit']})" for c in step.verdict["checks"]
        )
        + f", requests {step.figures.get('candidate', {}).get('requests')}"
        for step in rollout.steps.all()
        if step.verdict
    )


def servers(deployment) -> set[str]:
    return set(endpoints.servers(deployment.pk))


def test_four_candidates_meet_the_gates_on_real_tritons(deployer, cleanup, tmp_path):
    deployment, _ = deploy_example(deployer, "add_sub", "canary", cleanup)
    baseline = local.main_deployment(deployment.pk)
    url = f"{deployment.scoring_uri}/v2/models/add_sub/infer"
    with Load(url, endpoint_headers(deployment), per_second=80, threads=6) as load:
        # Wrong outputs: the golden request fails at the first look, before any gate has requests enough.
        wrong = meet(deployment, deployer, tmp_path, "wrong", golden_requests=[GOLDEN], on_rollback="remove")
        assert wrong.status == Rollout.Status.ROLLED_BACK, wrong.reason
        golden = wrong.steps.get(index=0).verdict["golden"][0]
        assert not golden["passed"]
        assert "OUTPUT0[3] is 160, expected 44" in golden["detail"]
        assert servers(deployment) == {baseline}, "the plan said remove the candidate"

        flaky = meet(deployment, deployer, tmp_path, "flaky")
        assert flaky.status == Rollout.Status.ROLLED_BACK, flaky.reason
        check = next(c for c in failed_step(flaky).verdict["checks"] if c["gate"] == "failure_rate")
        assert check["passed"] is False
        assert check["candidate"] > 0.15
        assert failed_step(flaky).figures["candidate"]["failures"]["BACKEND"] > 0
        assert load.failures[flaky.candidate_name] > 0
        assert servers(deployment) == {baseline, flaky.candidate_name}, "kept at 0% for inspection"

        slow = meet(deployment, deployer, tmp_path, "slow", on_rollback="remove")
        assert slow.status == Rollout.Status.ROLLED_BACK, slow.reason
        check = next(c for c in failed_step(slow).verdict["checks"] if c["gate"] == "p95_ms")
        assert check["passed"] is False
        assert check["candidate"] > 60 > check["baseline"]
        assert "Triton /metrics latency summary" in check["source"]

        good = meet(deployment, deployer, tmp_path, "good", golden_requests=[GOLDEN])
        assert good.status == Rollout.Status.PROMOTED, good.reason
        assert [s.status for s in good.steps.all()] == ["passed", "passed"]
    deployment.refresh_from_db()
    assert deployment.spec_digest == good.candidate_digest
    assert deployment.repository_id == good.spec["repository_id"]
    assert local.main_deployment(deployment.pk) == good.candidate_name
    assert baseline not in servers(deployment), "the baseline is retired"
    # Requests kept flowing: only the bad candidates' own failures, nothing lost in the shifts.
    assert set(load.failures) <= {flaky.candidate_name}, (load.failures, load.answers)
    assert load.answers[good.candidate_name] > 0
    reconcile()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason


@pytest.mark.azure
def test_four_candidates_meet_the_gates_behind_an_azure_v2_endpoint(admin, repository, fake_v2, tmp_path):  # noqa: F811
    """The same four on SDK v2 through the fake, each Azure deployment its own
    real Triton: counts from Triton's statistics extension reached through
    the endpoint by header, percentiles and HTTP errors from Azure Monitor's
    metrics of each deployment."""
    target = azure_target(admin, "azureml_v2_managed", fake_v2, instance_type="Standard_NC6s_v3")
    deployment = deployment_create(name="canary", repository=repository, target=target, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    reconcile()
    deployment.refresh_from_db()
    baseline = azure_deployment_name(deployment.spec_digest)
    url = deployment.scoring_uri.removesuffix("/score") + "/v2/models/add_sub/infer"
    with Load(url, endpoint_headers(deployment), per_second=80, threads=6) as load:
        wrong = meet(deployment, admin, tmp_path, "wrong", golden_requests=[GOLDEN], on_rollback="remove")
        flaky = meet(deployment, admin, tmp_path, "flaky", on_rollback="remove")
        slow = meet(deployment, admin, tmp_path, "slow", on_rollback="remove")
        good = meet(deployment, admin, tmp_path, "good", golden_requests=[GOLDEN])
    assert wrong.status == Rollout.Status.ROLLED_BACK, wrong.reason
    assert "expected 44" in wrong.steps.get(index=0).verdict["golden"][0]["detail"]

    assert flaky.status == Rollout.Status.ROLLED_BACK, flaky.reason
    check = next(c for c in failed_step(flaky).verdict["checks"] if c["gate"] == "failure_rate")
    assert check["passed"] is False
    assert "statistics extension" in check["source"]

    assert slow.status == Rollout.Status.ROLLED_BACK, slow.reason
    check = next(c for c in failed_step(slow).verdict["checks"] if c["gate"] == "p95_ms")
    assert check["passed"] is False
    assert check["candidate"] > 60 > check["baseline"]
    assert "Azure Monitor" in check["source"]

    assert good.status == Rollout.Status.PROMOTED, (good.reason, figures_of(good))
    deployment.refresh_from_db()
    assert deployment.spec_digest == good.candidate_digest
    traffic = fake_v2.endpoint("canary")["properties"]["traffic"]
    assert traffic == {good.candidate_name: 100}, "the baseline was deleted at Azure"
    assert baseline not in traffic
    # The rolled-back candidates were removed, as their plans said.
    assert not (
        {wrong.candidate_name, flaky.candidate_name, slow.candidate_name} & set(fake_v2.deployment_names("canary"))
    )
    assert set(load.failures) <= {flaky.candidate_name}, (load.failures, load.answers)
