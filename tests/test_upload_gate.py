"""The upload limit inside the dashboard (issue 17, finding 3): an archive
is counted as it arrives and refused with 413 the moment it passes the
limit, even when its declared length did not give it away; the page tells
the browser the limit. The real server's side, with 300 MiB streamed at
it, is tests/test_upload_limits.py."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from deployments.models import ModelRepository

pytestmark = pytest.mark.django_db

LIMIT = 1000


@pytest.fixture
def small_limit(settings):
    settings.REPOSITORY_MAX_UPLOAD_BYTES = LIMIT


def over_the_limit():
    # The multipart envelope's allowance lets this through the declared-length check:
    # only counting the archive's bytes as they arrive catches it.
    return SimpleUploadedFile("big.zip", bytes(LIMIT * 5), "application/zip")


def spooled(settings) -> list[str]:
    from pathlib import Path

    return [path.name for path in Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir()]


def test_an_archive_over_the_limit_on_the_page_is_a_413_that_names_the_limit(client, deployer, small_limit, settings):
    client.force_login(deployer)
    answer = client.post(reverse("repository-upload"), {"name": "big", "archive": over_the_limit()})
    assert answer.status_code == 413
    assert "1000 bytes" in answer.content.decode()
    assert not ModelRepository.objects.exists()
    assert spooled(settings) == []


def test_an_archive_over_the_limit_through_the_api_is_a_413_that_names_the_limit(
    client, deployer, token_for, small_limit
):
    answer = client.post(
        reverse("api:repositories"),
        {"name": "big", "archive": over_the_limit()},
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert answer.status_code == 413
    error = answer.json()["errors"][0]
    assert error["code"] == "too_large"
    assert error["path"] == "archive"
    assert "1000 bytes" in error["message"]


def test_a_file_sent_to_a_form_that_takes_none_is_not_kept(client, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # any file Django accepted would go to the upload folder
    answer = client.post(reverse("login"), {"username": "x", "password": "y", "extra": over_the_limit()})
    assert answer.status_code < 500
    assert not answer.wsgi_request.FILES


def test_the_upload_page_gives_the_browser_the_limit(client, deployer, small_limit):
    client.force_login(deployer)
    page = client.get(reverse("repositories")).content.decode()
    assert f'data-max-bytes="{LIMIT}"' in page
    assert "up to 1000\xa0bytes" in page


# The front proxy's question before it spools an upload (nginx's auth_request, deploy/nginx/):
# the request's headers without its body, its method and declared length in X-Upload-Preflight.


def preflight(client, url: str, length: int = 1000, **headers):
    return client.get(url, HTTP_X_UPLOAD_PREFLIGHT=f"POST {length}", content_type="multipart/form-data", **headers)


def test_the_proxy_is_told_to_refuse_an_upload_from_a_stranger_or_a_viewer(client, viewer, token_for):
    page, api = reverse("repository-upload"), reverse("api:repositories")
    assert preflight(client, page).status_code == 401
    assert preflight(client, api).status_code == 401
    assert preflight(client, api, HTTP_AUTHORIZATION="Token nonsense").status_code == 401
    assert preflight(client, api, HTTP_AUTHORIZATION=token_for(viewer)).status_code == 403
    client.force_login(viewer)
    assert preflight(client, page).status_code == 403


def test_the_proxy_is_told_to_take_a_deployers_upload_within_the_limit_only(client, deployer, token_for, small_limit):
    page, api = reverse("repository-upload"), reverse("api:repositories")
    token = token_for(deployer)
    assert preflight(client, api, HTTP_AUTHORIZATION=token).status_code == 204
    assert preflight(client, api, length=10**9, HTTP_AUTHORIZATION=token).status_code == 403
    client.force_login(deployer)
    assert preflight(client, page).status_code == 204
    assert preflight(client, page, length=10**9).status_code == 403
    # Reads pass untouched.
    assert client.get(page, HTTP_X_UPLOAD_PREFLIGHT="GET ").status_code == 204


def test_the_console_takes_input_files_from_those_who_may_use_it_within_its_cap(
    client, deployer, viewer, repository, settings
):
    from deployments.models import Deployment
    from deployments.services.deployments import deployment_create
    from tests.engine import local_target

    deployment = deployment_create(name="console", repository=repository, target=local_target(), actor=deployer)
    Deployment.objects.filter(pk=deployment.pk).update(status="healthy", scoring_uri="http://127.0.0.1:9/score")
    url = reverse("deployment-console", args=[deployment.pk])

    def post(**extra):
        npy = SimpleUploadedFile("x.npy", bytes(2048), "application/octet-stream")
        return client.post(url, {"model": "add_sub", "mode-INPUT0": "npy", "file-INPUT0": npy}, **extra)

    client.force_login(deployer)
    assert "file-INPUT0" in post().wsgi_request.FILES
    settings.CONSOLE_MAX_REQUEST_BYTES = 1024
    too_large = post()
    assert too_large.status_code == 413
    assert "The console takes at most 1.0\xa0KB (1024 bytes)" in too_large.content.decode()
    client.force_login(viewer)
    refused = post()
    assert refused.status_code == 403
    assert not refused.wsgi_request.FILES
    assert not spooled(settings)
