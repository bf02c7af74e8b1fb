import pytest

from tests.processes import free_port

pytestmark = pytest.mark.django_db


def test_it_reports_database_and_broker_without_authentication(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert body["workers"] == {"online": 0, "last_seen": None}


@pytest.mark.redis
def test_it_answers_503_naming_the_broker_when_redis_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["broker"].startswith("error")
    assert body["database"] == "ok"


def test_it_refuses_other_methods(client):
    response = client.post("/api/v1/health")
    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_every_response_carries_a_request_id(client):
    assert len(client.get("/api/v1/health")["X-Request-ID"]) == 32
    assert client.get("/api/v1/health", HTTP_X_REQUEST_ID="ci-run-42")["X-Request-ID"] == "ci-run-42"
    # A malformed one is replaced, not echoed into logs and headers.
    assert client.get("/api/v1/health", HTTP_X_REQUEST_ID="bad id\r\n")["X-Request-ID"] != "bad id\r\n"
