"""The pipelines' CLI (cli/): its calls held against the OpenAPI document,
and its commands and exit codes against the dashboard in this process."""

import json
import re
import shutil
import time
from types import SimpleNamespace

import httpx
import jsonschema
import pytest
from click.testing import CliRunner
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from triton_dashboard_cli import bodies
from triton_dashboard_cli import main as cli_main
from triton_dashboard_cli.client import OPERATIONS, Client
from triton_dashboard_cli.main import cli

from deployments.api.api import api
from deployments.models import Deployment, Environment, Rollout, Target
from deployments.services.approvals import deployment_approve, deployment_reject
from deployments.services.deployments import deployment_create
from deployments.services.migrations import migrations_settle
from deployments.services.targets import target_create
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import run_pending
from tests.processes import ROOT
from tests.test_rollouts import bake_elapsed, look, serve, until
from workers.targets.fake import adapter as fake_cloud
from workers.targets.fake import endpoint as fake_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def document():
    return json.loads(json.dumps(api.get_openapi_schema(path_prefix="/api/v1/")))


def request_schema(document, operation_id: str, content_type: str = "application/json"):
    """The operation's request body schema, resolvable against the whole document."""
    for path in document["paths"].values():
        for operation in path.values():
            if operation["operationId"] == operation_id:
                schema = operation["requestBody"]["content"][content_type]["schema"]
                # Its references point into the document, registered under a name of its own.
                schema = json.loads(json.dumps(schema).replace('"#/components/', '"urn:api#/components/'))
                resource = Resource.from_contents(document, default_specification=DRAFT202012)
                return jsonschema.Draft202012Validator(schema, registry=Registry().with_resource("urn:api", resource))
    raise AssertionError(f"no operation {operation_id}")


