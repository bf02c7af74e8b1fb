"""Repository pages and API endpoints."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from deployments.models import AuditEvent, ModelRepository
from deployments.services.repositories import repository_upload
from tests import archives

pytestmark = pytest.mark.django_db


def zip_upload(files=None, name="repo.zip"):
    return SimpleUploadedFile(name, archives.make_zip(files or archives.add_sub_files()), "application/zip")


def record(actor, files=None, name="demo"):
    upload = zip_upload(files)
    return repository_upload(name=name, archive=upload, filename=upload.name, actor=actor).repository


# --- API --------------------------------------------------------------------------


def test_the_api_uploads_an_archive_and_returns_the_documented_shape(client, deployer, token_for):
    response = client.post(
        reverse("api:repositories"),
        {"name": "add-sub", "archive": zip_upload()},
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"id", "name", "digest", "status", "findings", "models", "warnings"}
    assert body["status"] == "valid"
    (model,) = body["models"]
    assert model == {
        "name": "add_sub",
        "backend": "python",
        "platform": "",
        "max_batch_size": 0,
        "versions": [1],
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "dims": [4]},
            {"name": "INPUT1", "datatype": "FP32", "dims": [4]},
        ],
        "outputs": [
            {"name": "OUTPUT0", "datatype": "FP32", "dims": [4]},
            {"name": "OUTPUT1", "datatype": "FP32", "dims": [4]},
        ],
        "config": "explicit",
        "warnings": [],
    }
    again = client.post(
        reverse("api:repositories"),
        {"name": "add-sub", "archive": zip_upload()},
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert again.json()["created"] is False


def test_the_api_reports_an_invalid_repository_with_its_findings(client, deployer, token_for):
    files = archives.tree_of(archives.EXAMPLES / "broken")
    response = client.post(
        reverse("api:repositories"),
        {"archive": zip_upload(files, "broken.zip")},
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "broken"
    assert body["status"] == "invalid"
    assert {"severity", "model", "file", "message"} == set(body["findings"][0])


def test_the_api_rejects_an_unsafe_archive_with_400_naming_the_entry(client, deployer, token_for):
    files = {"../evil.py": b"x", **archives.add_sub_files()}
    response = client.post(
        reverse("api:repositories"),
        {"archive": SimpleUploadedFile("e.tgz", archives.make_tar_gz(files))},
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["path"] == "archive"
    assert "../evil.py" in error["message"]
    assert not ModelRepository.objects.exists()


def test_the_api_imports_a_server_path_from_json(client, deployer, token_for, settings):
    settings.REPOSITORY_IMPORT_ROOTS = [str(archives.EXAMPLES)]
    response = client.post(
        reverse("api:repositories"),
        {"name": "strings", "path": str(archives.EXAMPLES / "string_tools")},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert response.status_code == 201
    assert response.json()["models"][0]["name"] == "uppercase"
    bad = client.post(
        reverse("api:repositories"),
        "{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["code"] == "invalid_json"


def test_the_api_hides_repositories_from_users_without_a_role(client, deployer, outsider, viewer, token_for):
    repository = record(deployer)
    url = reverse("api:repository", args=[repository.pk])
    assert client.get(url, HTTP_AUTHORIZATION=token_for(outsider)).status_code == 404
    assert client.get(url, HTTP_AUTHORIZATION=token_for(viewer)).json()["digest"] == repository.digest
    assert client.delete(url, HTTP_AUTHORIZATION=token_for(viewer)).status_code == 403
    refused = client.post(reverse("api:repositories"), {"archive": zip_upload()}, HTTP_AUTHORIZATION=token_for(viewer))
    assert refused.status_code == 403


def test_the_api_deletes_a_repository(client, deployer, token_for):
    repository = record(deployer)
    response = client.delete(reverse("api:repository", args=[repository.pk]), HTTP_AUTHORIZATION=token_for(deployer))
    assert response.status_code == 204
    assert not ModelRepository.objects.exists()
    assert AuditEvent.objects.get(action="repository.deleted").before["digest"] == repository.digest


@pytest.mark.django_db(transaction=True)
def test_deleting_removes_the_files_after_commit(deployer):
    from deployments.services.repositories import repository_delete

    repository = record(deployer)
    assert repository.path.is_dir()
    repository_delete(repository=repository, actor=deployer)
    assert not repository.path.exists()
    assert list(Path(repository.path).parent.iterdir()) == []


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=2000), st.binary(max_size=500).map(lambda b: b"PK\x03\x04" + b)))
def test_random_bytes_never_cause_a_server_error(client, deployer, token_for, data):
    response = client.post(
        reverse("api:repositories"),
        {"archive": SimpleUploadedFile("r.zip", data)},
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert response.status_code in (200, 201, 400)


# --- pages --------------------------------------------------------------------------


def test_the_list_page_shows_repositories_and_the_upload_form(client, deployer):
    repository = record(deployer, name="add-sub")
    client.force_login(deployer)
    page = client.get(reverse("repositories")).content.decode()
    assert "add-sub" in page
    assert repository.short_digest in page
    assert 'id="upload-form"' in page
    assert "Import from the server" in page


def test_viewers_see_the_list_without_upload_forms(client, deployer, viewer):
    record(deployer)
    client.force_login(viewer)
    page = client.get(reverse("repositories")).content.decode()
    assert "demo" in page
    assert 'id="upload-form"' not in page


def test_an_empty_list_says_what_to_do(client, deployer):
    client.force_login(deployer)
    assert "No repositories yet" in client.get(reverse("repositories")).content.decode()


def test_uploading_through_htmx_redirects_to_the_new_repository(client, deployer):
    client.force_login(deployer)
    response = client.post(
        reverse("repository-upload"), {"name": "web", "archive": zip_upload()}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204
    repository = ModelRepository.objects.get()
    assert response["HX-Redirect"] == reverse("repository", args=[repository.pk])


def test_a_rejected_upload_rerenders_only_the_form_with_the_error(client, deployer):
    client.force_login(deployer)
    response = client.post(
        reverse("repository-upload"),
        {"name": "x", "archive": SimpleUploadedFile("x.zip", b"not an archive")},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert body.lstrip().startswith('<form id="upload-form"')
    assert "not a .zip, .tar.gz or .tgz archive" in body


def test_the_detail_page_shows_models_findings_config_and_files(client, deployer):
    repository = record(deployer, archives.tree_of(archives.EXAMPLES / "broken"), name="broken")
    client.force_login(deployer)
    page = client.get(reverse("repository", args=[repository.pk])).content.decode()
    assert repository.digest in page
    assert "must be fixed before this repository can be deployed" in page
    assert "dynamic_batching needs max_batch_size &gt; 0" in page
    assert "renamed/config.pbtxt" in page
    assert "config.pbtxt</summary>" in page
    assert "model.pt" in page  # the file tree
    # typo's config.pbtxt does not parse: its tensors are unknown, not "none declared".
    assert "Not known: its config.pbtxt could not be read" in page
    assert "config.pbtxt, unreadable" in page


def test_the_detail_page_is_404_for_users_without_a_role(client, deployer, outsider):
    repository = record(deployer)
    client.force_login(outsider)
    assert client.get(reverse("repository", args=[repository.pk])).status_code == 404
    assert client.post(reverse("repository-delete", args=[repository.pk])).status_code == 404


def test_delete_is_confirmed_first_and_needs_csrf(deployer):
    from django.test import Client

    repository = record(deployer)
    client = Client(enforce_csrf_checks=True)
    client.force_login(deployer)
    url = reverse("repository-delete", args=[repository.pk])
    page = client.get(url)  # the confirmation: what will happen, nothing done yet
    assert page.status_code == 200
    assert "removes the record and its stored files now" in page.content.decode()
    assert client.post(url, {"confirmed": "1"}).status_code == 403  # no CSRF token
    assert ModelRepository.objects.filter(pk=repository.pk).exists()
    client = Client()
    client.force_login(deployer)
    assert client.post(url).status_code == 200  # unconfirmed: the question again
    assert ModelRepository.objects.filter(pk=repository.pk).exists()
    client.post(url, {"confirmed": "1"})
    assert not ModelRepository.objects.filter(pk=repository.pk).exists()


def test_the_list_page_runs_a_constant_number_of_queries(client, deployer):
    client.force_login(deployer)

    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("repositories")).status_code == 200
        return len(queries)

    def add(n, start):
        for i in range(start, start + n):
            files = archives.add_sub_files()
            files["add_sub/1/model.py"] += f"# {i}\n".encode()
            record(deployer, files, name=f"r{i}")

    add(5, 0)
    five = count_queries()
    add(20, 5)
    assert count_queries() == five


def test_an_invalid_upload_counts_its_errors_in_words(client, deployer):
    client.force_login(deployer)
    files = archives.add_sub_files()
    files["add_sub/config.pbtxt"] = files["add_sub/config.pbtxt"].replace(b"dims", b"dim", 1)
    answer = client.post(reverse("repository-upload"), {"name": "one-typo", "archive": zip_upload(files)}, follow=True)
    page = answer.content.decode()
    assert "recorded as revision 1: invalid (1 error to fix)" in page
