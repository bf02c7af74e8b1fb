"""The API's contract: a valid OpenAPI 3.1 document generated from the code,
who may read it, and the one error shape for bad input of every kind."""

import json

import pytest
from django.test import Client
from django.urls import reverse
from openapi_spec_validator import validate

from deployments.models import Deployment
from tests.engine import local_target

pytestmark = pytest.mark.django_db

ALWAYS = {"400", "401", "403", "413", "429"}


def test_the_document_is_valid_openapi_3_1_and_declares_every_refusal(client, viewer, token_for):
    response = client.get(reverse("api:openapi-json"), HTTP_AUTHORIZATION=token_for(viewer))
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 20
    for path, method, operation in operations:
        declared = set(operation["responses"])
        if operation["operationId"] == "health":
            assert declared == {"200", "503"}
            continue
        assert declared >= ALWAYS, (method, path)
        if "{" in path:
            assert "404" in declared, (method, path)
        if method in ("post", "delete"):
            assert {"409", "415"} <= declared, (method, path)
        assert operation["security"] == [{"TokenAuth": []}]
    # Bodies forbid what they do not document.
    assert document["components"]["schemas"]["DeploymentCreate"]["additionalProperties"] is False


def test_who_may_read_the_document(client, viewer, token_for):
    url = reverse("api:openapi-json")
    anonymous = client.get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["code"] == "not_authenticated"
    assert client.get(url, HTTP_AUTHORIZATION="Token nope").status_code == 401
    assert client.post(url, HTTP_AUTHORIZATION=token_for(viewer)).status_code == 405
    docs = reverse("api:openapi-view")
    assert client.get(docs).status_code == 302  # to the sign-in page
    client.force_login(viewer)
    assert client.get(url).status_code == 200
    page = client.get(docs)
    assert page.status_code == 200
    assert b"swagger-ui" in page.content
    index = client.get("/api/v1/").json()
    assert index == {"openapi": url, "docs": docs}


def post(client, header, body: bytes, content_type="application/json", url=None, **extra):
    return client.generic(
        "POST", url or reverse("api:deployments"), body, content_type=content_type, HTTP_AUTHORIZATION=header, **extra
    )


def only_error(response):
    (error,) = response.json()["errors"]
    return error


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "says"),
    [
        (b'{"name": "x", ' * 1, "application/json", 400, "invalid_json", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "invalid_json", "nests deeper than 32"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "application/json", 400, "invalid_json", "nests deeper than 32"),
        ('{"name": "café"}'.encode("latin-1"), "application/json", 400, "invalid_json", "not UTF-8"),
        (b"[1, 2]", "application/json", 400, "invalid_json", "must be a JSON object"),
        (b"", "application/json", 400, "required", "A JSON body is required"),
        (b"name=x", "text/plain", 415, "unsupported_media", "application/json"),
    ],
)
def test_unreadable_bodies_are_refused_by_name(client, deployer, token_for, body, content_type, status, code, says):
    response = post(client, token_for(deployer), body, content_type)
    assert response.status_code == status
    error = only_error(response)
    assert error["code"] == code
    assert says in error["message"]
    assert not Deployment.objects.exists()


def test_a_body_over_the_limit_is_refused_from_its_length(client, deployer, token_for, settings):
    settings.API_MAX_JSON_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = post(client, token_for(deployer), json.dumps({"name": "x" * 2000}).encode())
    assert response.status_code == 413
    assert only_error(response)["code"] == "too_large"


def test_undocumented_fields_are_named_wherever_they_are(client, deployer, token_for, repository):
    header = token_for(deployer)
    deployment = client.post(
        reverse("api:deployments"),
        {"name": "ok", "repository": repository.pk, "target": local_target().name},
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    ).json()
    for url, body, path in [
        (reverse("api:deployment-redeploy", args=[deployment["id"]]), {"worker_cout": 2}, "worker_cout"),
        (reverse("api:deployment-traffic", args=[deployment["id"]]), {"traffic": {"a": 100}, "why": "x"}, "why"),
        (reverse("api:deployment-approve", args=[deployment["id"]]), {"coment": "typo"}, "coment"),
        (
            reverse("api:deployments"),
            {"name": "x", "repository": 1, "target": 1, "resources": {"gpu": 1}},
            "resources.gpu",
        ),
    ]:
        response = post(client, header, json.dumps(body).encode(), url=url)
        assert response.status_code == 400, url
        error = only_error(response)
        assert error == {
            "code": "unknown_field",
            "message": f"Unknown field '{path}': this operation does not take it.",
            "path": path,
        }