def test_every_call_of_the_cli_is_an_operation_of_the_document(document):
    found = {
        operation["operationId"]: (method.upper(), path)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    for operation_id, (method, path) in OPERATIONS.items():
        assert found.get(operation_id) == (method, path), operation_id


def test_the_bodies_the_cli_sends_are_what_the_document_asks(document):
    deploy = bodies.deployment_body(
        name="add-sub", repository="12", target="aks-prod", mode="triton", worker_count=2, auth_enabled=False
    )
    assert deploy["repository"] == 12
    request_schema(document, "deployment_create").validate(deploy)
    request_schema(document, "deployment_traffic").validate(bodies.traffic_body(("blue=90", "green=10")))
    request_schema(document, "deployment_approve").validate(bodies.comment_body("looks right"))
    redeploy = bodies.redeploy_body(repository="add_sub", confirm_other_line=True, worker_count=2)
    assert redeploy == {"repository": "add_sub", "confirm_other_line": True, "worker_count": 2}
    request_schema(document, "deployment_redeploy").validate(redeploy)
    request_schema(document, "deployment_redeploy").validate(bodies.redeploy_body(repository="7"))
    promotion = bodies.promotion_body(environment="prod", target="3", into=9, name="add-sub-2", force=True)
    assert promotion == {"environment": "prod", "target": 3, "deployment": 9, "name": "add-sub-2", "force": True}
    request_schema(document, "deployment_promote").validate(promotion)
    example = json.loads((ROOT / "examples" / "ci" / "add_sub_request.json").read_text())
    request_schema(document, "deployment_infer").validate(example)
    with pytest.raises(jsonschema.ValidationError):
        request_schema(document, "deployment_create").validate({**deploy, "worker_cout": 2})


def test_the_bodies_of_rollouts_and_moves_are_what_the_document_asks(document):
    steps = bodies.steps_body("10:300, 50:300,100:600")
    assert steps == [
        {"traffic": 10, "bake_seconds": 300},
        {"traffic": 50, "bake_seconds": 300},
        {"traffic": 100, "bake_seconds": 600},
    ]
    everything = bodies.rollout_body(
        steps=steps,
        repository="add_sub",
        confirm_other_line=True,
        mode="triton",
        worker_count=2,
        auth_enabled=True,
        gates={"failure_rate": {"max_ratio": 1.5, "floor": 0.02}, "min_requests": 50},
        golden_requests=[{"name": "sums", "model": "add_sub", "inputs": [], "expected": []}],
        on_rollback="remove",
    )
    spec = {"repository": "add_sub", "confirm_other_line": True, "mode": "triton", "worker_count": 2}
    assert everything["spec"] == {**spec, "auth_enabled": True}
    request_schema(document, "rollout_create").validate(everything)
    # Only what is given: the dashboard's defaults for the rest.
    assert bodies.rollout_body(steps=steps, worker_count=3) == {"steps": steps, "spec": {"worker_count": 3}}
    request_schema(document, "rollout_create").validate(bodies.rollout_body(steps=steps, repository="12"))
    request_schema(document, "rollout_abort").validate(bodies.abort_body("canary looked odd"))
    migration = bodies.migration_body(target="aks-v2", name="add-sub-v2", repository="12", golden_requests=[])
    assert migration == {"target": "aks-v2", "name": "add-sub-v2", "repository": 12, "golden_requests": []}
    request_schema(document, "migration_create").validate(migration)
    assert bodies.migration_body(target="4") == {"target": 4}
    for typed in ("10", "10:300;100:300", "ten:300", "10:5m", "10:300,"):
        with pytest.raises(ValueError, match="is not TRAFFIC:SECONDS"):
            bodies.steps_body(typed)


@pytest.fixture
def dashboard(monkeypatch, admin, token_for):
    """The CLI against this process's dashboard (the test's database), as `admin`."""
    # As Django's test client does: a request's end must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    monkeypatch.setattr(Client, "transport", httpx.WSGITransport(app=WSGIHandler()))
    fake_cloud.reset()
    runner = CliRunner()

    def run(*args, token=None):
        env = {"DASHBOARD_URL": "http://testserver", "DASHBOARD_TOKEN": (token or token_for(admin)).split()[1]}
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    yield run
    fake_cloud.reset()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def targets(admin):
    dev = Environment.objects.create(name="dev")
    prod = Environment.objects.create(name="prod", approvals_required=1)
    return (
        target_create(actor=admin, name="fake-dev", kind="fake", environment=dev),
        target_create(actor=admin, name="fake-prod", kind="fake", environment=prod),
    )


def test_upload_deploy_status_and_delete(dashboard, targets):
    uploaded = dashboard("--json", "repo", "upload", str(EXAMPLES / "add_sub"))
    assert uploaded.exit_code == 0, uploaded.output
    repository = json.loads(uploaded.output)
    assert repository["status"] == "valid"
    assert repository["name"] == "add_sub"
    again = dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    assert again.exit_code == 0
    assert "already recorded as repository" in again.output

    deployed = dashboard("deploy", "--repository", "add_sub", "--target", "fake-dev", "--name", "add-sub")
    assert deployed.exit_code == 0, deployed.output
    assert "add-sub on fake-dev: queued" in deployed.output
    assert dashboard("status", "add-sub").exit_code == 1  # not healthy yet
    run_pending(Deployment.objects.get(name="add-sub"))
    healthy = dashboard("status", "add-sub", "--wait")
    assert healthy.exit_code == 0, healthy.output
    assert "healthy at fake://" in healthy.output

    assert dashboard("delete", "add-sub").exit_code == 0
    deployment = Deployment.objects.get(name="add-sub")
    run_pending(deployment)
    gone = dashboard("delete", str(deployment.pk))
    assert gone.exit_code == 4  # deleted already: the API's 409, said
    assert "HTTP 409" in gone.output


def test_an_invalid_repository_fails_the_upload(dashboard):
    broken = dashboard("repo", "upload", str(EXAMPLES / "broken"))
    assert broken.exit_code == 1
    assert "invalid" in broken.output


def test_approval_exit_codes(dashboard, targets, django_user_model, token_for, repository):
    requested = dashboard(
        "--json", "deploy", "--repository", str(repository.pk), "--target", "fake-prod", "--name", "add-sub"
    )
    assert requested.exit_code == 0, requested.output
    deployment = json.loads(requested.output)
    assert deployment["status"] == "pending_approval"
    # A bounded wait on a request nobody decides: exit 3, and it says so.
    timed_out = dashboard("status", "add-sub", "--wait", "--timeout", "0", "--interval", "0")
    assert timed_out.exit_code == 3
    assert "still pending_approval" in timed_out.output
    # Four eyes: the requester cannot approve their own request.
    own = dashboard("approve", "add-sub")
    assert own.exit_code == 4
    assert "someone else" in own.output
    approver = make_user(django_user_model, "second", "approver")
    rejected = dashboard("reject", "add-sub", "--comment", "not this week", token=token_for(approver))
    assert rejected.exit_code == 0, rejected.output
    assert "approval rejected" in rejected.output
    ended = dashboard("status", str(deployment["id"]), "--wait")
    assert ended.exit_code == 1  # rejected: not what --wait waited for
    assert "rejected" in ended.output


def test_refusals_name_what_went_wrong(dashboard, targets, repository):
    wrong_token = dashboard("status", "1", token="Token tdb_nope")
    assert wrong_token.exit_code == 4
    assert "HTTP 401" in wrong_token.output
    unknown = dashboard("deploy", "--repository", str(repository.pk), "--target", "nowhere", "--name", "x")
    assert unknown.exit_code == 4
    assert "No target 'nowhere'" in unknown.output
    assert "[target]" in unknown.output
    nobody = dashboard("status", "no-such-deployment")
    assert nobody.exit_code == 4
    assert "none is named 'no-such-deployment'. Name it by its id" in nobody.output
    bad_share = dashboard("traffic", "1", "blue=ninety")
    assert bad_share.exit_code == 2


class Flaky(httpx.BaseTransport):
    """The dashboard behind a proxy that answers 502 to the first few calls."""

    def __init__(self, inner: httpx.BaseTransport, failures: int):
        self.inner, self.failures = inner, failures

    def handle_request(self, request):
        if self.failures:
            self.failures -= 1
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        return self.inner.handle_request(request)


def test_a_wait_outlasts_a_few_unanswered_polls_but_not_a_refusal(dashboard, targets, repository, monkeypatch):
    deployed = dashboard("--json", "deploy", "--repository", str(repository.pk), "--target", "fake-dev", "--name", "a")
    deployment = Deployment.objects.get(pk=json.loads(deployed.output)["id"])
    run_pending(deployment)
    monkeypatch.setattr(Client, "transport", Flaky(Client.transport, failures=2))
    waited = dashboard("status", str(deployment.pk), "--wait", "--interval", "0")
    assert waited.exit_code == 0, waited.output
    assert waited.output.count("HTTP 502") == 2
    assert "healthy" in waited.output
    missing = dashboard("status", "999", "--wait", "--interval", "0")
    assert missing.exit_code == 4
    assert "HTTP 404" in missing.output


# --- model lines: revisions, redeploys and promotions ---------------------------------------


def revision_two(tmp_path):
    """The add_sub example with one file changed: under the same name, its line's next revision."""
    copy = shutil.copytree(EXAMPLES / "add_sub", tmp_path / "add_sub")
    model = copy / "add_sub" / "1" / "model.py"
    model.write_bytes(model.read_bytes() + b"\n# revision two\n")
    return copy


@pytest.fixture
def between_polls(monkeypatch):
    """What happens while --wait waits: each pause between two polls runs the
    test's next step (an approval, a worker's turn) instead of sleeping."""
    steps = []

    def sleep(_seconds):
        assert steps, "--wait polled again after the test's last step"
        steps.pop(0)()

    monkeypatch.setattr(cli_main, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    return steps


def healthy_in_dev(dashboard) -> Deployment:
    deployed = dashboard("--json", "deploy", "--repository", "add_sub", "--target", "fake-dev", "--name", "add-sub")
    assert deployed.exit_code == 0, deployed.output
    deployment = Deployment.objects.get(pk=json.loads(deployed.output)["id"])
    run_pending(deployment)
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    return deployment


def test_two_uploads_under_one_name_are_recorded_as_its_revisions_r1_then_r2(dashboard, tmp_path):
    first = dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    assert first.exit_code == 0, first.output
    assert re.fullmatch(r"recorded repository \d+ \(add_sub r1\): valid\n", first.output)
    second = dashboard("--json", "repo", "upload", str(revision_two(tmp_path)), "--name", "add_sub")
    assert second.exit_code == 0, second.output
    recorded = json.loads(second.output)
    assert (recorded["created"], recorded["name"], recorded["revision"]) == (True, "add_sub", 2)
    again = dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    assert again.exit_code == 0
    assert re.fullmatch(r"already recorded as repository \d+ \(add_sub r1\): valid\n", again.output)


def test_a_redeploy_naming_the_line_moves_to_its_latest_revision_and_waits_until_healthy(
    dashboard, targets, tmp_path, between_polls
):
    dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    deployment = healthy_in_dev(dashboard)
    dashboard("repo", "upload", str(revision_two(tmp_path)), "--name", "add_sub")
    between_polls.append(lambda: run_pending(deployment))
    moved = dashboard("--json", "redeploy", "add-sub", "--repository", "add_sub", "--wait", "--interval", "0")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["repository"]["revision"] == 2
    assert json.loads(moved.stdout)["status"] == "healthy"
    deployment.refresh_from_db()
    assert fake_cloud.SERVICES[(targets[0].pk, "add-sub")].spec_digest == deployment.spec_digest


def test_a_redeploy_to_another_lines_revision_needs_confirm_other_line(dashboard, targets, tmp_path):
    dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    healthy_in_dev(dashboard)
    dashboard("repo", "upload", str(revision_two(tmp_path)), "--name", "calculator")
    refused = dashboard("redeploy", "add-sub", "--repository", "calculator")
    assert refused.exit_code == 4
    assert "HTTP 400" in refused.output
    assert "run again with --confirm-other-line" in refused.output
    moved = dashboard("redeploy", "add-sub", "--repository", "calculator", "--confirm-other-line")
    assert moved.exit_code == 0, moved.output
    assert re.fullmatch(r"deployment \d+ add-sub on fake-dev: queued at \S+; revision calculator r1\n", moved.output)


def test_a_promotion_from_dev_to_prod_waits_for_its_approval_then_until_healthy(
    dashboard, targets, django_user_model, between_polls
):
    dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    source = healthy_in_dev(dashboard)
    approver = make_user(django_user_model, "second", "approver")

    def in_prod() -> Deployment:
        return Deployment.objects.get(target=targets[1])

    between_polls.append(lambda: deployment_approve(deploy_request=in_prod().requests.get(), actor=approver))
    between_polls.append(lambda: run_pending(in_prod()))
    promoted = dashboard("promote", str(source.pk), "--environment", "prod", "--wait", "--interval", "0")
    assert promoted.exit_code == 0, promoted.output
    prod = in_prod()
    asked = f"created deployment {prod.pk} add-sub on fake-prod: pending_approval; revision add_sub r1, waiting"
    assert asked in promoted.output
    assert "(its deploy waits for approval: 0/1)" in promoted.output
    assert f"deployment {prod.pk} add-sub on fake-prod: healthy" in promoted.output
    assert prod.repository_digest == source.repository_digest


def test_a_rejected_promotion_into_prods_running_deployment_fails_the_wait(
    dashboard, targets, django_user_model, tmp_path, between_polls
):
    dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    source = healthy_in_dev(dashboard)
    approver = make_user(django_user_model, "second", "approver")
    first = json.loads(dashboard("--json", "promote", str(source.pk), "--environment", "prod").output)
    prod = Deployment.objects.get(pk=first["id"])
    deployment_approve(deploy_request=prod.requests.get(), actor=approver)
    run_pending(prod)
    dashboard("repo", "upload", str(revision_two(tmp_path)), "--name", "add_sub")
    moved = dashboard("redeploy", str(source.pk), "--repository", "add_sub")
    assert moved.exit_code == 0, moved.output
    run_pending(source)

    between_polls.append(
        lambda: deployment_reject(
            deploy_request=prod.requests.get(status="pending"), actor=approver, comment="not this week"
        )
    )
    again = dashboard("promote", str(source.pk), "--environment", "prod", "--wait", "--interval", "0")
    assert again.exit_code == 1, again.output
    # What runs there keeps running: only the request tells the promotion did not go through.
    updated = f"updated deployment {prod.pk} add-sub on fake-prod: healthy at fake://fake-prod/add-sub"
    assert f"{updated}; revision add_sub r1 runs until its deploy is approved (0/1)" in again.output
    assert re.search(r"its deploy request \d+ was rejected; it runs add_sub r1", again.output)


def test_an_ambiguous_promotion_lists_the_choices_to_run_again_with(dashboard, targets, admin, django_user_model):
    dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    source = healthy_in_dev(dashboard)
    second = target_create(actor=admin, name="fake-prod-2", kind="fake", environment=targets[1].environment)
    promote = ("promote", str(source.pk), "--environment", "prod")

    two_targets = dashboard(*promote)
    assert two_targets.exit_code == 4
    assert "HTTP 409" in two_targets.output
    assert "run again with --target ID|NAME, one of:" in two_targets.output
    assert re.search(rf"^ +{second.pk}  fake-prod-2  ", two_targets.output, re.M)
    for target in ("fake-prod", "fake-prod-2"):
        created = dashboard(*promote, "--target", target)
        assert created.exit_code == 0, created.output
        assert f"add-sub on {target}: pending_approval" in created.output

    two_deployments = dashboard(*promote)
    assert two_deployments.exit_code == 4
    assert "run again with --into ID, one of:" in two_deployments.output
    ids = [d.pk for d in Deployment.objects.filter(target__environment__name="prod").order_by("pk")]
    for deployment_id, target in zip(ids, ("fake-prod", "fake-prod-2"), strict=True):
        assert re.search(rf"^ +{deployment_id}  add-sub  on {target}, running add_sub r1", two_deployments.output, re.M)
    # A pipeline reads the same choices from the API's error, on stdout.
    as_json = dashboard("--json", *promote)
    (error,) = json.loads(as_json.stdout)["errors"]
    assert (error["code"], error["path"]) == ("ambiguous", "deployment")
    assert [choice["id"] for choice in error["choices"]] == ids

    # Both run what dev runs (a request already waiting for the same change would be refused):
    # the one picked is deployed again.
    approver = make_user(django_user_model, "second", "approver")
    for deployment in Deployment.objects.filter(pk__in=ids):
        deployment_approve(deploy_request=deployment.requests.get(), actor=approver)
        run_pending(deployment)
    picked = dashboard(*promote, "--into", str(ids[1]))
    assert picked.exit_code == 0, picked.output
    assert f"updated deployment {ids[1]} add-sub on fake-prod-2: queued" in picked.output


def test_promoting_what_is_not_healthy_takes_force(dashboard, targets):
    dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    source = healthy_in_dev(dashboard)
    Deployment.objects.filter(pk=source.pk).update(status=Deployment.Status.DEGRADED, status_reason="add_sub not ready")
    refused = dashboard("promote", str(source.pk), "--environment", "prod")
    assert refused.exit_code == 4
    assert "add_sub not ready" in refused.output
    assert "run again with --force" in refused.output
    forced = dashboard("promote", str(source.pk), "--environment", "prod", "--force")
    assert forced.exit_code == 0, forced.output
    assert "add-sub on fake-prod: pending_approval" in forced.output


# --- rollouts -------------------------------------------------------------------------------

# The shortest bake the dashboard takes with the driver looking every second (two looks).
PLAN = "10:2,50:2,100:2"


@pytest.fixture
def endpoint_kind():
    """The in-memory endpoint kind (side-by-side deployments, a traffic
    split, counters the gates read), empty before and after."""
    fake_endpoint.reset()
    yield
    fake_endpoint.reset()


@pytest.fixture
def endpoints(settings, admin, endpoint_kind):
    """Endpoint targets in dev and in prod (one approval)."""
    settings.RECONCILE_INTERVAL = 1
    dev = Environment.objects.create(name="dev")
    prod = Environment.objects.create(name="prod", approvals_required=1)
    return (
        target_create(actor=admin, name="endpoint-dev", kind="fake_endpoint", environment=dev),
        target_create(actor=admin, name="endpoint-prod", kind="fake_endpoint", environment=prod),
    )


def serving(dashboard, target="endpoint-dev", approver=None) -> Deployment:
    dashboard("repo", "upload", str(EXAMPLES / "add_sub"))
    deployed = dashboard("--json", "deploy", "--repository", "add_sub", "--target", target, "--name", "add-sub")
    assert deployed.exit_code == 0, deployed.output
    deployment = Deployment.objects.get(pk=json.loads(deployed.output)["id"])
    if approver is not None:
        deployment_approve(deploy_request=deployment.requests.get(), actor=approver)
    run_pending(deployment)
    assert deployment.status == Deployment.Status.HEALTHY, deployment.status_reason
    return deployment


def turns(deployment: Deployment, count: int = 30, failed: int = 0) -> list:
    """What happens between two polls of a rollout, `count` times: the
    driver takes one look; before it, in a step's bake, both sides answer
    requests (`failed` of the candidate's fail), or, once the gates have
    judged them, the bake's time passes."""

    def turn():
        rollout = deployment.rollouts.latest("pk")
        if rollout.phase == Rollout.Phase.BAKING:
            if rollout.current_step.figures.get("candidate", {}).get("requests"):
                bake_elapsed(rollout)
            else:
                serve(rollout, "baseline")
                serve(rollout, "candidate", failed=failed)
        look(rollout)

    return [turn] * count


def test_a_rollout_started_with_wait_is_followed_step_by_step_until_promoted(dashboard, endpoints, between_polls):
    deployment = serving(dashboard)
    between_polls.extend(turns(deployment))
    rolled = dashboard(
        "--json", "rollout", "add-sub", "--worker-count", "2", "--steps", PLAN, "--wait", "--interval", "0"
    )
    assert rolled.exit_code == 0, rolled.output
    rollout = json.loads(rolled.stdout)
    assert (rollout["status"], rollout["deployment"]["id"]) == ("promoted", deployment.pk)
    assert [step["status"] for step in rollout["steps"]] == ["passed"] * 3
    # A progress line per step, phase and verdict: said once, when it changes.
    progress = [line.split("] ", 1)[1] for line in rolled.stderr.splitlines() if line.startswith("[")]
    candidate, baseline = rollout["candidate"]["name"], rollout["baseline"]["name"]
    # 100 requests a side: too few for a p99 (it needs 300), enough for the others.
    gates = "failure_rate passes, p95_ms passes, p99_ms undecided, queue_share passes"
    undecided = "failure_rate undecided, p95_ms undecided, p99_ms undecided, queue_share undecided"
    assert progress == [
        f"running, candidate: deploying the candidate {candidate} at 0%",
        *(
            line
            for index, share in ((1, 10), (2, 50), (3, 100))
            for line in (
                f"running, shifting: step {index}/3, {share}% of the traffic to the candidate",
                # Judged as soon as the split is in place: nothing answered yet.
                f"running, baking: step {index}/3 at {share}% for 2 s; {undecided}",
                f"running, baking: step {index}/3 at {share}% for 2 s; {gates}",
            )
        ),
        f"running, finishing: all traffic on the candidate, retiring the baseline {baseline}",
        "promoted",
    ]
    assert f"rollout {rollout['id']} of deployment {deployment.pk} add-sub: running, candidate" in rolled.stderr
    deployment.refresh_from_db()
    assert deployment.worker_count == 2
    assert fake_endpoint.ENDPOINTS[(endpoints[0].pk, "add-sub")].traffic == {candidate: 100}

    again = dashboard("rollout-status", str(rollout["id"]))
    assert again.exit_code == 0, again.output
    assert again.output == f"rollout {rollout['id']} of deployment {deployment.pk} add-sub: promoted\n"


def test_a_rollout_rolled_back_by_a_gate_exits_1_with_the_reason_and_the_gates_figures(
    dashboard, endpoints, between_polls
):
    deployment = serving(dashboard)
    started = dashboard("rollout", "add-sub", "--worker-count", "2", "--steps", PLAN, "--on-rollback", "remove")
    assert started.exit_code == 0, started.output
    rollout = deployment.rollouts.get()
    assert started.output == (
        f"rollout {rollout.pk} of deployment {deployment.pk} add-sub: "
        f"running, candidate: deploying the candidate {rollout.candidate_name} at 0%\n"
    )
    until(rollout, Rollout.Phase.BAKING)
    between_polls.extend(turns(deployment, failed=20))
    followed = dashboard("rollout-status", str(rollout.pk), "--wait", "--interval", "0")
    assert followed.exit_code == 1, followed.output
    assert "running, rolling_back: traffic back to the baseline" in followed.stderr
    why = "step 1 (10%): gate failure_rate failed"
    assert f"rollout {rollout.pk} of deployment {deployment.pk} add-sub: rolled_back: {why}\n" == followed.stdout
    assert f"error: rollout {rollout.pk} rolled_back: {why}" in followed.stderr
    assert re.search(
        r"  failure_rate at step 1 \(10%\): 0.2 against the baseline's 0.0, limit 0.01 \(at most max\(2 x baseline, "
        r"0.01\)\)\n  over 100 candidate and 100 baseline requests in its window\n",
        followed.stderr,
    ), followed.stderr
    # The same, asked again later without --wait.
    asked = dashboard("rollout-status", str(rollout.pk))
    assert asked.exit_code == 1
    assert asked.stderr == followed.stderr[followed.stderr.index("error: ") :]
    assert fake_endpoint.ENDPOINTS[(endpoints[0].pk, "add-sub")].traffic == {rollout.baseline_name: 100}


def test_a_plan_the_dashboard_refuses_exits_4_with_its_message_naming_the_field(dashboard, endpoints, tmp_path):
    serving(dashboard)
    rollout = ("rollout", "add-sub", "--worker-count", "2", "--steps")
    short = dashboard(*rollout, "10:300,50:300")
    assert short.exit_code == 4
    assert "HTTP 400: The last step takes 50% of the traffic; a plan ends at 100%. [steps]" in short.output
    shrinking = dashboard(*rollout, "50:5,20:5,100:5")
    assert shrinking.exit_code == 4
    assert "steps[1].traffic 20% does not grow from the step before (50%). [steps[1].traffic]" in shrinking.output
    gates = tmp_path / "gates.json"
    gates.write_text('{"p50_ms": {"max_ratio": 1.5}}')
    unknown = dashboard("--json", *rollout, PLAN, "--gates", str(gates))
    assert unknown.exit_code == 4
    (error,) = json.loads(unknown.stdout)["errors"]
    assert error["path"] == "gates.p50_ms"
    assert "Unknown gate" in error["message"]
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps({"name": "sums", "model": "nope", "inputs": [], "expected": []}))
    wrong_model = dashboard(*rollout, PLAN, "--golden", str(golden))
    assert wrong_model.exit_code == 4
    assert "has no model 'nope' (it has add_sub). [golden_requests[0].model]" in wrong_model.output
    same = dashboard("rollout", "add-sub", "--steps", PLAN)
    assert same.exit_code == 4
    assert "The candidate is the spec running now" in same.output
    # What never reaches the dashboard: bad usage, exit 2.
    assert dashboard(*rollout, "10-300").exit_code == 2
    gates.write_text("{nope")
    assert dashboard(*rollout, PLAN, "--gates", str(gates)).exit_code == 2
    assert dashboard(*rollout, PLAN, "--on-rollback", "delete").exit_code == 2
    assert not Rollout.objects.exists()


def test_a_rollout_in_prod_is_followed_through_its_approval_and_a_rejected_plan_fails_the_wait(
    dashboard, endpoints, django_user_model, between_polls
):
    approver = make_user(django_user_model, "second", "approver")
    deployment = serving(dashboard, "endpoint-prod", approver=approver)

    def approve():
        deployment_approve(deploy_request=deployment.requests.get(status="pending"), actor=approver)

    between_polls.extend([approve, *turns(deployment)])
    rolled = dashboard("rollout", "add-sub", "--worker-count", "2", "--steps", PLAN, "--wait", "--interval", "0")
    assert rolled.exit_code == 0, rolled.output
    request = deployment.requests.get(kind="rollout")
    assert f"add-sub: pending_approval: its request {request.pk} waits for approval\n" in rolled.stderr
    assert "] running, candidate: deploying the candidate" in rolled.stderr
    assert rolled.stdout == f"rollout {deployment.rollouts.get().pk} of deployment {deployment.pk} add-sub: promoted\n"

    between_polls.clear()
    between_polls.append(
        lambda: deployment_reject(
            deploy_request=deployment.requests.get(status="pending"), actor=approver, comment="not this week"
        )
    )
    refused = dashboard("rollout", "add-sub", "--worker-count", "3", "--steps", PLAN, "--wait", "--interval", "0")
    assert refused.exit_code == 1, refused.output
    second = deployment.rollouts.latest("pk")
    assert f"error: rollout {second.pk} aborted: Rejected by second: not this week" in refused.stderr
    assert not between_polls


def test_a_running_rollout_is_paused_resumed_promoted_or_aborted_from_the_cli(dashboard, endpoints):
    deployment = serving(dashboard)
    dashboard("rollout", "add-sub", "--worker-count", "2", "--steps", PLAN)
    rollout = until(deployment.rollouts.get(), Rollout.Phase.BAKING)
    said = f"rollout {rollout.pk} of deployment {deployment.pk} add-sub"

    paused = dashboard("rollout-pause", str(rollout.pk))
    assert paused.exit_code == 0, paused.output
    undecided = "failure_rate undecided, p95_ms undecided, p99_ms undecided, queue_share undecided"
    assert paused.output == f"{said}: paused, baking: step 1/3 at 10% for 2 s; {undecided}\n"
    again = dashboard("rollout-pause", str(rollout.pk))
    assert again.exit_code == 4
    assert "HTTP 409" in again.output
    assert "only a running step can be paused" in again.output
    resumed = dashboard("--json", "rollout-resume", str(rollout.pk))
    assert resumed.exit_code == 0, resumed.output
    assert (json.loads(resumed.stdout)["status"], json.loads(resumed.stdout)["phase"]) == ("running", "shifting")
    promoted = dashboard("rollout-promote", str(rollout.pk))
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output == f"{said}: running, shifting: step 3/3, 100% of the traffic to the candidate\n"
    still = dashboard("rollout-status", str(rollout.pk))
    assert still.exit_code == 1  # not promoted yet: said, as `status` says a deployment is not healthy yet
    assert "error" not in still.output
    until(rollout, Rollout.Phase.DONE)
    done = dashboard("--json", "rollout-status", str(rollout.pk))
    assert done.exit_code == 0, done.output
    assert [step["status"] for step in json.loads(done.stdout)["steps"]] == ["skipped", "skipped", "passed"]

    dashboard("rollout", "add-sub", "--worker-count", "3", "--steps", PLAN)
    second = until(deployment.rollouts.latest("pk"), Rollout.Phase.BAKING)
    aborted = dashboard("rollout-abort", str(second.pk), "--reason", "canary looked odd")
    assert aborted.exit_code == 0, aborted.output
    baseline = second.baseline_name
    assert f"running, rolling_back: traffic back to the baseline {baseline} (canary looked odd)\n" in aborted.output
    until(second, Rollout.Phase.DONE)
    ended = dashboard("rollout-status", str(second.pk))
    assert ended.exit_code == 1
    assert f"error: rollout {second.pk} aborted: canary looked odd\n" in ended.stderr
    assert "  " not in ended.stderr, "no gate failed: no figures to show"
    assert dashboard("rollout-status", "999").exit_code == 4


# --- moving to another target ---------------------------------------------------------------


def old_and_new(admin, environment: str, approvals: int = 0) -> Target:
    """An SDK v1-like target and an endpoint target beside it, in one environment; the old one."""
    env = Environment.objects.create(name=environment, approvals_required=approvals)
    target_create(actor=admin, name=f"new-{environment}", kind="fake_endpoint", environment=env)
    return target_create(actor=admin, name=f"old-{environment}", kind="fake", environment=env)


def test_move_waits_until_the_equivalent_deployment_runs_on_the_new_target(
    dashboard, admin, between_polls, endpoint_kind
):
    old = old_and_new(admin, "dev")
    source = serving(dashboard, "old-dev")

    def destination() -> Deployment:
        return Deployment.objects.get(target__name="new-dev")

    between_polls.extend([lambda: run_pending(destination()), migrations_settle])
    moved = dashboard("move", "add-sub", "--target", "new-dev", "--wait", "--interval", "0")
    assert moved.exit_code == 0, moved.output
    new = destination()
    migration = f"migration {source.migrations_out.get().pk} of deployment {source.pk} add-sub on old-dev"
    assert f"{migration} to deployment {new.pk}: deploying: add-sub on new-dev is queued\n" in moved.stderr
    assert "] deploying: add-sub on new-dev is healthy\n" in moved.stderr
    assert moved.stdout == (
        f"{migration} to deployment {new.pk}: deployed: add-sub on new-dev is healthy at fake://new-dev/add-sub\n"
    )
    source.refresh_from_db()
    assert (source.target, source.status) == (old, Deployment.Status.HEALTHY), "the original serves until cut-over"


def test_a_move_whose_new_deployment_is_rejected_fails_the_wait(dashboard, admin, django_user_model, between_polls):
    old_and_new(admin, "prod", approvals=1)
    approver = make_user(django_user_model, "second", "approver")
    serving(dashboard, "old-prod", approver=approver)
    between_polls.append(
        lambda: deployment_reject(
            deploy_request=Deployment.objects.get(target__name="new-prod").requests.get(),
            actor=approver,
            comment="not this week",
        )
    )
    between_polls.append(migrations_settle)
    rejected = dashboard("move", "add-sub", "--target", "new-prod", "--name", "add-sub-v2", "--wait", "--interval", "0")
    assert rejected.exit_code == 1, rejected.output
    assert "] deploying: add-sub-v2 on new-prod is pending_approval\n" in rejected.stderr
    assert re.search(r"error: migration \d+ failed: add-sub-v2 is rejected: Rejected by second", rejected.stderr)


def test_a_move_that_cannot_be_made_is_refused_saying_why(dashboard, admin, repository, endpoint_kind):
    old = old_and_new(admin, "dev")
    script = "def init():\n    pass\n\ndef run(data):\n    return data\n"
    source = deployment_create(
        name="scored", repository=repository, target=old, actor=admin, mode="entry_script", entry_script=script
    )
    run_pending(source)
    refused = dashboard("--json", "move", "scored", "--target", "new-dev")
    assert refused.exit_code == 4
    (error,) = json.loads(refused.stdout)["errors"]
    assert (error["code"], error["path"]) == ("cannot_migrate", "target")
    assert "runs an entry script" in refused.stderr
    assert refused.stderr.rstrip().endswith("[target]")


def test_the_body_of_a_load_test_is_what_the_document_asks(document):
    body = bodies.load_test_body(model="add_sub", concurrency=bodies.counts("1, 2,4,8"), window_seconds=1.5)
    assert body == {"model": "add_sub", "concurrency": [1, 2, 4, 8], "label": "", "window_seconds": 1.5}
    request_schema(document, "load_test_create").validate(body)
    for typed in ("1;2", "one", ""):
        with pytest.raises(ValueError, match=r"whole numbers|at least one"):
            bodies.counts(typed)


def test_a_load_test_from_a_pipeline_fails_it_when_a_limit_is_not_kept(dashboard, targets, admin, repository):
    from deployments.models import LoadTest

    deployment = deployment_create(name="add-sub", repository=repository, target=targets[0], actor=admin)
    run_pending(deployment)
    Environment.objects.filter(name="dev").update(load_tests="off")
    off = dashboard("loadtest", "add-sub", "--model", "add_sub")
    assert off.exit_code == 4
    assert "Load tests are off in dev" in off.output
    Environment.objects.filter(name="dev").update(load_tests="allowed")
    assert dashboard("loadtest", "add-sub", "--model", "add_sub", "--concurrency", "1;2").exit_code == 2

    started = dashboard("--json", "loadtest", "add-sub", "--model", "add_sub", "--concurrency", "1,8")
    assert started.exit_code == 0, started.output
    test_id = json.loads(started.output)["id"]
    assert dashboard("loadtest-status", str(test_id)).exit_code == 1  # not run yet

    def figures(concurrency, throughput, p95):
        percentiles = {"p50_ms": p95 / 2, "p90_ms": p95 * 0.9, "p95_ms": p95, "p99_ms": p95 * 1.1}
        return {
            "concurrency": concurrency,
            "throughput": throughput,
            "mean_ms": p95 / 2,
            **percentiles,
            "stable": True,
            "trials": 3,
            "requests": 300,
            "errors": 0,
            "measured": 200,
            "error_samples": [],
            "stopped": "",
            "server": {"batch": 1.0},
        }

    LoadTest.objects.filter(pk=test_id).update(
        status="succeeded", points=[figures(1, 90.0, 12.0), figures(8, 95.0, 85.0)]
    )
    kept = dashboard("loadtest-status", str(test_id), "--max-p95-ms", "100", "--min-throughput", "90")
    assert kept.exit_code == 0, kept.output
    assert re.search(r"\n\s+8\s+95\.0\s+42\.50\s+85\.00", kept.output)
    broken = dashboard("loadtest-status", str(test_id), "--max-p95-ms", "50", "--min-throughput", "200")
    assert broken.exit_code == 1
    assert "p95 85.00 ms at 8 clients is over 50 ms" in broken.output
    assert "the best throughput, 95.0/s, is under 200/s" in broken.output
