"""What a careless or hostile client sends, and the 400 it gets back: every
input a probe of the live dashboard turned into a 500, each one named by
the field it was in (issue 17, findings 5 to 9 and 11)."""

import io
import json
import zipfile

import pytest
from django.urls import reverse

from deployments import roles
from deployments.api import auth as api_auth
from deployments.console import tensors
from deployments.errors import DomainError
from deployments.models import AuditEvent, Deployment, EnvironmentMembership, ModelRepository
from deployments.services.approvals import deployment_reject
from deployments.services.deployments import deployment_create
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import local_target

pytestmark = pytest.mark.django_db


def _post(client, url, body, header, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.generic("POST", url, data, content_type=content_type, HTTP_AUTHORIZATION=header)


def _error(response):
    (error,) = response.json()["errors"]
    return error


# --- finding 6: malformed bodies name their field ------------------------------------


@pytest.fixture
def pending(admin, repository):
    """A deployment waiting for approval in an environment that asks for one."""
    return deployment_create(name="guarded", repository=repository, target=local_target(approvals=1), actor=admin)


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_half_a_surrogate_in_a_comment_is_a_400_naming_the_comment(
    client, pending, django_user_model, token_for, action
):
    approver = make_user(django_user_model, "approver", roles.APPROVER)
    url = reverse(f"api:deployment-{action}", args=[pending.pk])
    response = _post(client, url, b'{"comment": "\\ud800"}', token_for(approver))
    assert response.status_code == 400
    error = _error(response)
    assert error["path"] == "comment"
    assert "surrogate" in error["message"]
    assert pending.requests.get().status == "pending"


@pytest.mark.parametrize(
    ("changes", "path", "says"),
    [
        (b'"entry_script": "def run(x):\\n    return \\"\\udfff\\""', "entry_script", "surrogate"),
        (b'"entry_script": ["def init(): pass"]', "entry_script", "string"),
        (b'"resources": [1, 2]', "resources", "object"),
        (b'"resources": "lots"', "resources", "object"),
        (b'"resources": {"cpu_cores": NaN}', "resources.cpu_cores", "NaN"),
        (b'"resources": {"memory_gb": Infinity}', "resources.memory_gb", "Infinity"),
    ],
)
def test_malformed_deployment_fields_are_400s_naming_the_field(
    client, deployer, token_for, repository, changes, path, says
):
    target = local_target()
    body = b'{"name": "x", "repository": %d, "target": %d, "mode": "entry_script", %s}' % (
        repository.pk,
        target.pk,
        changes,
    )
    response = _post(client, reverse("api:deployments"), body, token_for(deployer))
    assert response.status_code == 400, response.content
    error = _error(response)
    assert error["path"] == path
    assert says in error["message"]
    assert not Deployment.objects.exists()


def test_an_import_path_longer_than_the_file_system_allows_is_a_400(client, deployer, token_for, settings, tmp_path):
    settings.REPOSITORY_IMPORT_ROOTS = [str(tmp_path)]
    header = token_for(deployer)
    for path in (f"{tmp_path}/{'a' * 300}", f"{tmp_path}/" + "/".join(["b" * 200] * 30)):
        response = _post(client, reverse("api:repositories"), {"path": path}, header)
        assert response.status_code == 400, response.content
        error = _error(response)
        assert error["path"] == "path"
        assert "too long" in error["message"]
    assert not ModelRepository.objects.exists()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _add_sub_entries() -> dict[str, bytes]:
    folder = EXAMPLES / "add_sub"
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _upload(client, header, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        reverse("api:repositories"),
        {"archive": SimpleUploadedFile("repo.zip", content, content_type="application/zip")},
        HTTP_AUTHORIZATION=header,
    )


def test_an_archive_entry_name_longer_than_the_file_system_allows_is_a_400(client, deployer, token_for):
    entries = {**_add_sub_entries(), f"add_sub/1/{'n' * 300}.txt": b"x"}
    response = _upload(client, token_for(deployer), _zip(entries))
    assert response.status_code == 400, response.content
    error = _error(response)
    assert error["path"] == "archive"
    assert "too long" in error["message"]
    assert not ModelRepository.objects.exists()


def test_a_zip_whose_crc_does_not_match_is_a_400(client, deployer, token_for):
    content = bytearray(_zip(_add_sub_entries()))
    # Flip a byte of the first entry's stored data (after its 30-byte header and name).
    name_length = int.from_bytes(content[26:28], "little") + int.from_bytes(content[28:30], "little")
    content[30 + name_length] ^= 0xFF
    response = _upload(client, token_for(deployer), bytes(content))
    assert response.status_code == 400, response.content
    error = _error(response)
    assert error["path"] == "archive"
    assert "CRC" in error["message"] or "corrupt" in error["message"]
    assert not ModelRepository.objects.exists()


# --- finding 5: bounded console work ----------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "shape", "says"),
    [
        ("FP32", [2**32, 2**32], "elements"),
        ("FP32", [2**62, 4], "elements"),
        ("BYTES", [4194304], "elements"),
        ("FP64", [1024, 1024, 4], "bytes"),
    ],
)
def test_console_tensors_over_the_caps_are_refused_before_anything_is_generated(datatype, shape, says):
    with pytest.raises(DomainError) as refused:
        tensors.random("INPUT0", datatype, shape, seed=1)
    assert refused.value.path == "inputs.INPUT0.shape"
    assert says in refused.value.message
    assert "limit" in refused.value.message