def test_a_wrong_method_or_path_answers_in_the_api_shape(client, viewer, token_for):
    header = token_for(viewer)
    wrong = client.put(reverse("api:deployments"), HTTP_AUTHORIZATION=header)
    assert wrong.status_code == 405
    assert only_error(wrong)["code"] == "method_not_allowed"
    assert set(wrong["Allow"].split(", ")) == {"GET", "POST"}
    strict = Client(enforce_csrf_checks=True)
    # A newline in the path too (found by the fuzzing: it was the pages' HTML 404).
    for path in ("/api/v1/nothing", "/api/v1/deployments/not-a-number", "/api/v1/deployments/%0A1"):
        for method in ("get", "post", "delete"):
            missing = getattr(strict, method)(path, HTTP_AUTHORIZATION=header)
            assert missing.status_code == 404, (method, path)
            assert only_error(missing)["code"] == "not_found"


def test_a_misspelt_query_parameter_is_named_not_ignored(client, viewer, token_for):
    response = client.get(reverse("api:deployments"), {"staus": "failed"}, HTTP_AUTHORIZATION=token_for(viewer))
    assert response.status_code == 400
    assert only_error(response) == {
        "code": "unknown_field",
        "message": "Unknown field 'staus': this operation does not take it.",
        "path": "staus",
    }
    twice = client.get(reverse("api:audit") + "?limit=5&limit=6", HTTP_AUTHORIZATION=token_for(viewer))
    assert twice.status_code == 400
    assert only_error(twice)["path"] == "limit"


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "a\\u0000b", "repository": 1, "target": 1}',
        b'{"name": "x", "repository": "\\udaf9", "target": 1}',
        b'{"name": "x", "repository": 1, "target": 1, "pip_packages": ["\\u0000"]}',
    ],
)
def test_text_no_database_can_store_is_refused(client, deployer, token_for, body):
    # Found by the fuzzing: PostgreSQL stores no NUL and no lone surrogate (it was a 500).
    response = post(client, token_for(deployer), body)
    assert response.status_code == 400
    assert "NUL character or half a surrogate pair" in only_error(response)["message"]
    query = client.get(reverse("api:deployments"), {"target": "a\x00b"}, HTTP_AUTHORIZATION=token_for(deployer))
    assert query.status_code == 400


def test_an_upload_in_another_form_is_a_415(client, deployer, token_for):
    response = post(client, token_for(deployer), b"PK...", "application/zip", url=reverse("api:repositories"))
    assert response.status_code == 415
    assert only_error(response)["code"] == "unsupported_media"


def test_an_unreadable_multipart_body_is_a_400(client, deployer, token_for):
    # Found by the fuzzing: a multipart body without a boundary was a 500.
    response = client.generic(
        "POST",
        reverse("api:repositories"),
        b"--x\r\n",
        content_type="multipart/form-data",
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert response.status_code == 400
    assert only_error(response)["path"] == "archive"


def test_the_list_filters_by_name_and_names_a_bad_status(client, deployer, token_for, repository):
    from deployments.services.deployments import deployment_create

    target = local_target()
    for name in ("wanted", "other"):
        deployment_create(name=name, repository=repository, target=target, actor=deployer)
    header = token_for(deployer)
    named = client.get(reverse("api:deployments"), {"name": "wanted"}, HTTP_AUTHORIZATION=header).json()
    assert [d["name"] for d in named["results"]] == ["wanted"]
    bad = client.get(reverse("api:deployments"), {"status": "fine"}, HTTP_AUTHORIZATION=header)
    assert bad.status_code == 400
    error = only_error(bad)
    assert error["path"] == "status"
    assert "'healthy'" in error["message"]
