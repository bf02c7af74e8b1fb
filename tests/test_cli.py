"""The pipelines' CLI (cli/): its calls held against the OpenAPI document,
and its commands and exit codes against the dashboard in this process."""

import json

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
from triton_dashboard_cli.client import OPERATIONS, Client
from triton_dashboard_cli.main import cli

from deployments.api.api import api
from deployments.models import Deployment, Environment
from deployments.services.targets import target_create
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import run_pending
from tests.processes import ROOT
from workers.targets.fake import adapter as fake_cloud

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
    example = json.loads((ROOT / "examples" / "ci" / "add_sub_request.json").read_text())
    request_schema(document, "deployment_infer").validate(example)
    with pytest.raises(jsonschema.ValidationError):
        request_schema(document, "deployment_create").validate({**deploy, "worker_cout": 2})


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
