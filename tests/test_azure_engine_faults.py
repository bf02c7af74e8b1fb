"""The engine under Azure's real behaviour, through the real azure-ai-ml
against the v2 fake with its faults: a slow upload is heartbeated, not
re-driven; observation rounds over a drifted endpoint write no audit event;
a 0%-traffic deployment that fails its probe is judged on its own."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.urls import reverse
from playwright.sync_api import expect

from deployments.health.poller import health_round
from deployments.models import AuditEvent, Deployment, Operation, Registration
from deployments.services.deployments import deployment_create, deployment_redeploy
from deployments.services.operations import operation_execute, reconcile
from tests.azure import data_plane, fake_v2, share_one_triton  # noqa: F401 - fixtures
from tests.browser import page  # noqa: F401 - the fixture
from tests.conftest import PASSWORD
from tests.engine import run_pending
from tests.test_azureml_v2 import v2_target
from tests.test_pages_as_seen import SHOTS, TEMPLATE_SYNTAX, VISIBLE_TEXT
from tests.test_revision_browser import health_round_and_close
from workers.targets.azure.common import azure_model_name
from workers.targets.azureml_v2.adapter import azure_deployment_name

pytestmark = [pytest.mark.azure]


def versions_repository(admin, versions: int, tmp_path):
    """add_sub with `versions` version folders, all served: one more file to upload each."""
    import shutil

    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES

    root = tmp_path / "add_sub_versions"
    shutil.copytree(EXAMPLES / "add_sub", root)
    for version in range(2, versions + 1):
        shutil.copytree(root / "add_sub" / "1", root / "add_sub" / str(version))
    config = root / "add_sub" / "config.pbtxt"
    config.write_text(config.read_text() + "version_policy: { all: { } }\n")
    return repository_load_example(path=root, actor=admin).repository


@pytest.mark.django_db(transaction=True)  # the operation runs in a thread of its own, as in a worker
def test_an_upload_longer_than_the_stale_threshold_is_heartbeated_not_re_driven(
    tmp_path,
    client,
    admin,
    repository,
    fake_v2,  # noqa: F811
    data_plane,  # noqa: F811
    settings,
):
    # In CI: a heartbeat every 0.5 s, each blob request 2.5 s, so the upload
    # outlasts several stale periods. bench/chaos_matrix.sh runs it with the
    # production threshold (60 s) and a five-minute upload.
    settings.OPERATION_STALE_AFTER = int(os.environ.get("CHAOS_STALE_AFTER", "2"))
    versions = int(os.environ.get("CHAOS_UPLOAD_VERSIONS", "1"))
    if versions > 1:  # more files: more requests to slow down
        repository = versions_repository(admin, versions, tmp_path)
    share_one_triton(fake_v2, data_plane)
    per_request = float(os.environ.get("CHAOS_UPLOAD_PER_REQUEST", "2.5"))
    fake_v2.slow_upload(per_request)
    target = v2_target(admin, fake_v2)
    deployment = deployment_create(name="slow-upload", repository=repository, target=target, actor=admin)
    operation = deployment.operations.get()

    def work():
        try:
            operation_execute(operation_id=operation.pk, task_id="w1")
        finally:
            connection.close()  # this thread's own

    worker = threading.Thread(target=work)
    worker.start()
    seen_steps, reaped, pages = set(), 0, []
    client.force_login(admin)
    while worker.is_alive():
        reaped += reconcile()["reaped"]  # the reconciler's rounds while the upload runs
        operation.refresh_from_db()
        seen_steps.update(step["message"] for step in operation.steps)
        if operation.steps and "uploading" in operation.steps[-1]["message"]:
            pages.append(client.get(reverse("deployment", args=[deployment.pk])).content.decode())
        time.sleep(0.5)
    worker.join()
    operation.refresh_from_db()
    deployment.refresh_from_db()
    uploads = fake_v2.faults_fired("slow_upload")
    assert uploads, (operation.status, operation.error, operation.steps)
    lasted = uploads[-1].at - uploads[0].at + per_request
    print(f"upload: {len(uploads)} blob requests of {per_request:g} s each, {lasted:.0f} s in all")
    assert len(uploads) >= 3  # the upload really outlasted the stale threshold
    assert reaped == 0
    assert (operation.status, operation.attempts) == (Operation.Status.SUCCEEDED, 1)
    assert any(step.startswith("Registering the repository") for step in seen_steps)
    # Its page showed the upload going on, and the worker alive, while it lasted.
    assert len(pages) >= 2
    assert all("uploading 0." in html and "On this step for" in html for html in pages)
    assert fake_v2.model_versions() == [f"{azure_model_name(repository.line.name)}:1"]
    assert fake_v2.create_calls == 1
    assert Registration.objects.count() == 1
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason


@pytest.mark.django_db
def test_a_drifted_endpoint_is_observed_twenty_times_without_an_audit_event_and_its_canary_judged_alone(
    admin,
    repository,
    fake_v2,  # noqa: F811
    data_plane,  # noqa: F811
):
    share_one_triton(fake_v2, data_plane)
    target = v2_target(admin, fake_v2)
    deployment = deployment_create(name="drifted", repository=repository, target=target, actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    first = azure_deployment_name(deployment.spec_digest)
    deployment_redeploy(deployment=deployment, actor=admin, changes={"resources": {"cpu_cores": 2}})
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    second = azure_deployment_name(deployment.spec_digest)
    reconcile()
    health_round()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.DEGRADED
    assert deployment.status_reason.startswith(f"drift: the desired spec runs as {second} at 0% of the traffic")
    audited = AuditEvent.objects.filter(action="deployment.status_changed").count()
    probes = len(fake_v2.scoring_requests)
    reconcile()
    assert len(fake_v2.scoring_requests) == probes  # the control plane only: the poller probes Triton
    for _ in range(20):
        reconcile()
        health_round()
    assert AuditEvent.objects.filter(action="deployment.status_changed").count() == audited
    # Probed through the endpoint with the azureml-model-deployment header: each on its own.
    assert {r.deployment for r in fake_v2.scoring_requests} >= {first, second}  # the split sends all to the first

    fake_v2.turn_unhealthy("drifted", second)
    health_round()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.DEGRADED  # clients still reach the healthy one
    assert f"{second} (0% of the traffic) is unhealthy" in deployment.status_reason
    assert deployment.observed["deployments"][first]["status"] == Deployment.Status.HEALTHY
    assert deployment.observed["deployments"][second]["status"] == Deployment.Status.UNHEALTHY


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_deployment_page_shows_each_azure_deployment_with_its_own_health(
    page,  # noqa: F811
    admin,
    repository,
    fake_v2,  # noqa: F811
    data_plane,  # noqa: F811
):
    share_one_triton(fake_v2, data_plane)
    deployment = deployment_create(name="canary", repository=repository, target=v2_target(admin, fake_v2), actor=admin)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    first = azure_deployment_name(deployment.spec_digest)
    deployment_redeploy(deployment=deployment, actor=admin, changes={"resources": {"cpu_cores": 2}})
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    second = azure_deployment_name(deployment.spec_digest)
    fake_v2.turn_unhealthy("canary", second)
    reconcile()
    with ThreadPoolExecutor(1) as pool:  # outside Playwright's event loop
        pool.submit(health_round_and_close).result()

    page.goto(f"/login/?next=/deployments/{deployment.pk}/")
    page.get_by_label("Username").fill(admin.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    rows = page.locator("section", has=page.get_by_role("heading", name="Traffic")).locator("tbody tr")
    expect(rows.filter(has_text=first).locator(".status")).to_have_text("healthy")
    expect(rows.filter(has_text=second).locator(".status")).to_have_text("unhealthy")
    expect(rows.filter(has_text=second)).to_contain_text("desired spec")
    expect(page.locator("#live .status").first).to_have_text("degraded")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "deployment-v2-canary-unhealthy.png"), full_page=True)
    text = page.evaluate(VISIBLE_TEXT)
    assert not TEMPLATE_SYNTAX.search(text)
