"""Load tests and config searches without a server: who may ask, what each
environment's policy lets through, the checks on what is asked, approval
and cancel, a lost worker, the API and the pages on stored points, and the
measurement rules themselves. Real sweeps are in test_load_tests_live.py."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.errors import DomainError, NotAllowed, WrongState
from deployments.loadlab import configs, curves, generator
from deployments.loadlab.export import points_csv
from deployments.loadlab.search import best_of
from deployments.models import AuditEvent, ConfigSearch, Deployment, Environment, GoldenRequest, LoadTest, Target
from deployments.services.config_searches import config_search_create
from deployments.services.deployments import deployment_create
from deployments.services.environments import environment_create
from deployments.services.load_tests import (
    load_test_approve,
    load_test_cancel,
    load_test_create,
    load_tests_settle,
)
from tests.engine import run_pending

pytestmark = pytest.mark.django_db


def fake_target(environment="dev", load_tests=Environment.LoadTests.ALLOWED, approvals=0) -> Target:
    env, _ = Environment.objects.get_or_create(
        name=environment, defaults={"approvals_required": approvals, "load_tests": load_tests}
    )
    return Target.objects.create(name=f"fake-{environment}", kind="fake", environment=env)


def running(repository, actor, target) -> Deployment:
    deployment = deployment_create(name="add-sub", repository=repository, target=target, actor=actor)
    run_pending(deployment)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY
    return deployment


def point(concurrency, throughput, p95, *, errors=0, batch=1.0, stable=True) -> dict:
    return generator.Point(
        concurrency=concurrency,
        stable=stable,
        trials=3,
        requests=int(throughput * 6),
        errors=errors,
        measured=int(throughput * 6),
        throughput=throughput,
        mean_ms=p95 / 2,
        percentiles_ms={"p50": p95 / 2, "p90": p95 * 0.9, "p95": p95, "p99": p95 * 1.2},
        server={
            "requests": 100,
            "queue_us": 500.0,
            "compute_input_us": 10.0,
            "compute_infer_us": 900.0,
            "compute_output_us": 20.0,
            "executions": 100,
            "inferences": int(100 * batch),
            "batch": batch,
        },
        error_samples=[],
    ).as_json()


def finished(deployment, actor, points, label="") -> LoadTest:
    test = load_test_create(deployment=deployment, actor=actor, model="add_sub", concurrency=[1, 2, 4], label=label)
    LoadTest.objects.filter(pk=test.pk).update(status=LoadTest.Status.SUCCEEDED, points=points)
    test.refresh_from_db()
    return test


# --- who may ask, and the environment's policy -------------------------------


def test_a_deployer_asks_for_a_load_test_and_it_is_queued_and_audited(repository, deployer):
    deployment = running(repository, deployer, fake_target())
    test = load_test_create(deployment=deployment, actor=deployer, model="add_sub", concurrency=[1, 2, 4, 8])
    assert test.status == LoadTest.Status.QUEUED
    assert test.max_requests > 0
    assert test.max_seconds > 0
    event = AuditEvent.objects.get(action="loadtest.requested")
    assert event.environment == "dev"
    assert event.after["concurrency"] == [1, 2, 4, 8]


def test_a_viewer_may_not_load_a_deployment(repository, deployer, viewer):
    deployment = running(repository, deployer, fake_target())
    with pytest.raises(NotAllowed):
        load_test_create(deployment=deployment, actor=viewer, model="add_sub", concurrency=[1])
    assert not LoadTest.objects.exists()


def test_where_load_tests_are_off_nobody_may_run_one(repository, admin):
    deployment = running(repository, admin, fake_target(load_tests=Environment.LoadTests.OFF))
    with pytest.raises(NotAllowed, match="off in dev"):
        load_test_create(deployment=deployment, actor=admin, model="add_sub", concurrency=[1])


def test_an_environment_that_needs_approvals_needs_one_for_load_tests_too(admin):
    prod = environment_create(actor=admin, name="prod", policy={"approvals_required": 1})
    dev = environment_create(actor=admin, name="dev")
    assert prod.load_tests == Environment.LoadTests.APPROVAL
    assert dev.load_tests == Environment.LoadTests.ALLOWED


def test_where_load_tests_need_approval_another_person_approves_before_it_runs(repository, requester, approver, admin):
    deployment = running(repository, admin, fake_target("prod", Environment.LoadTests.APPROVAL))
    test = load_test_create(deployment=deployment, actor=requester, model="add_sub", concurrency=[1, 2])
    assert test.status == LoadTest.Status.AWAITING_APPROVAL
    with pytest.raises(NotAllowed, match="needs the approver role"):
        load_test_approve(test=test, actor=requester)
    approved = load_test_approve(test=test, actor=approver)
    assert approved.status == LoadTest.Status.QUEUED
    assert approved.approved_by == approver
    assert AuditEvent.objects.filter(action="loadtest.approved", actor_name="approver").exists()
    with pytest.raises(WrongState, match="not awaiting approval"):
        load_test_approve(test=test, actor=approver)


# --- what is asked ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "says"),
    [
        ({"concurrency": [4, 2]}, "concurrency", "grow"),
        ({"concurrency": [1, 1]}, "concurrency", "each once"),
        ({"concurrency": []}, "concurrency", "list of client counts"),
        ({"concurrency": [1, 1000]}, "concurrency", "from 1 to 64"),
        ({"concurrency": [True]}, "concurrency", "whole number"),
        ({"window_seconds": 0.1}, "window_seconds", "from 0.5 to 30"),
        ({"window_requests": 3}, "window_requests", "from 10"),
        ({"max_trials": 2}, "max_trials", "from 3 to 20"),
        ({"max_requests": 0}, "max_requests", "from 1"),
        ({"max_seconds": 10**6}, "max_seconds", "to 600"),
        ({"model": "missing"}, "model", "serves no model 'missing'"),
        ({"version": "7"}, "version", "no version 7"),
        ({"inputs": "ones"}, "inputs", "one of random, zeros, saved"),
        ({"inputs": "saved"}, "saved_request", "Pick the saved request"),
        ({"inputs": "saved", "saved_request": "nope"}, "saved_request", "no saved request 'nope'"),
    ],
)
def test_what_a_load_test_asks_for_is_checked_and_nothing_is_saved_when_wrong(repository, deployer, fields, path, says):
    deployment = running(repository, deployer, fake_target())
    arguments = {"model": "add_sub", "concurrency": [1, 2], **fields}
    with pytest.raises(DomainError, match=says) as refused:
        load_test_create(deployment=deployment, actor=deployer, **arguments)
    assert refused.value.path == path
    assert not LoadTest.objects.exists()


def test_a_saved_request_for_another_model_is_refused_by_name(repository, deployer):
    deployment = running(repository, deployer, fake_target())
    GoldenRequest.objects.create(deployment=deployment, name="other", request={"model": "identity", "inputs": []})
    with pytest.raises(DomainError, match="is for identity, not add_sub"):
        load_test_create(
            deployment=deployment,
            actor=deployer,
            model="add_sub",
            concurrency=[1],
            inputs="saved",
            saved_request="other",
        )


def test_a_deployment_that_is_not_running_cannot_be_loaded(repository, deployer):
    deployment = deployment_create(name="later", repository=repository, target=fake_target(), actor=deployer)
    with pytest.raises(WrongState, match="nothing answers yet"):
        load_test_create(deployment=deployment, actor=deployer, model="add_sub", concurrency=[1])


# --- cancel, and a lost worker ---------------------------------------------------------


def test_a_waiting_test_is_cancelled_at_once_and_a_running_one_is_asked_to_stop(repository, deployer):
    deployment = running(repository, deployer, fake_target())
    waiting = load_test_create(deployment=deployment, actor=deployer, model="add_sub", concurrency=[1])
    assert load_test_cancel(test=waiting, actor=deployer).status == LoadTest.Status.CANCELLED
    with pytest.raises(WrongState, match="cancelled already"):
        load_test_cancel(test=waiting, actor=deployer)

    busy = load_test_create(deployment=deployment, actor=deployer, model="add_sub", concurrency=[1])
    LoadTest.objects.filter(pk=busy.pk).update(status=LoadTest.Status.RUNNING)
    asked = load_test_cancel(test=busy, actor=deployer)
    assert asked.status == LoadTest.Status.RUNNING
    assert asked.cancel_requested
    assert AuditEvent.objects.filter(action="loadtest.cancel_requested").count() == 1


def test_a_test_whose_worker_stopped_beating_is_failed_with_its_points_kept(repository, deployer, settings):
    deployment = running(repository, deployer, fake_target())
    test = load_test_create(deployment=deployment, actor=deployer, model="add_sub", concurrency=[1, 2])
    old = timezone.now() - timedelta(seconds=settings.LOADTEST_STALE_AFTER + 5)
    LoadTest.objects.filter(pk=test.pk).update(
        status=LoadTest.Status.RUNNING, heartbeat_at=old, points=[point(1, 100.0, 5.0)]
    )
    assert load_tests_settle()["load_tests_lost"] == 1
    test.refresh_from_db()
    assert test.status == LoadTest.Status.FAILED
    assert "its worker stopped" in test.error
    assert len(test.points) == 1
    assert AuditEvent.objects.filter(action="loadtest.failed").exists()
    assert load_tests_settle()["load_tests_lost"] == 0


# --- results: CSV, charts, comparison, pages, API ----------------------------------------------


def test_the_csv_has_perf_analyzers_columns_with_latencies_in_microseconds(repository, deployer):
    deployment = running(repository, deployer, fake_target())
    test = finished(deployment, deployer, [point(1, 100.0, 5.0), point(2, 180.0, 6.5)])
    rows = list(csv.DictReader(io.StringIO(points_csv(test))))
    assert list(rows[0])[:11] == [
        "Concurrency",
        "Inferences/Second",
        "Avg latency",
        "p50 latency",
        "p90 latency",
        "p95 latency",
        "p99 latency",
        "Server Queue",
        "Server Compute Input",
        "Server Compute Infer",
        "Server Compute Output",
    ]
    assert rows[1]["Concurrency"] == "2"
    assert rows[1]["p95 latency"] == "6500"
    assert rows[1]["Server Compute Infer"] == "900.0"


def test_two_runs_compare_point_by_point_with_ratios(repository, deployer):
    deployment = running(repository, deployer, fake_target())
    before = finished(deployment, deployer, [point(1, 100.0, 10.0), point(8, 100.0, 80.0)], "before")
    after = finished(deployment, deployer, [point(1, 95.0, 10.5), point(8, 600.0, 14.0, batch=7.6)], "after")
    rows = curves.side_by_side(before, after)
    assert [row["concurrency"] for row in rows] == [1, 8]
    assert rows[1]["throughput_ratio"] == 6.0
    assert rows[1]["p95_ratio"] == 0.17
    chart = curves.chart("curve", [before, after])
    assert set(chart["series"]) == {before.title, after.title}


def test_the_pages_show_points_charts_csv_and_comparison(client, repository, deployer):
    deployment = running(repository, deployer, fake_target())
    before = finished(deployment, deployer, [point(1, 100.0, 10.0), point(8, 100.0, 80.0, stable=False)], "before")
    after = finished(deployment, deployer, [point(1, 95.0, 10.5), point(8, 600.0, 14.0, batch=7.6)], "after")
    client.force_login(deployer)
    page = client.get(f"/loadtests/{before.pk}/").content.decode()
    assert "{%" not in page
    assert "{{" not in page
    assert "unstable" in page
    assert f'href="/loadtests/{before.pk}/points.csv"' in page
    assert f'<option value="{after.pk}">' in page
    assert client.get(f"/loadtests/{before.pk}/charts/split.json").json()["series"]["queue"] == [[1, 500.0], [8, 500.0]]
    assert client.get(f"/loadtests/{before.pk}/charts/nothing.json").status_code == 404
    compared = client.get(f"/loadtests/compare/?a={before.pk}&b={after.pk}").content.decode()
    assert "6.0" in compared
    assert "7.6" in compared
    detail = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert f"/loadtests/{after.pk}/" in detail
    assert "Load test…" in detail


def test_a_cancel_from_the_page_needs_its_csrf_token(repository, deployer):
    from django.test import Client

    deployment = running(repository, deployer, fake_target())
    test = load_test_create(deployment=deployment, actor=deployer, model="add_sub", concurrency=[1])
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(deployer)
    assert strict.post(f"/loadtests/{test.pk}/cancel/").status_code == 403
    test.refresh_from_db()
    assert test.status == LoadTest.Status.QUEUED


def test_pipelines_ask_for_a_load_test_follow_it_and_cancel_it_through_the_api(
    client, repository, deployer, viewer, outsider, token_for
):
    deployment = running(repository, deployer, fake_target())
    url = f"/api/v1/deployments/{deployment.pk}/loadtests"
    bad = client.post(
        url,
        {"model": "add_sub", "concurrency": [1, 2], "windows": 3},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == "windows"
    body = {"model": "add_sub", "concurrency": [1, 2, 4, 8], "window_seconds": 1, "max_requests": 5000}
    assert (
        client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=token_for(viewer)).status_code == 403
    )
    assert (
        client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=token_for(outsider)).status_code
        == 404
    )
    created = client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=token_for(deployer))
    assert created.status_code == 201, created.content
    test = created.json()
    assert test["status"] == "queued"
    assert test["concurrency"] == [1, 2, 4, 8]
    assert test["max_requests"] == 5000
    LoadTest.objects.filter(pk=test["id"]).update(points=[point(1, 100.0, 5.0)])
    read = client.get(f"/api/v1/loadtests/{test['id']}", HTTP_AUTHORIZATION=token_for(viewer)).json()
    assert read["points"][0]["p95_ms"] == 5.0
    assert read["points"][0]["server"]["batch"] == 1.0
    assert client.get(f"/api/v1/loadtests/{test['id']}", HTTP_AUTHORIZATION=token_for(outsider)).status_code == 404
    exported = client.get(f"/api/v1/loadtests/{test['id']}/csv", HTTP_AUTHORIZATION=token_for(viewer))
    assert exported["Content-Type"].startswith("text/csv")
    assert exported.content.decode().startswith("Concurrency,Inferences/Second")
    cancelled = client.post(f"/api/v1/loadtests/{test['id']}/cancel", HTTP_AUTHORIZATION=token_for(deployer))
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/loadtests/{test['id']}/cancel", HTTP_AUTHORIZATION=token_for(deployer))
    assert again.status_code == 409


def test_the_api_document_describes_load_tests_and_config_searches(client, viewer, token_for):
    document = client.get("/api/v1/openapi.json", HTTP_AUTHORIZATION=token_for(viewer)).json()
    assert "/api/v1/deployments/{deployment_id}/loadtests" in document["paths"]
    assert "/api/v1/loadtests/{test_id}/cancel" in document["paths"]
    assert "/api/v1/config-searches/{search_id}/revision" in document["paths"]
    status = document["components"]["schemas"]["LoadTest"]["properties"]["status"]
    assert set(status["enum"]) == {"awaiting_approval", "queued", "running", "succeeded", "failed", "cancelled"}


# --- the measurement rules ------------------------------------------------------------


def window(throughput: float, mean_ms: float) -> generator.Window:
    w = generator.Window(started=0.0, ended=1.0)
    w.latencies_ms = [mean_ms] * int(throughput)
    return w


def test_a_point_is_stable_once_its_last_three_windows_agree_within_the_tolerance():
    assert not generator.stable([window(100, 10), window(100, 10)], 0.1)
    assert generator.stable([window(50, 30), window(100, 10), window(105, 10.5), window(95, 9.6)], 0.1)
    assert not generator.stable([window(100, 10), window(100, 10), window(125, 10)], 0.1)
    assert not generator.stable([window(100, 10), window(100, 10), window(100, 13)], 0.1)


def test_the_server_split_is_per_request_and_gives_the_average_batch():
    before = {
        "success_count": 100,
        "fail_count": 0,
        "queue_ns": 1_000_000,
        "compute_input_ns": 0,
        "compute_infer_ns": 5_000_000,
        "compute_output_ns": 0,
        "inference_count": 100,
        "execution_count": 100,
    }
    after = {
        **before,
        "success_count": 300,
        "queue_ns": 5_000_000,
        "compute_infer_ns": 9_000_000,
        "inference_count": 300,
        "execution_count": 125,
    }
    split = generator.server_split(before, after)
    assert split["requests"] == 200
    assert split["queue_us"] == 20.0
    assert split["compute_infer_us"] == 20.0
    assert split["batch"] == 8.0
    assert generator.server_split(None, after) == {}


def test_percentiles_come_from_every_answer_of_the_windows():
    figures = generator.percentiles(list(range(1, 101)))
    assert figures["p50"] == pytest.approx(50.5)
    assert figures["p99"] == pytest.approx(99.01)


# --- config searches -----------------------------------------------------------------------


def test_a_config_rewrite_changes_batching_and_instances_and_keeps_the_rest():
    original = (
        "# the author's note\n"
        'name: "m"\n'
        "max_batch_size: 8\n"
        "instance_group [ { kind: KIND_GPU count: 1 gpus: [0] } ]\n"
        "dynamic_batching { preferred_batch_size: [4, 8] }  # tuned by hand\n"
        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
    )
    text = configs.rewrite(original, {"dynamic_batching": True, "max_queue_delay_us": 500, "instances": 2})
    assert text.startswith('# the author\'s note\nname: "m"\nmax_batch_size: 8\ninput [')
    assert "instance_group [ { count: 2 gpus: 0 kind: KIND_GPU } ]" in text
    assert (
        "dynamic_batching { preferred_batch_size: 4 preferred_batch_size: 8 max_queue_delay_microseconds: 500 }" in text
    )
    off = configs.rewrite(text, configs.default_grid(8)[1])
    assert "dynamic_batching" not in off
    assert "count: 2" in off


@pytest.mark.parametrize(
    ("grid", "batch", "says"),
    [
        ([{"dynamic_batching": True}], 0, "needs max_batch_size above 0"),
        ([{"instances": 9}], 8, "instances is from 1 to 8"),
        ([{"max_queue_delay_us": -1, "dynamic_batching": True}], 8, "max_queue_delay_us"),
        ([{"instances": 1}, {"instances": 1}], 8, "repeats an earlier config"),
        ([{"instance": 1}], 8, "is {dynamic_batching"),
    ],
)
def test_a_grid_is_checked_against_what_the_model_can_do(grid, batch, says):
    with pytest.raises(DomainError, match=says):
        configs.clean_grid(grid, batch)


def test_a_model_that_cannot_batch_only_tries_instance_counts():
    assert {c["dynamic_batching"] for c in configs.default_grid(0)} == {False}


def test_the_best_within_budget_and_the_best_throughput_can_differ():
    results = [
        {"points": [point(1, 90.0, 12.0), point(8, 95.0, 85.0)]},
        {"points": [point(1, 88.0, 12.0), point(8, 600.0, 40.0, batch=7.9)]},
        {"points": [point(1, 80.0, 20.0), point(16, 900.0, 150.0, batch=15.0)]},
        {"points": [point(8, 2000.0, 5.0, errors=3)]},
    ]
    best = best_of(results, budget_ms=100.0)
    assert best["latency"] == {"index": 1, "concurrency": 8, "throughput": 600.0}
    assert best["throughput"] == {"index": 2, "concurrency": 16, "throughput": 900.0}
    assert best_of(results[:1], budget_ms=1.0) == {
        "latency": None,
        "throughput": {"index": 0, "concurrency": 8, "throughput": 95.0},
    }


def test_a_config_search_needs_the_local_target_and_says_so_when_it_is_off(repository, deployer, settings):
    target = fake_target()
    settings.LOCAL_TARGET_ENABLED = False
    with pytest.raises(WrongState, match="LOCAL_TARGET_ENABLED=false"):
        config_search_create(actor=deployer, repository=repository, model="add_sub", target=target)
    settings.LOCAL_TARGET_ENABLED = True
    with pytest.raises(DomainError, match="runs on a local target"):
        config_search_create(actor=deployer, repository=repository, model="add_sub", target=target)
    assert not ConfigSearch.objects.exists()


def test_the_search_page_says_why_it_cannot_run_where_the_local_target_is_off(client, repository, deployer, settings):
    deployment = running(repository, deployer, fake_target())
    settings.LOCAL_TARGET_ENABLED = False
    client.force_login(deployer)
    page = client.get(f"/deployments/{deployment.pk}/config-search/new/").content.decode()
    assert "LOCAL_TARGET_ENABLED=false" in page
    assert "Start the search" not in page


def test_the_form_of_a_deployment_that_is_not_running_offers_no_button_but_the_way_back(client, repository, deployer):
    deployment = deployment_create(name="later", repository=repository, target=fake_target(), actor=deployer)
    client.force_login(deployer)
    page = client.get(f"/deployments/{deployment.pk}/loadtests/new/").content.decode()
    assert "nothing answers to load yet" in page
    assert f'href="/deployments/{deployment.pk}/"' in page
    assert "Start the load test" not in page
