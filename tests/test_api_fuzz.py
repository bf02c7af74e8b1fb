"""Property-based tests of every API operation, generated from the OpenAPI
document by schemathesis, against a live server: with a token of each role,
no answer is a 5xx, every answer (status, content type, body) is one the
document declares, bodies the document rules out are refused, and a member
of dev only never sees anything of prod. Targets are of the fake kind, so a
fuzzed deploy starts no server.

FUZZ_EXAMPLES sets the examples per operation, each sent with every
role's token (CI: 20); the full run is bench/api_fuzz.sh."""

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deployments import roles
from deployments.api.api import api
from deployments.models import Environment, EnvironmentMembership
from deployments.services.api_tokens import api_token_create
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from deployments.services.targets import target_create
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import run_pending
from tests.processes import ROOT
from workers.targets.fake import adapter as fake_cloud

pytestmark = pytest.mark.server

EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "20"))
ROLES = ["dev_member", "viewer", "deployer", "admin"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Names only prod's objects carry: a dev member's answers must never hold them.
PROD_ONLY = ("fake-prod", "prod-secret")

SENT = {"requests": 0, "operations": set()}


def _without_security(document: dict) -> dict:
    """The document as schemathesis gets it: the test sends each role's token
    itself, so the generator must not treat Authorization as data to mutate
    (a "missing" header the test then fills in would read as accepted
    invalid input)."""
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    document["components"].pop("securitySchemes", None)
    return document


SCHEMA = schemathesis.openapi.from_dict(
    _without_security(json.loads(json.dumps(api.get_openapi_schema(path_prefix="/api/v1/"))))
)


@pytest.fixture(scope="module", autouse=True)
def tally():
    """How much was sent, kept with the CI's artefacts (the number the issue asks to report)."""
    yield
    line = (
        f"schemathesis {schemathesis.__version__}: {SENT['requests']} requests over "
        f"{len(SENT['operations'])} operations x {len(ROLES)} roles, "
        f"max_examples={EXAMPLES_PER_OPERATION}, derandomized\n"
    )
    folder = ROOT / "test-artifacts"
    folder.mkdir(exist_ok=True)
    (folder / "api-fuzz.txt").write_text(line)
    print(line)


@pytest.fixture
def world(django_user_model):
    """dev and prod (one approval), a fake target and a deployment in each,
    and a token per role; ids start at 1, so generated ids find objects."""
    fake_cloud.reset()
    dev = Environment.objects.create(name="dev")
    prod = Environment.objects.create(name="prod", approvals_required=1)
    admin = make_user(django_user_model, "admin", roles.ADMIN)
    users = {
        "admin": admin,
        "deployer": make_user(django_user_model, "deployer", roles.DEPLOYER),
        "viewer": make_user(django_user_model, "viewer", roles.VIEWER),
        "dev_member": make_user(django_user_model, "dev-member"),
    }
    EnvironmentMembership.objects.create(user=users["dev_member"], environment=dev, role=roles.DEPLOYER)
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=admin).repository
    in_dev = target_create(actor=admin, name="fake-dev", kind="fake", environment=dev)
    in_prod = target_create(actor=admin, name="fake-prod", kind="fake", environment=prod)
    running = deployment_create(name="dev-model", repository=repository, target=in_dev, actor=admin)
    run_pending(running)
    deployment_create(name="prod-secret", repository=repository, target=in_prod, actor=admin)
    tokens = {role: f"Token {api_token_create(user=user, name='fuzz')[1]}" for role, user in users.items()}
    yield tokens
    fake_cloud.reset()


@pytest.mark.django_db(transaction=True, reset_sequences=True)
@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_contract(case, world, live_server):
    # Each generated case with every role's token, the least allowed first
    # (one world per operation: building it is most of this test's time).
    for role in ROLES:
        response = case.call(base_url=live_server.url, headers={"Authorization": world[role]})
        SENT["requests"] += 1
        SENT["operations"].add(case.operation.label)
        case.validate_response(response, checks=CHECKS)
        if role == "dev_member":
            leaked = [name for name in PROD_ONLY if name in response.text]
            assert not leaked, f"{case.method} {case.formatted_path} showed a dev member {leaked}"
