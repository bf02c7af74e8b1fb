"""The dashboard as a person uses it, in real Chromium."""

import pytest
from playwright.sync_api import expect

from deployments.models import AuditEvent
from tests.browser import page  # noqa: F401 - the fixture
from tests.conftest import PASSWORD
from tests.test_sso import provider, sso  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_user_signs_in_sees_the_overview_and_signs_out(page, viewer):  # noqa: F811
    page.goto("/")
    expect(page).to_have_url("/login/?next=/")
    page.get_by_label("Username").fill("viewer")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Deployments")
    expect(page.get_by_text("user.login", exact=True)).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == [
        "user.login_failed",
        "user.login",
        "user.logout",
    ]


def test_a_token_created_with_htmx_shows_once(page, viewer):  # noqa: F811
    page.goto("/login/")
    page.get_by_label("Username").fill("viewer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto("/profile/")
    page.get_by_label("Token name").fill("release pipeline")
    page.get_by_role("button", name="Create token").click()
    key_box = page.get_by_label("New API token")
    expect(key_box).to_be_visible()
    assert key_box.input_value().startswith("tdb_")
    expect(page.get_by_role("cell", name="release pipeline")).to_be_visible()
    page.reload()
    expect(page.get_by_label("New API token")).to_have_count(0)


def test_a_deployer_uploads_an_archive_and_sees_its_models(page, django_user_model, tmp_path):  # noqa: F811
    from tests import archives
    from tests.conftest import make_user

    make_user(django_user_model, "deployer", "deployer")
    archive = tmp_path / "ensemble.zip"
    archive.write_bytes(archives.make_zip(archives.tree_of(archives.EXAMPLES / "ensemble")))
    page.goto("/login/?next=/repositories/")
    page.get_by_label("Username").fill("deployer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Model repositories")).to_be_visible()
    expect(page.get_by_text("No repositories yet")).to_be_visible()

    page.get_by_label("Archive").set_input_files(str(archive))
    page.get_by_role("button", name="Upload and validate").click()
    expect(page.get_by_role("heading", name="add_then_double")).to_be_visible()
    expect(page.get_by_role("heading", name="double", exact=True)).to_be_visible()
    expect(page.get_by_text("recorded as revision 1: valid")).to_be_visible()
    expect(page.get_by_text("No findings")).to_be_visible()

    page.get_by_role("link", name="Repositories").first.click()
    expect(page.get_by_role("link", name="ensemble")).to_be_visible()