def test_a_request_over_the_console_byte_cap_is_refused_as_a_whole(settings):
    settings.CONSOLE_MAX_TENSOR_BYTES = 1024
    settings.CONSOLE_MAX_REQUEST_BYTES = 1536
    shapes = {"A": [256], "B": [256]}  # 1 KiB each in FP32: each fits, both do not
    with pytest.raises(DomainError) as refused:
        tensors.check_request_size({name: ("FP32", shape) for name, shape in shapes.items()})
    assert "1,536" in refused.value.message
    assert refused.value.path == "inputs"


def test_text_that_is_json_too_deep_to_parse_is_a_400(settings):
    with pytest.raises(DomainError) as refused:
        tensors.from_json("INPUT0", "FP32", [1], "[" * 100_000 + "]" * 100_000)
    assert refused.value.path == "inputs.INPUT0.data"


RANDOM = {"name": "INPUT0", "datatype": "FP32", "shape": [1], "mode": "random"}


@pytest.fixture
def running(admin, repository):
    """A deployment the database says runs, at an address where nothing
    listens: each check below must answer before any call is made."""
    deployment = deployment_create(name="running", repository=repository, target=local_target(), actor=admin)
    Deployment.objects.filter(pk=deployment.pk).update(status="healthy", scoring_uri="http://127.0.0.1:9/score")
    return deployment


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"model": "add_sub\n"}, "model"),
        ({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [4194304], "mode": "random"}]}, "inputs"),
        ({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2**32, 2**32], "mode": "random"}]}, "inputs"),
        ({"inputs": [{**RANDOM, "seed": "x"}]}, "inputs.0.seed"),
        ({"inputs": ["INPUT0"]}, "inputs.0"),
        ({"outputs": "x"}, "outputs"),
        ({"outputs": [{"name": "OUTPUT0", "class_count": "abc"}]}, "outputs.0.class_count"),
        ({"timeout": "abc"}, "timeout"),
    ],
)
def test_console_api_input_errors_name_the_field(client, running, admin, token_for, change, path):
    body = {"model": "add_sub", "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]}
    response = _post(client, reverse("api:deployment-infer", args=[running.pk]), {**body, **change}, token_for(admin))
    assert response.status_code == 400, response.content
    assert _error(response)["path"].startswith(path)


def test_console_page_form_errors_name_the_field(client, running, admin):
    client.force_login(admin)
    url = reverse("deployment-console", args=[running.pk])
    page = client.get(url, {"model": "add_sub\n"})
    assert "model is a Triton model name" in page.content.decode()
    for field, value, says in (("timeout", "abc", "timeout"), ("timeout", "nan", "timeout")):
        response = client.post(url, {"model": "add_sub", field: value}, headers={"HX-Request": "true"})
        assert response.status_code == 400
        assert says in response.content.decode()


# --- finding 7: a rejected deployment's reused name ---------------------------------


def test_redeploying_a_rejected_deployment_whose_name_was_reused_is_a_409(
    client, admin, django_user_model, repository, token_for
):
    target = local_target(approvals=1)
    rejected = deployment_create(name="reused", repository=repository, target=target, actor=admin)
    approver = make_user(django_user_model, "approver", roles.APPROVER)
    deployment_reject(deploy_request=rejected.requests.get(), actor=approver, comment="not now")
    rejected.refresh_from_db()
    assert rejected.status == "rejected"
    deployment_create(name="reused", repository=repository, target=target, actor=admin)
    response = _post(client, reverse("api:deployment-redeploy", args=[rejected.pk]), {}, token_for(admin))
    assert response.status_code == 409, response.content
    assert "reused" in _error(response)["message"]
    client.force_login(admin)
    page = client.post(reverse("deployment-redeploy", args=[rejected.pk]))
    assert page.status_code in (302, 409)
    rejected.refresh_from_db()
    assert rejected.status == "rejected"


# --- finding 8: the bad-token limiter ----------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    moment = [1_800_000_000.0]
    monkeypatch.setattr(api_auth, "now", lambda: moment[0])
    return moment


def test_bad_tokens_block_bad_tokens_for_the_stated_window_and_never_a_valid_one(
    client, viewer, token_for, settings, clock
):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    settings.API_TOKEN_FAILURE_WINDOW = 60
    url = reverse("api:deployments")
    for _ in range(3):
        assert client.get(url, HTTP_AUTHORIZATION="Token wrong").status_code == 401
    for _ in range(5):  # still failing inside the window: each one extends nothing
        clock[0] += 5
        assert client.get(url, HTTP_AUTHORIZATION="Token wrong").status_code == 429
    # Someone else behind the same address, with a valid token, is served.
    assert client.get(url, HTTP_AUTHORIZATION=token_for(viewer)).status_code == 200
    clock[0] += 60
    assert client.get(url, HTTP_AUTHORIZATION="Token wrong").status_code == 401


# --- finding 9: test connection and adoption --------------------------------------------


def test_only_an_admin_of_the_environment_tests_a_target_and_one_run_at_a_time(client, django_user_model, admin):
    target = local_target()
    viewer = make_user(django_user_model, "dev-viewer")
    EnvironmentMembership.objects.create(user=viewer, environment=target.environment, role=roles.VIEWER)
    dev_admin = make_user(django_user_model, "dev-admin")
    EnvironmentMembership.objects.create(user=dev_admin, environment=target.environment, role=roles.ADMIN)
    url = reverse("target-test", args=[target.pk])
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    client.force_login(dev_admin)
    assert client.post(url).status_code in (200, 302)
    again = client.post(url, headers={"HX-Request": "true"})
    assert again.status_code == 409
    assert "already" in again.content.decode()
    assert AuditEvent.objects.filter(action="target.test_requested").count() == 1


# --- finding 11: repository reads follow one rule on page and API ----------------------


def test_a_dev_only_deployer_reads_repositories_on_the_page_and_the_api_alike(
    client, django_user_model, repository, token_for
):
    target = local_target()
    member = make_user(django_user_model, "dev-deployer")
    EnvironmentMembership.objects.create(user=member, environment=target.environment, role=roles.DEPLOYER)
    header = token_for(member)
    assert client.get(reverse("api:repositories"), HTTP_AUTHORIZATION=header).status_code == 200
    assert client.get(reverse("api:repository", args=[repository.pk]), HTTP_AUTHORIZATION=header).status_code == 200
    client.force_login(member)
    assert client.get(reverse("repositories")).status_code == 200
    assert client.get(reverse("repository", args=[repository.pk])).status_code == 200
    outsider = make_user(django_user_model, "nobody")
    header = token_for(outsider)
    assert client.get(reverse("api:repositories"), HTTP_AUTHORIZATION=header).status_code == 403
    assert client.get(reverse("api:repository", args=[repository.pk]), HTTP_AUTHORIZATION=header).status_code == 404
    client.force_login(outsider)
    assert client.get(reverse("repositories")).status_code == 403
    assert client.get(reverse("repository", args=[repository.pk])).status_code == 404
