"""One observation pipeline and a fenced engine, on the in-memory fake kind:
the two planes combine into one status written by one writer; an attempt
that lost its operation writes nothing; Retry-After is honoured; one
deployment that cannot be observed does not stop the round; a server that
keeps dying is restarted later each time, then left for a person."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from deployments.health.record import Seen, observation_record
from deployments.health.verdict import combine
from deployments.models import AuditEvent, Deployment, Operation, Target
from deployments.services.attempts import Attempt, Superseded
from deployments.services.deployments import deployment_create
from deployments.services.operations import _claim, observe, reconcile, retry_delay
from deployments.services.targets import target_create
from tests.engine import run_pending
from tests.test_target_kinds import dev, empty_fake_cloud  # noqa: F401 - fixtures
from workers.targets.fake import adapter as fake_cloud

pytestmark = pytest.mark.django_db
S = Deployment.Status
OLD, NEW = "a" * 64, "b" * 64


def fake_deployment(admin, dev, repository, name="obs", **settings):  # noqa: F811
    target = target_create(actor=admin, name=f"fake-{name}", kind="fake", environment=dev, settings=settings)
    deployment = deployment_create(name=name, repository=repository, target=target, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    return deployment


def healthy_probe(**extra) -> dict:
    return {
        "live": True,
        "ready": True,
        "models": [{"name": "add_sub", "version": "1", "ready": True, "reason": ""}],
        "detail": "",
        **extra,
    }


def two_deployments(old_share=100, new_share=0, **probes) -> tuple[dict, dict]:
    control = {
        "exists": True,
        "provisioning": "succeeded",
        "spec_digest": OLD,
        "traffic": {"sold": old_share, "snew": new_share},
        "deployments": {
            "sold": {"provisioning": "succeeded", "spec_digest": OLD},
            "snew": {"provisioning": "succeeded", "spec_digest": NEW},
        },
    }
    return control, healthy_probe(deployments=probes)


def test_a_new_spec_waiting_at_zero_percent_is_one_stable_verdict():
    control, data = two_deployments(sold=healthy_probe(), snew=healthy_probe())
    status, reason = combine(control, data, desired_spec=NEW)
    assert status == S.DEGRADED
    assert reason == (
        f"drift: the desired spec runs as snew at 0% of the traffic, spec {OLD[:12]} takes it; shift traffic to apply"
    )
    # Neither plane alone flips it: the same records give the same answer.
    assert combine(control, data, desired_spec=NEW) == (status, reason)


def test_a_zero_percent_deployment_failing_its_probe_is_said_while_the_served_one_stays_healthy():
    broken = {"live": False, "ready": False, "models": [], "detail": "/v2/health/live answered HTTP 502"}
    control, data = two_deployments(sold=healthy_probe(), snew=broken)
    status, reason = combine(control, data, desired_spec=OLD)
    assert status == S.HEALTHY
    assert reason == "snew (0% of the traffic) is unhealthy: /v2/health/live answered HTTP 502"


def test_twenty_rounds_of_both_jobs_over_a_drifted_deployment_audit_one_change(admin, dev, repository):  # noqa: F811
    deployment = fake_deployment(admin, dev, repository)
    Deployment.objects.filter(pk=deployment.pk).update(spec_digest=NEW)
    control, data = two_deployments(sold=healthy_probe(), snew=healthy_probe())
    before = AuditEvent.objects.filter(action="deployment.status_changed").count()
    for _ in range(20):
        observation_record(deployment_id=deployment.pk, seen=Seen(control=control))  # the reconciler
        observation_record(deployment_id=deployment.pk, seen=Seen(data=data, latency_ms=3.0))  # the poller
    changes = AuditEvent.objects.filter(action="deployment.status_changed").order_by("seq")[before:]
    assert [(e.before["status"], e.after["status"]) for e in changes] == [(S.HEALTHY, S.DEGRADED)]
    deployment.refresh_from_db()
    assert deployment.observed["deployments"]["snew"] == {
        "traffic": 0,
        "provisioning": "succeeded",
        "spec_digest": NEW,
        "status": S.HEALTHY,
        "reason": "",
    }
    assert len(deployment.probe_latencies) == 20


def test_an_attempt_that_lost_its_operation_writes_nothing(admin, dev, repository):  # noqa: F811
    deployment = fake_deployment(admin, dev, repository)
    operation = Operation.objects.create(deployment=deployment, kind=Operation.Kind.DEPLOY, spec_digest=OLD)
    first = Attempt(operation.pk, _claim(operation.pk, "task-1"))
    first.step("uploading")
    # Its heartbeat stopped; the reconciler re-drove it and a second worker claimed it.
    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.QUEUED)
    second = Attempt(operation.pk, _claim(operation.pk, "task-2"))
    assert (first.number, second.number) == (1, 2)
    second.step("uploading again")
    with pytest.raises(Superseded):
        first.step("upload finished")
    with transaction.atomic():
        assert first.claim_outcome() is None
        assert second.claim_outcome() is not None
    operation.refresh_from_db()
    assert [step["message"] for step in operation.steps] == ["uploading", "uploading again"]


@pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection
def test_a_heartbeat_thread_keeps_a_blocked_attempt_alive_until_it_is_superseded(admin, dev, repository, settings):  # noqa: F811
    settings.OPERATION_STALE_AFTER = 2  # a beat every 0.5 s
    deployment = fake_deployment(admin, dev, repository)
    operation = Operation.objects.create(deployment=deployment, kind=Operation.Kind.DEPLOY, spec_digest=OLD)
    attempt = Attempt(operation.pk, _claim(operation.pk, "task-1"))
    Operation.objects.filter(pk=operation.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with attempt.heartbeating():
        # A blocking call (an upload) makes no step; the thread beats regardless.
        for _ in range(100):
            operation.refresh_from_db()
            if operation.heartbeat_at > timezone.now() - timedelta(minutes=1):
                break
            attempt.superseded.wait(0.1)
        assert operation.heartbeat_at > timezone.now() - timedelta(minutes=1)
        Operation.objects.filter(pk=operation.pk).update(attempts=2)  # another claim took it
        assert attempt.superseded.wait(10)
    with pytest.raises(Superseded):
        attempt.step("anything")


def test_retry_delays_double_and_honour_retry_after_below_the_visibility_timeout(settings):
    settings.OPERATION_RETRY_BASE = 10
    assert [retry_delay(n, None) for n in (1, 2, 3)] == [10, 20, 40]
    assert retry_delay(1, 42.2) == 43  # the target asked for longer
    assert retry_delay(3, 5) == 40  # ours is longer already
    assert retry_delay(1, 10_000) == 300


def test_one_deployment_that_cannot_be_observed_does_not_stop_the_round(admin, dev, repository):  # noqa: F811
    crashing = fake_deployment(admin, dev, repository, name="crashing")
    Target.objects.filter(pk=crashing.target_id).update(settings={"behaviour": "status_crashes"})
    healthy = fake_deployment(admin, dev, repository, name="fine", behaviour="unhealthy")
    figures = observe()
    assert figures["failed"] == 1
    assert figures["observed"] == 1
    healthy.refresh_from_db()
    crashing.refresh_from_db()
    assert healthy.status == S.UNHEALTHY  # observed after the crash, whatever the order
    assert "add_sub v1 UNAVAILABLE: switched off by the fake" in healthy.status_reason


def test_a_server_that_keeps_dying_is_restarted_later_each_time_then_left_for_a_person(
    admin,
    dev,  # noqa: F811
    repository,
    settings,
):
    settings.LOCAL_RESTART_BACKOFF = 10
    settings.LOCAL_RESTART_LIMIT = 2
    deployment = fake_deployment(admin, dev, repository, name="dying")
    waits = []
    for _ in range(2):
        fake_cloud.reset()  # the server died
        assert reconcile()["restarted"] == 1
        deployment.refresh_from_db()
        waits.append((deployment.restart_not_before - timezone.now()).total_seconds())
        assert reconcile()["restarted"] == 0  # still backing off: not restarted again at once
        assert run_pending(deployment).status == Operation.Status.SUCCEEDED
        deployment.refresh_from_db()
        assert deployment.status == S.HEALTHY  # it came back, then dies again soon after
        Deployment.objects.filter(pk=deployment.pk).update(restart_not_before=timezone.now())
    assert 8 < waits[0] <= 10
    assert 18 < waits[1] <= 20
    fake_cloud.reset()
    reconcile()
    deployment.refresh_from_db()
    assert deployment.status == S.FAILED
    assert deployment.status_reason.startswith("needs attention: the server died 3 times in a row")
    assert not deployment.operations.filter(status__in=Operation.ACTIVE).exists()
    assert reconcile()["restarted"] == 0


def test_a_target_that_cannot_be_read_keeps_the_status_and_says_so(admin, dev, repository):  # noqa: F811
    deployment = fake_deployment(admin, dev, repository, name="throttled")
    assert deployment.status == S.HEALTHY
    Target.objects.filter(pk=deployment.target_id).update(
        settings={"behaviour": "fail_transient", "transient_failures": 1}
    )
    audited = AuditEvent.objects.filter(action="deployment.status_changed").count()
    assert observe()["failed"] == 1
    deployment.refresh_from_db()
    assert deployment.status == S.HEALTHY
    assert "ServiceUnavailable: reading the service (failure 1)" in deployment.observed["control_error"]
    assert AuditEvent.objects.filter(action="deployment.status_changed").count() == audited
    observe()  # the next read works: the error is gone from the page
    deployment.refresh_from_db()
    assert deployment.observed["control_error"] == ""