@pytest.mark.postgres
@pytest.mark.redis
def test_a_deployer_deploys_watches_it_go_healthy_and_deletes_it(page, django_user_model, celery_worker):  # noqa: F811
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.conftest import make_user
    from tests.engine import local_target
    from workers.targets.local import adapter as local
    from workers.targets.local import processes as local_processes

    deployer = make_user(django_user_model, "deployer", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    target = local_target()
    page.goto(f"/login/?next=/deployments/new/%3Frepository%3D{repository.pk}")
    page.get_by_label("Username").fill("deployer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Name").fill("add-sub")
    page.get_by_label("Target").select_option(str(target.pk))
    page.get_by_role("button", name="Deploy").click()

    live = page.locator("#live")
    expect(live.locator(".status").first).to_have_text("healthy", timeout=120_000)
    expect(live).to_contain_text("All 1 model version(s) loaded")
    expect(live.get_by_role("cell", name="add_sub")).to_be_visible()
    scoring = live.locator("dd code").first.inner_text()
    assert scoring.startswith("http://127.0.0.1:")

    page.get_by_role("button", name="Delete…").click()
    expect(page.locator("main")).to_contain_text("This stops its server now")
    page.get_by_role("button", name="Delete now").click()
    expect(page.locator("#live .status").first).to_have_text("deleted", timeout=60_000)
    deployment_id = int(page.url.rstrip("/").split("/")[-1])
    assert local_processes.processes_mentioning(f"{local.workdir(deployment_id)}/") == []


def test_the_deploy_form_shows_the_fields_of_the_mode_and_target_chosen(page, django_user_model, live_server):  # noqa: F811
    from deployments.models import Deployment, Target
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.conftest import make_user
    from tests.engine import local_target

    deployer = make_user(django_user_model, "deployer", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    local = local_target()
    aks = Target.objects.create(
        name="aks",
        kind="azureml_v1_aks",
        environment=local.environment,
        settings={"compute_name": "aks-gpu", "default_resources": {"gpu_cores": 1}},
    )
    managed = Target.objects.create(
        name="managed",
        kind="azureml_v2_managed",
        environment=local.environment,
        settings={"instance_type": "Standard_NC6s_v3", "instance_count": 2},
    )
    script = "def init():\n    pass\n\n\ndef run(data):\n    return data"

    def sign_in(tab):
        tab.goto(f"/login/?next=/deployments/new/%3Frepository%3D{repository.pk}")
        tab.get_by_label("Username").fill("deployer")
        tab.get_by_label("Password").fill(PASSWORD)
        tab.get_by_role("button", name="Sign in").click()
        expect(tab.get_by_role("heading", name="New deployment")).to_be_visible()

    sign_in(page)
    entry, gpu = page.get_by_label("Entry script"), page.get_by_label("GPU cores")
    expect(entry).to_be_hidden()  # Triton mode, no target yet
    expect(gpu).to_be_hidden()
    page.get_by_label("Name").fill("echo")
    page.get_by_label("Target").select_option(str(local.pk))
    page.get_by_label("Mode").select_option("entry_script")
    expect(entry).to_be_visible()
    expect(page.get_by_label("Worker processes")).to_be_visible()
    expect(gpu).to_be_hidden()  # the local kind takes no resources
    expect(page.get_by_text("Local Triton targets take no resources per deployment")).to_be_visible()
    entry.fill(script)
    page.get_by_label("Pip packages").fill("numpy")

    page.get_by_label("Target").select_option(str(aks.pk))
    expect(gpu).to_be_visible()
    expect(gpu).to_have_attribute("placeholder", "1")  # the target's default
    expect(entry).to_have_value(script)  # kept as typed across the re-render
    expect(page.get_by_label("Pip packages")).to_have_value("numpy")
    # Emptied, then hidden by the switch to Triton mode below: the browser must not refuse the form over it.
    page.get_by_label("Worker processes").fill("")

    page.get_by_label("Target").select_option(str(managed.pk))
    expect(gpu).to_be_hidden()
    expect(entry).to_be_hidden()  # no entry-script mode on SDK v2
    expect(page.get_by_text("each runs on 2 instances of Standard_NC6s_v3")).to_be_visible()
    expect(page.get_by_text("serve in Triton mode only")).to_be_visible()

    page.get_by_label("Mode").select_option("triton")
    page.get_by_label("Target").select_option(str(local.pk))
    expect(entry).to_be_hidden()
    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_text("Deployment “echo” requested.")).to_be_visible()
    deployment = Deployment.objects.get(name="echo")
    assert (deployment.target_id, deployment.mode, deployment.entry_script) == (local.pk, "triton", "")
    assert deployment.pip_packages == []

    # Without JavaScript every field shows, for whatever mode and target are chosen.
    plain = page.context.browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        tab = plain.new_page()
        sign_in(tab)
        for label in ("Entry script", "Pip packages", "Worker processes", "GPU cores", "CPU cores", "Memory (GB)"):
            expect(tab.get_by_label(label)).to_be_visible()
    finally:
        plain.close()


def test_the_overview_shows_a_status_change_without_a_reload(page, django_user_model):  # noqa: F811
    from deployments.models import Deployment
    from deployments.services.deployments import deployment_create
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.conftest import make_user
    from tests.engine import local_target

    deployer = make_user(django_user_model, "deployer", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    deployment = deployment_create(name="watched", repository=repository, target=local_target(), actor=deployer)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.HEALTHY)
    page.goto("/login/")
    page.get_by_label("Username").fill("deployer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    tile = page.locator("#fleet article.tile", has_text="watched")
    expect(tile).to_contain_text("healthy")
    page.evaluate("window.__marker = 'same page'")
    Deployment.objects.filter(pk=deployment.pk).update(
        status=Deployment.Status.UNHEALTHY, status_reason="add_sub v1 UNAVAILABLE: unloaded"
    )
    expect(tile).to_contain_text("unhealthy", timeout=15_000)
    expect(tile).to_contain_text("add_sub v1 UNAVAILABLE: unloaded")
    # A filter swaps the tiles in place, goes into the URL, and the refresh keeps it.
    page.get_by_label("Status").select_option("healthy")
    expect(page).to_have_url("/?environment=&status=healthy&target=")
    expect(page.locator("#fleet")).to_contain_text("No live deployment matches these filters")
    expect(page.locator("#live")).to_have_attribute("hx-get", "/?status=healthy")
    assert page.evaluate("window.__marker") == "same page"  # updated in place, never reloaded


def test_the_deployment_page_keeps_every_section_current_and_leaves_edits_alone(page, django_user_model):  # noqa: F811
    from deployments.audit import audit
    from deployments.models import Deployment, Operation
    from deployments.services.deployments import deployment_create
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.conftest import make_user
    from tests.engine import local_target

    deployer = make_user(django_user_model, "deployer", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    deployment = deployment_create(name="kept", repository=repository, target=local_target(), actor=deployer)
    page.goto("/login/")
    page.get_by_label("Username").fill("deployer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/deployments/{deployment.pk}/")
    page.evaluate("window.__marker = 'same page'")
    expect(page.locator("#actions-section")).not_to_contain_text("Test inference")
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(
        status=Deployment.Status.HEALTHY,
        scoring_uri="http://127.0.0.1:20000",
        observed={"traffic": {"s0000000aaaa": 100}},
    )
    # The deploy ended: the status, the actions and the traffic form follow without a reload.
    expect(page.locator("#live .status").first).to_have_text("healthy", timeout=15_000)
    expect(page.locator("#actions-section")).to_contain_text("Test inference", timeout=15_000)
    share = page.get_by_label("Share for s0000000aaaa")
    share.fill("40")
    audit(actor=deployer, action="console.inferred", obj=deployment, details={"model": "add_sub"})
    expect(page.locator("#history")).to_contain_text("1 console call", timeout=15_000)
    assert share.input_value() == "40"  # a split being typed survived the refreshes
    page.locator("#history").get_by_role("link", name="Console calls").click()
    expect(page).to_have_url(f"/deployments/{deployment.pk}/?range=24h&history=console")
    expect(page.locator("#history")).not_to_contain_text("deployment.requested")
    expect(page.locator("#live")).to_have_attribute(
        "hx-get", f"/deployments/{deployment.pk}/?range=24h&history=console"
    )
    assert page.evaluate("window.__marker") == "same page"


def test_a_deployer_tries_a_model_in_the_console(page, django_user_model):  # noqa: F811
    from deployments.services.deployments import deployment_create
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.conftest import make_user
    from tests.engine import local_target, run_pending
    from workers.targets.local import adapter as local

    deployer = make_user(django_user_model, "deployer", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository
    deployment = deployment_create(name="tryme", repository=repository, target=local_target(), actor=deployer)
    try:
        assert run_pending(deployment).status == "succeeded"
        page.goto(f"/login/?next=/deployments/{deployment.pk}/")
        page.get_by_label("Username").fill("deployer")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Test inference").click()
        page.get_by_label("Data for INPUT0").fill("[1, 2, 3, 4]")
        page.get_by_label("Data for INPUT1").fill("[10, 20, 30, 40]")
        page.get_by_role("button", name="Infer").click()
        result = page.locator("#result")
        expect(result).to_contain_text("add_sub v1")
        expect(result.locator("tr", has_text="OUTPUT0")).to_contain_text("11.0, 22.0, 33.0, 44.0")
        expect(result).to_contain_text("tritonhttpclient.InferenceServerClient")
        page.get_by_label("Data for INPUT0").fill("[1, 2]")
        page.get_by_role("button", name="Infer").click()
        expect(page.get_by_role("alert")).to_contain_text("2 values for shape [4]")
    finally:
        local.stop_servers(deployment.pk)


def test_a_rejected_upload_shows_its_reason_in_the_form(page, django_user_model, tmp_path):  # noqa: F811
    from tests.conftest import make_user

    make_user(django_user_model, "deployer", "deployer")
    bogus = tmp_path / "notes.zip"
    bogus.write_bytes(b"this is not a zip")
    page.goto("/login/?next=/repositories/")
    page.get_by_label("Username").fill("deployer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Archive").set_input_files(str(bogus))
    page.get_by_role("button", name="Upload and validate").click()
    expect(page.get_by_role("alert")).to_contain_text("not a .zip, .tar.gz or .tgz archive")


@pytest.mark.postgres
@pytest.mark.redis
def test_a_prod_deploy_needs_a_second_person_and_the_audit_proves_it(page, django_user_model, celery_worker, cleanup):  # noqa: F811
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db import connection, transaction

    from deployments.models import Deployment
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.conftest import make_user
    from tests.engine import local_target

    alice = make_user(django_user_model, "alice", "deployer")
    make_user(django_user_model, "bob", "approver")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=alice).repository
    prod = local_target("local-prod", "prod", approvals=1)

    def sign_in(username, next_url):
        page.goto(f"/login/?next={next_url}")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

    # Alice asks for a prod deploy and cannot approve it herself.
    sign_in("alice", f"/deployments/new/%3Frepository%3D{repository.pk}")
    page.get_by_label("Name").fill("shipit")
    page.get_by_label("Target").select_option(str(prod.pk))
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#live .status").first).to_have_text("pending approval")
    cleanup(Deployment.objects.get(name="shipit"))
    expect(page.locator(".approval-state")).to_contain_text("Waiting for approval: deploy request")
    page.get_by_role("link", name="deploy request").click()
    expect(page.get_by_text("You asked for this change: someone else must approve it.")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    page.goto("/approvals/")
    expect(page.get_by_text("Nothing is waiting for your decision.")).to_be_visible()
    page.get_by_role("button", name="Log out").click()

    # Bob finds it waiting for him, sees what would change, and approves.
    sign_in("bob", "/approvals/")
    page.get_by_role("link", name="Deploy of shipit").click()
    expect(page.get_by_text("Nothing runs yet: this is the first deploy.")).to_be_visible()
    page.get_by_label("Comment (optional)").fill("checked the repository")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("Approved.", exact=True)).to_be_visible()
    page.get_by_role("link", name="shipit").first.click()
    expect(page.locator("#live .status").first).to_have_text("healthy", timeout=120_000)
    expect(page.locator("#log pre")).to_be_visible(timeout=15_000)  # the server log, fetched on its own

    # The log says who asked and who approved, and its chain holds.
    page.goto("/audit/?environment=prod")
    rows = page.locator("tbody tr")
    expect(rows.filter(has_text="deployment.approval_requested")).to_contain_text("alice")
    expect(rows.filter(has_text="deployment.approved")).to_contain_text("bob")
    call_command("verify_audit")

    approved = AuditEvent.objects.get(action="deployment.approved")
    with transaction.atomic(), connection.cursor() as cursor:
        # What someone with raw database access could do: triggers off, one word changed.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE deployments_auditevent SET actor_name = 'alice' WHERE seq = %s", [approved.seq])
    with pytest.raises(CommandError, match=f"seq {approved.seq}: content does not match its hash"):
        call_command("verify_audit")


def test_a_team_member_signs_in_through_sso_and_is_refused_once_out_of_the_group(page, sso):  # noqa: F811
    from tests.fakes.oidc import Person

    sso.signed_in = Person(
        sub="sub-carol",
        username="carol@example.com",
        email="carol@example.com",
        groups=["ml-engineers", "ml-prod-approvers"],
    )
    page.goto("/login/")
    page.get_by_role("button", name="Sign in with Test IdP").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.goto("/profile/")
    expect(page.locator("main")).to_contain_text("carol@example.com")
    expect(page.locator("main")).to_contain_text("deployer")
    page.goto("/deployments/new/")
    expect(page.get_by_role("button", name="Deploy")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    sso.signed_in.groups = []  # removed from the groups at the provider
    page.get_by_role("button", name="Sign in with Test IdP").click()
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("none of the groups that give a role")
    page.goto("/deployments/new/")
    expect(page).to_have_url("/login/?next=/deployments/new/")
    assert AuditEvent.objects.filter(action="user.roles_changed").count() == 2


def test_an_archive_over_the_upload_limit_is_stopped_in_the_browser_with_a_message(
    page,  # noqa: F811
    django_user_model,
    settings,
    tmp_path,
):
    from deployments.models import ModelRepository
    from tests.conftest import make_user

    settings.REPOSITORY_MAX_UPLOAD_BYTES = 2048
    make_user(django_user_model, "deployer", "deployer")
    archive = tmp_path / "big.zip"
    archive.write_bytes(bytes(5000))
    page.goto("/login/?next=/repositories/")
    page.get_by_label("Username").fill("deployer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("up to 2.0\xa0KB")).to_be_visible()

    page.get_by_label("Archive").set_input_files(str(archive))
    message = page.locator("#upload-size-error")
    expect(message).to_have_text("big.zip is 4.9\xa0KB: larger than the upload limit of 2.0\xa0KB. Nothing was sent.")
    page.get_by_role("button", name="Upload and validate").click()
    expect(message).to_be_visible()
    expect(page).to_have_url("/repositories/")
    assert not ModelRepository.objects.exists()
