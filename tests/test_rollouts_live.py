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
from deployments.services.rollouts import rollout_create
from tests.engine import endpoint_headers, run_pending
from tests.load import Load
from tests.rollout_models import GOLDEN, candidate_revision
from tests.test_local_target import deploy_example
from workers.targets.local import adapter as local
from workers.targets.local import endpoints

pytestmark = [pytest.mark.django_db, pytest.mark.triton]

# Two looks per step at least (RECONCILE_INTERVAL 1 s here), and enough
# requests at 30 % of ~40 requests/s for the gates to judge.
STEPS = [{"traffic": 30, "bake_seconds": 4}, {"traffic": 100, "bake_seconds": 3}]
GATES = {"failure_rate": {}, "p95_ms": {"max_ratio": 2.0, "floor": 30}, "min_requests": 15}


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


def servers(deployment) -> set[str]:
    return set(endpoints.servers(deployment.pk))


def test_four_candidates_meet_the_gates_on_real_tritons(deployer, cleanup, tmp_path):
    deployment, _ = deploy_example(deployer, "add_sub", "canary", cleanup)
    baseline = local.main_deployment(deployment.pk)
    url = f"{deployment.scoring_uri}/v2/models/add_sub/infer"
    with Load(url, endpoint_headers(deployment)) as load:
        # Wrong outputs: the golden request fails at the first look, before any gate has requests enough.
        wrong = rollout_create(
            deployment=deployment,
            actor=deployer,
            repository=candidate_revision(tmp_path, "wrong", deployer),
            steps=STEPS,
            gates=GATES,
            golden_requests=[GOLDEN],
            on_rollback="remove",
        )
        drive(wrong)
        assert wrong.status == Rollout.Status.ROLLED_BACK, wrong.reason
        golden = wrong.steps.get(index=0).verdict["golden"][0]
        assert not golden["passed"]
        assert "OUTPUT0[3] is 160, expected 44" in golden["detail"]
        assert servers(deployment) == {baseline}, "the plan said remove the candidate"

        flaky = rollout_create(
            deployment=deployment,
            actor=deployer,
            repository=candidate_revision(tmp_path, "flaky", deployer),
            steps=STEPS,
            gates=GATES,
        )
        drive(flaky)
        assert flaky.status == Rollout.Status.ROLLED_BACK, flaky.reason
        check = next(c for c in flaky.steps.get(index=0).verdict["checks"] if c["gate"] == "failure_rate")
        assert check["passed"] is False
        assert check["candidate"] > 0.15
        assert flaky.steps.get(index=0).figures["candidate"]["failures"]["BACKEND"] > 0
        assert load.failures[flaky.candidate_name] > 0
        assert servers(deployment) == {baseline, flaky.candidate_name}, "kept at 0% for inspection"

        slow = rollout_create(
            deployment=deployment,
            actor=deployer,
            repository=candidate_revision(tmp_path, "slow", deployer),
            steps=STEPS,
            gates=GATES,
            on_rollback="remove",
        )
        drive(slow)
        assert slow.status == Rollout.Status.ROLLED_BACK, slow.reason
        check = next(c for c in slow.steps.get(index=0).verdict["checks"] if c["gate"] == "p95_ms")
        assert check["passed"] is False
        assert check["candidate"] > 60 > check["baseline"]
        assert "Triton /metrics latency summary" in check["source"]

        good = rollout_create(
            deployment=deployment,
            actor=deployer,
            repository=candidate_revision(tmp_path, "good", deployer),
            steps=STEPS,
            gates=GATES,
            golden_requests=[GOLDEN],
        )
        drive(good)
        assert good.status == Rollout.Status.PROMOTED, good.reason
        assert [s.status for s in good.steps.all()] == ["passed", "passed"]
    deployment.refresh_from_db()
    assert deployment.spec_digest == good.candidate_digest
    assert deployment.repository_id == good.spec["repository_id"]
    assert local.main_deployment(deployment.pk) == good.candidate_name
    assert baseline not in servers(deployment), "the baseline is retired"
    # Requests kept flowing: only the bad candidates' own failures, nothing lost in the shifts.
    assert set(load.failures) <= {flaky.candidate_name}
    assert load.answers[good.candidate_name] > 0
    assert deployment.status == Deployment.Status.HEALTHY or deployment.status_reason == ""
