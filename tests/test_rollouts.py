"""Rollouts on the in-memory endpoint kind: the plan's checks, the state
machine step by step, gates that roll back, approvals that bind the plan,
and the actions people take on a running rollout. Figures are set per
deployment on the fake; real Tritons are in test_rollouts_live.py."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.models import (
    AuditEvent,
    Deployment,
    Environment,
    Operation,
    Rollout,
    RolloutStep,
    Target,
    WebhookDelivery,
)
from deployments.rollouts import driver
from deployments.rollouts.figures import Counters, between
from deployments.rollouts.plan import clean_gates
from deployments.services.approvals import deployment_approve
from deployments.services.deployments import deployment_create, deployment_redeploy
from deployments.services.rollouts import rollout_abort, rollout_create, rollout_pause, rollout_promote, rollout_resume
from tests.engine import run_pending
from workers.targets.fake import endpoint as fake_endpoint

pytestmark = pytest.mark.django_db

STEPS = [{"traffic": 10, "bake_seconds": 2}, {"traffic": 50, "bake_seconds": 2}, {"traffic": 100, "bake_seconds": 2}]


@pytest.fixture(autouse=True)
def quick_observation(settings):
    settings.RECONCILE_INTERVAL = 1
    fake_endpoint.reset()
    yield
    fake_endpoint.reset()


def endpoint_target(environment="dev", approvals=0, **policy) -> Target:
    env, _ = Environment.objects.get_or_create(name=environment, defaults={"approvals_required": approvals, **policy})
    return Target.objects.create(name=f"fake-{environment}", kind="fake_endpoint", environment=env)


def running_deployment(repository, actor, target) -> Deployment:
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=actor)
    if deployment.status == Deployment.Status.PENDING_APPROVAL:
        return deployment
    run_pending(deployment)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY
    return deployment


def set_counters(rollout: Rollout, side: str, **values) -> None:
    name = rollout.baseline_name if side == "baseline" else rollout.candidate_name
    key = (rollout.deployment.target_id, name)
    now = fake_endpoint.COUNTERS.get(key, Counters())
    for field, amount in values.items():
        if field == "failures":
            now.failures = {r: now.failures.get(r, 0) + n for r, n in amount.items()}
        elif field == "quantiles":
            now.quantiles = amount
        else:
            setattr(now, field, getattr(now, field) + amount)
    fake_endpoint.COUNTERS[key] = now


def serve(rollout, side, requests=100, ms=10.0, failed=0, reason="BACKEND", p95=None, p99=None, queue_ms=1.0):
    """`requests` more requests answered by one side (failed ones among them)."""
    set_counters(
        rollout,
        side,
        success=requests - failed,
        failures={reason: failed} if failed else {},
        request_us=(requests - failed) * ms * 1000,
        queue_us=(requests - failed) * queue_ms * 1000,
        quantiles={"p95": (p95 or ms * 1.5) * 1000, "p99": (p99 or ms * 2) * 1000},
    )


def bake_elapsed(rollout: Rollout) -> None:
    """The step's bake time has passed (its window is moved back rather than waited for)."""
    step = rollout.steps.get(index=Rollout.objects.get(pk=rollout.pk).step_index)
    RolloutStep.objects.filter(pk=step.pk).update(started_at=step.started_at - timedelta(seconds=step.bake_seconds))


def look(rollout: Rollout) -> Rollout:
    """One look by the driver, then whatever operation it queued, run as a worker would."""
    driver.advance_one(rollout.pk)
    queued = rollout.deployment.operations.filter(status=Operation.Status.QUEUED).first()
    if queued is not None:
        run_pending(rollout.deployment)
    rollout.refresh_from_db()
    return rollout


def until(rollout: Rollout, phase: str, looks: int = 10) -> Rollout:
    rollout.refresh_from_db()
    for _ in range(looks):
        if rollout.phase == phase or rollout.status in Rollout.TERMINAL:
            break
        look(rollout)
    assert rollout.phase == phase, (rollout.status, rollout.phase, rollout.reason)
    return rollout


def traffic(rollout: Rollout) -> dict:
    return fake_endpoint.ENDPOINTS[(rollout.deployment.target_id, "add-sub")].traffic


def actions(deployment) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_id=str(deployment.pk), action__startswith="rollout.")
        .order_by("seq")
        .values_list("action", flat=True)
    )


