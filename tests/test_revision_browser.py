"""Moving a running deployment to another revision of its line, in real
Chromium against a real local Triton."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from deployments.models import Deployment, ModelRepository, Operation
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_upload
from tests import archives
from tests.browser import page  # noqa: F401 - the fixture
from tests.conftest import PASSWORD, make_user
from tests.engine import local_target, run_pending
from tests.test_pages_as_seen import SHOTS, TEMPLATE_SYNTAX, VISIBLE_TEXT
from workers.targets.local import adapter as local

pytestmark = [pytest.mark.browser, pytest.mark.triton, pytest.mark.django_db(transaction=True)]


def second_revision() -> dict[str, bytes]:
    """The add_sub example with a second version folder, both served (Triton's
    default policy would serve the latest only)."""
    files = archives.add_sub_files()
    files["add_sub/2/model.py"] = files["add_sub/1/model.py"]
    files["add_sub/config.pbtxt"] += b"version_policy: { all: { } }\n"
    return files


def health_round_and_close():
    from django.db import connection

    from deployments.health.poller import health_round

    try:
        health_round()
    finally:
        connection.close()


def test_a_deployer_moves_a_running_deployment_to_the_next_revision(page, django_user_model, cleanup, tmp_path):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    deployer = make_user(django_user_model, "deployer", "deployer")
    first = repository_upload(
        name="add-sub",
        archive=SimpleUploadedFile("add-sub.zip", archives.make_zip(archives.add_sub_files())),
        filename="add-sub.zip",
        actor=deployer,
    ).repository
    assert first.revision == 1
    deployment = deployment_create(name="calc", repository=first, target=local_target(), actor=deployer)
    cleanup(deployment)
    assert run_pending(deployment).status == Operation.Status.SUCCEEDED
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    assert deployment.repository_revision == 1
    digest_before, address = deployment.spec_digest, deployment.scoring_uri

    page.goto("/login/?next=/repositories/")
    page.get_by_label("Username").fill("deployer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # The second revision, uploaded under the same name from the browser.
    archive = tmp_path / "add-sub.zip"
    archive.write_bytes(archives.make_zip(second_revision()))
    page.get_by_label("Archive").set_input_files(str(archive))
    page.get_by_role("button", name="Upload and validate").click()
    expect(page.get_by_text("recorded as revision 2: valid")).to_be_visible()
    second = ModelRepository.objects.get(line=first.line, revision=2)

    # The deployment's page offers r2 as newer; choosing it shows the diff.
    page.goto(f"/deployments/{deployment.pk}/")
    expect(page.locator("#live .status").first).to_have_text("healthy")
    revision = page.get_by_label("Revision")
    expect(revision.locator("option")).to_have_text(["r2 (newer)"])
    page.screenshot(path=str(SHOTS / "deployment-before-update.png"), full_page=True)
    revision.select_option(str(second.pk))
    page.get_by_role("button", name="Update to revision…").click()
    expect(page).to_have_url(f"/deployments/{deployment.pk}/revision/?repository={second.pk}")
    main = page.locator("main")
    expect(page.get_by_role("heading", name="Update calc to another revision")).to_be_visible()
    expect(main).to_contain_text("It runs add-sub r1 on local-dev (dev).")
    expect(page.get_by_role("heading", name="From r1 to r2")).to_be_visible()
    # v1's files are the same, but its config is not: changed too.
    expect(main.locator(".repo-diff li")).to_have_text(
        ["added add_sub v2", "changed add_sub v1", "0 versions unchanged"]
    )
    expect(main.locator("pre.config-diff")).to_contain_text("+version_policy: { all: { } }")
    expect(main).to_contain_text("r2 is deployed now and takes over behind the same address once it is ready.")
    expect(page.get_by_role("button", name="Ask to update to revision 2")).to_have_count(0)
    page.screenshot(path=str(SHOTS / "revision-diff.png"), full_page=True)
    assert not TEMPLATE_SYNTAX.findall(page.evaluate(VISIBLE_TEXT))

    # Confirming queues the redeploy: back on the deployment's page, it is in progress.
    page.get_by_role("button", name="Update to revision 2").click()
    expect(page).to_have_url(f"/deployments/{deployment.pk}/")
    expect(main).to_contain_text("Update to revision 2 requested.")
    deployment.refresh_from_db()
    assert deployment.repository_id == second.pk
    assert deployment.repository_revision == 2
    assert deployment.spec_digest != digest_before
    expect(page.locator("#live .status").first).not_to_have_text("healthy")

    # A worker's turn, in this process; the open page follows without a reload.
    operation = run_pending(deployment)
    assert operation.status == Operation.Status.SUCCEEDED, operation.error
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    assert local.read_record(deployment.pk)["spec_digest"] == deployment.spec_digest
    assert deployment.scoring_uri == address
    # The health poller's round runs its own event loop: not in this thread, where Playwright's runs.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(health_round_and_close).result()
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    assert deployment.observed["models"] == [
        {"name": "add_sub", "version": version, "ready": True, "reason": ""} for version in ("1", "2")
    ]
    live = page.locator("#live")
    expect(live.locator(".status").first).to_have_text("healthy", timeout=30_000)
    rows = live.locator("table.readiness tbody tr")
    expect(rows).to_have_count(2)
    for row, version in zip((rows.nth(0), rows.nth(1)), ("1", "2"), strict=True):
        expect(row.locator("td")).to_have_text(["add_sub", version, "ready", ""])

    # Reloaded, the spec says r2 and the new digest; r1 is now the one to go back to.
    page.reload()
    spec = page.locator("section", has=page.get_by_role("heading", name="Spec"))
    expect(spec).to_contain_text(f"add-sub r2 {second.digest[:12]}")
    expect(spec).to_contain_text(deployment.spec_digest)
    expect(page.get_by_label("Revision").locator("option")).to_have_text(["r1"])
    page.screenshot(path=str(SHOTS / "deployment-after-update.png"), full_page=True)
    assert not TEMPLATE_SYNTAX.findall(page.evaluate(VISIBLE_TEXT))