def test_a_good_candidate_is_promoted_step_by_step(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    assert rollout.status == Rollout.Status.RUNNING
    until(rollout, Rollout.Phase.SHIFTING)
    assert traffic(rollout) == {rollout.baseline_name: 100, rollout.candidate_name: 0}
    for share in (10, 50, 100):
        until(rollout, Rollout.Phase.BAKING)
        assert traffic(rollout)[rollout.candidate_name] == share
        serve(rollout, "baseline")
        serve(rollout, "candidate")
        look(rollout)
        assert rollout.phase == Rollout.Phase.BAKING, "a pass needs the whole bake"
        bake_elapsed(rollout)
        look(rollout)
    until(rollout, Rollout.Phase.DONE)
    deployment.refresh_from_db()
    assert rollout.status == Rollout.Status.PROMOTED
    assert deployment.spec_digest == rollout.candidate_digest
    assert deployment.worker_count == 2
    assert traffic(rollout) == {rollout.candidate_name: 100}, "the baseline is retired"
    assert list(rollout.steps.values_list("status", flat=True)) == ["passed"] * 3
    first = rollout.steps.get(index=0)
    assert first.verdict["final"]
    assert {c["gate"] for c in first.verdict["checks"]} >= {"failure_rate", "p95_ms"}
    assert first.figures["candidate"]["requests"] == 100
    assert actions(deployment).count("rollout.step_passed") == 3
    assert actions(deployment)[-1] == "rollout.promoted"
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY


def test_a_failing_candidate_is_rolled_back_by_the_failure_gate_with_its_figures(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    until(rollout, Rollout.Phase.BAKING)
    serve(rollout, "baseline", requests=900)
    serve(rollout, "candidate", requests=100, failed=20)
    look(rollout)
    assert rollout.phase == Rollout.Phase.ROLLING_BACK, "a failed gate does not wait for the bake's end"
    until(rollout, Rollout.Phase.DONE)
    assert rollout.status == Rollout.Status.ROLLED_BACK
    assert "failure_rate" in rollout.reason
    assert traffic(rollout) == {rollout.baseline_name: 100, rollout.candidate_name: 0}
    step = rollout.steps.get(index=0)
    assert step.status == RolloutStep.Status.FAILED
    check = next(c for c in step.verdict["checks"] if c["gate"] == "failure_rate")
    assert check["candidate"] == 0.2
    assert check["baseline"] == 0.0
    assert check["passed"] is False
    event = AuditEvent.objects.get(action="rollout.gate_failed")
    assert event.details["checks"][0]["candidate"] == 0.2
    deployment.refresh_from_db()
    assert deployment.spec_digest == rollout.baseline_digest, "the deployment still runs its baseline"
    assert deployment.status == Deployment.Status.HEALTHY


def test_a_slow_candidate_is_rolled_back_by_the_latency_gate(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(
        deployment=deployment,
        actor=requester,
        changes={"worker_count": 2},
        steps=STEPS,
        gates={"p95_ms": {"max_ratio": 1.5, "floor": 5}},
        on_rollback="remove",
    )
    until(rollout, Rollout.Phase.BAKING)
    serve(rollout, "baseline", ms=10)
    serve(rollout, "candidate", ms=30)
    until(rollout, Rollout.Phase.DONE)
    assert rollout.status == Rollout.Status.ROLLED_BACK
    assert traffic(rollout) == {rollout.baseline_name: 100}, "the plan said remove the candidate"
    check = rollout.steps.get(index=0).verdict["checks"][0]
    assert (check["gate"], check["baseline"], check["candidate"]) == ("p95_ms", 15.0, 45.0)


def test_a_quiet_window_cannot_fail_a_candidate_on_one_unlucky_request(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    until(rollout, Rollout.Phase.BAKING)
    serve(rollout, "candidate", requests=3, failed=1)
    look(rollout)
    assert rollout.phase == Rollout.Phase.BAKING
    check = rollout.steps.get(index=0).verdict["checks"][0]
    assert check["passed"] is None
    assert "3 of the 20 requests" in check["note"]


@pytest.mark.parametrize(
    ("plan", "path", "words"),
    [
        ({"steps": [{"traffic": 10, "bake_seconds": 5}]}, "steps", "ends at 100%"),
        ({"steps": [{"traffic": 100, "bake_seconds": 1}]}, "steps[0].bake_seconds", "two observation intervals"),
        ({"steps": [{"traffic": 50, "bake_seconds": 5}, {"traffic": 20, "bake_seconds": 5}]}, "steps[1].traffic", ""),
        ({"steps": [{"traffic": 100, "bake_seconds": 5}], "gates": {"p50_ms": {}}}, "gates.p50_ms", "Unknown gate"),
        (
            {"steps": [{"traffic": 100, "bake_seconds": 5}], "gates": {"p95_ms": {"max_ratio": 0.5}}},
            "gates.p95_ms.max_ratio",
            "",
        ),
        (
            {
                "steps": [{"traffic": 100, "bake_seconds": 5}],
                "golden_requests": [{"model": "add_sub", "inputs": [{"name": "INPUT0", "datatype": "FP32"}]}],
            },
            "golden_requests[0].inputs[0].shape",
            "",
        ),
        (
            {
                "steps": [{"traffic": 100, "bake_seconds": 5}],
                "golden_requests": [{"model": "nope", "inputs": [], "expected": []}],
            },
            "golden_requests[0].model",
            "has no model 'nope'",
        ),
        (
            {
                "steps": [{"traffic": 100, "bake_seconds": 5}],
                "golden_requests": [
                    {
                        "model": "add_sub",
                        "inputs": [
                            {"name": "INPUT0", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
                            {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]},
                        ],
                        "expected": [{"name": "OUTPUT0", "data": [2, 4, 6, 8]}],
                    }
                ],
            },
            "golden_requests[0].inputs[0].shape",
            "does not fit",
        ),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field_and_nothing_is_saved(requester, repository, plan, path, words):
    deployment = running_deployment(repository, requester, endpoint_target())
    with pytest.raises(DomainError) as refused:
        rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, **plan)
    assert refused.value.path == path
    assert words in refused.value.message
    assert not Rollout.objects.exists()


def test_gates_a_kind_cannot_measure_are_refused():
    with pytest.raises(DomainError, match="cannot measure queue_share") as refused:
        clean_gates({"queue_share": {}}, signals={"p95_ms": "x"}, has_reasons=False)
    assert refused.value.path == "gates.queue_share"
    with pytest.raises(DomainError, match="without Triton's reasons") as refused:
        clean_gates({"failure_rate": {"reasons": ["BACKEND"]}}, signals={"failure_rate": "stats"}, has_reasons=False)
    assert refused.value.path == "gates.failure_rate.reasons"


def test_the_same_spec_is_no_rollout(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    with pytest.raises(DomainError, match="spec running now"):
        rollout_create(deployment=deployment, actor=requester, steps=STEPS)


def test_approvals_bind_the_plan_and_a_changed_plan_needs_them_again(requester, approver, repository):
    target = endpoint_target("prod", approvals=1)
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=requester)
    deployment_approve(deploy_request=deployment.requests.get(status="pending"), actor=approver)
    run_pending(deployment)
    first = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    assert first.status == Rollout.Status.PENDING_APPROVAL
    request = deployment.requests.get(status="pending")
    assert (request.kind, request.spec_digest) == ("rollout", first.plan_digest)
    assert not deployment.operations.filter(status="queued").exists()
    with pytest.raises(NotAllowed, match="someone else"):
        deployment_approve(deploy_request=request, actor=requester)

    # A changed plan (a longer first bake) replaces the waiting one: it needs its own approval.
    second = rollout_create(
        deployment=deployment,
        actor=requester,
        changes={"worker_count": 2},
        steps=[{"traffic": 10, "bake_seconds": 60}, {"traffic": 100, "bake_seconds": 2}],
    )
    first.refresh_from_db()
    request.refresh_from_db()
    assert first.status == Rollout.Status.ABORTED
    assert request.status == "superseded"
    assert second.plan_digest != first.plan_digest
    with pytest.raises(WrongState):
        deployment_approve(deploy_request=request, actor=approver)
    deployment_approve(deploy_request=deployment.requests.get(status="pending"), actor=approver)
    second.refresh_from_db()
    assert second.status == Rollout.Status.RUNNING
    assert second.released_digest == second.plan_digest

    # Changed behind the services' back after approval: it moves no further.
    RolloutStep.objects.filter(rollout=second, index=0).update(bake_seconds=2)
    look(second)
    assert second.status == Rollout.Status.PAUSED
    assert "was approved" in second.reason
    with pytest.raises(WrongState, match="differs from the one approved"):
        rollout_resume(rollout=second, actor=requester)
    assert "rollout.plan_mismatch" in actions(deployment)


def test_pause_holds_the_step_and_resume_starts_its_window_again(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    until(rollout, Rollout.Phase.BAKING)
    rollout_pause(rollout=rollout, actor=requester)
    bake_elapsed(rollout)
    look(rollout)
    assert rollout.status == Rollout.Status.PAUSED
    assert rollout.step_index == 0
    assert rollout.steps.get(index=0).status == RolloutStep.Status.BAKING, "a paused step is not judged"
    resumed_at = timezone.now()
    rollout_resume(rollout=rollout, actor=requester)
    until(rollout, Rollout.Phase.BAKING)
    assert rollout.steps.get(index=0).started_at >= resumed_at
    assert {"rollout.paused", "rollout.resumed"} <= set(actions(deployment))


def test_abort_sends_traffic_back_and_promote_now_skips_the_remaining_bakes(requester, approver, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    until(rollout, Rollout.Phase.BAKING)
    rollout_abort(rollout=rollout, actor=requester, reason="wrong revision")
    until(rollout, Rollout.Phase.DONE)
    assert rollout.status == Rollout.Status.ABORTED
    assert "wrong revision" in rollout.reason
    assert traffic(rollout)[rollout.baseline_name] == 100

    again = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 3}, steps=STEPS)
    until(again, Rollout.Phase.BAKING)
    rollout_promote(rollout=again, actor=requester)
    until(again, Rollout.Phase.DONE)
    assert again.status == Rollout.Status.PROMOTED
    assert list(again.steps.values_list("status", flat=True)) == ["skipped", "skipped", "passed"]
    deployment.refresh_from_db()
    assert deployment.worker_count == 3


def test_a_viewer_cannot_steer_a_rollout(requester, repository, viewer):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    for action in (rollout_pause, rollout_abort, rollout_promote):
        with pytest.raises(NotAllowed):
            action(rollout=rollout, actor=viewer)


def test_nothing_else_changes_the_deployment_while_a_rollout_runs(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    run_pending(deployment)
    with pytest.raises(WrongState, match="Rollout #"):
        deployment_redeploy(deployment=deployment, actor=requester, changes={"worker_count": 4})


def test_an_environment_may_require_rollouts_for_spec_changes(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target("staging", require_rollouts=True))
    with pytest.raises(WrongState, match="only as rollouts") as refused:
        deployment_redeploy(deployment=deployment, actor=requester, changes={"worker_count": 2})
    assert refused.value.code == "rollout_required"
    deployment_redeploy(deployment=deployment, actor=requester)  # the same spec again is no change


def test_looking_twice_queues_one_operation(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    run_pending(deployment)
    driver.advance_one(rollout.pk)
    driver.advance_one(rollout.pk)
    driver.advance_one(rollout.pk)
    assert deployment.operations.filter(status__in=Operation.ACTIVE).count() == 1


def test_the_endpoints_errors_count_where_triton_counts_nothing():
    """A wrong shape or a full queue is answered before a model runs:
    Triton's counters miss it, the endpoint's do not (docs/facts.md)."""
    start = Counters(success=100, failures={"BACKEND": 1}, answered={"requests": 101, "4xx": 0, "5xx": 1})
    end = Counters(success=190, failures={"BACKEND": 2}, answered={"requests": 210, "4xx": 5, "5xx": 15})
    figures = between(start, end)
    assert figures["failures"] == {"BACKEND": 1, "HTTP 4xx": 5, "HTTP 5xx": 13}
    assert figures["requests"] == 109
    assert figures["failure_rate"] == round(19 / 109, 6)


def test_a_window_read_elsewhere_replaces_the_summaries_and_counts():
    end = Counters(success=50, quantiles={"p95": 9000.0, "p99": 12000.0})
    figures = between(Counters(), end, window={"p95_ms": 20.0, "p99_ms": 31.5, "requests": 60, "4xx": 0, "5xx": 10})
    assert (figures["p95_ms"], figures["p99_ms"]) == (20.0, 31.5)
    assert figures["failures"] == {"HTTP 5xx": 10}
    assert figures["requests"] == 60


def test_pipelines_drive_a_rollout_through_the_api(client, requester, viewer, repository, token_for):
    deployment = running_deployment(repository, requester, endpoint_target())
    url = f"/api/v1/deployments/{deployment.pk}/rollouts"
    auth = {"HTTP_AUTHORIZATION": token_for(requester)}
    bad = client.post(
        url,
        {"spec": {"worker_count": 2}, "steps": [{"traffic": 10, "bake_seconds": 5}]},
        content_type="application/json",
        **auth,
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == "steps"
    assert "100%" in bad.json()["errors"][0]["message"]
    assert not Rollout.objects.exists()

    body = {
        "spec": {"worker_count": 2},
        "steps": STEPS,
        "gates": {"failure_rate": {"max_ratio": 1.5, "floor": 0.02}, "min_requests": 50},
        "on_rollback": "remove",
    }
    refused = client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=token_for(viewer))
    assert refused.status_code == 403
    created = client.post(url, body, content_type="application/json", **auth)
    assert created.status_code == 201, created.content
    rollout = created.json()
    assert rollout["status"] == "running"
    assert [s["traffic"] for s in rollout["steps"]] == [10, 50, 100]
    assert rollout["gates"] == {"failure_rate": {"max_ratio": 1.5, "floor": 0.02}, "min_requests": 50}
    assert rollout["released_digest"] == rollout["plan_digest"]

    row = Rollout.objects.get(pk=rollout["id"])
    until(row, Rollout.Phase.BAKING)
    serve(row, "baseline")
    serve(row, "candidate")
    look(row)
    seen = client.get(f"/api/v1/rollouts/{row.pk}", **auth).json()
    assert seen["step"] == 1
    assert seen["steps"][0]["status"] == "baking"
    assert seen["steps"][0]["figures"]["candidate"]["requests"] == 100
    assert seen["steps"][0]["verdict"]["checks"][0]["gate"] == "failure_rate"

    paused = client.post(f"/api/v1/rollouts/{row.pk}/pause", **auth)
    assert paused.json()["status"] == "paused"
    again = client.post(f"/api/v1/rollouts/{row.pk}/pause", **auth)
    assert again.status_code == 409
    aborted = client.post(
        f"/api/v1/rollouts/{row.pk}/abort", {"reason": "canary looked odd"}, content_type="application/json", **auth
    )
    assert aborted.json()["phase"] == "rolling_back"
    until(row, Rollout.Phase.DONE)
    final = client.get(f"/api/v1/rollouts/{row.pk}", **auth).json()
    assert final["status"] == "aborted"
    assert "canary looked odd" in final["reason"]
    assert client.get("/api/v1/rollouts/999999", **auth).status_code == 404


def test_the_approval_page_shows_the_plan_being_approved(client, requester, approver, repository):
    target = endpoint_target("prod", approvals=1)
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=requester)
    deployment_approve(deploy_request=deployment.requests.get(status="pending"), actor=approver)
    run_pending(deployment)
    rollout = rollout_create(
        deployment=deployment,
        actor=requester,
        changes={"worker_count": 2},
        steps=STEPS,
        gates={"p95_ms": {"max_ratio": 1.2, "floor": 15}},
    )
    request = deployment.requests.get(status="pending")
    client.force_login(approver)
    page = client.get(f"/approvals/{request.pk}/").content.decode()
    assert f"rollout #{rollout.pk}" in page
    assert "<td>10%</td><td>2 s</td>" in page
    assert "max(1.2 \u00d7 baseline, 15.0)" in page
    assert 'worker processes (WORKER_COUNT) <small class="warn">changed</small>' in page
    assert "Approve" in page


def test_each_step_verdict_and_rollback_is_sent_to_the_environments_webhook(requester, repository):
    target = endpoint_target("dev")
    Environment.objects.filter(pk=target.environment_id).update(webhook_url="https://hooks.example.com/rollouts")
    target.refresh_from_db()
    deployment = running_deployment(repository, requester, target)
    rollout = rollout_create(deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS)
    until(rollout, Rollout.Phase.BAKING)
    serve(rollout, "baseline")
    serve(rollout, "candidate")
    bake_elapsed(rollout)
    look(rollout)
    serve(rollout, "candidate", failed=40)
    until(rollout, Rollout.Phase.DONE)
    sent = list(WebhookDelivery.objects.order_by("id").values_list("event", "body"))
    events = [event for event, _ in sent]
    assert events[:3] == ["rollout.started", "rollout.step", "rollout.step_passed"]
    assert events[-2:] == ["rollout.rolling_back", "rollout.rolled_back"]
    body = json.loads(sent[-2][1])
    assert body["data"]["rollout"] == rollout.pk
    assert "gate failure_rate failed" in body["data"]["what"]
    assert body["data"]["url"].endswith(f"/rollouts/{rollout.pk}/")


def test_a_percentile_of_a_few_requests_cannot_fail_a_candidate(requester, repository):
    deployment = running_deployment(repository, requester, endpoint_target())
    rollout = rollout_create(
        deployment=deployment, actor=requester, changes={"worker_count": 2}, steps=STEPS, gates={"p95_ms": {}}
    )
    until(rollout, Rollout.Phase.BAKING)
    serve(rollout, "baseline", ms=10)
    serve(rollout, "candidate", requests=40, ms=80)  # its slowest of 40 is no p95
    look(rollout)
    check = rollout.steps.get(index=0).verdict["checks"][0]
    assert check["passed"] is None
    assert check["note"] == "40 of the 60 requests needed to judge"
    serve(rollout, "candidate", requests=40, ms=80)
    until(rollout, Rollout.Phase.DONE)
    assert rollout.status == Rollout.Status.ROLLED_BACK
