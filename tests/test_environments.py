"""Environment policy pages and signed webhooks delivered by a real worker."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from deployments import crypto
from deployments.models import AuditEvent, Environment, EnvironmentMembership, WebhookDelivery
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from tests import processes
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import local_target

pytestmark = pytest.mark.django_db

SECRET = "webhook-signing-secret-123"


def test_admins_set_the_policy_and_roles_and_the_secret_never_shows(client, admin, viewer, django_user_model):
    prod = local_target("local-prod", "prod").environment
    member = make_user(django_user_model, "member")
    client.force_login(admin)
    page = reverse("environment", args=[prod.pk])
    saved = client.post(
        page,
        {
            "position": 2,
            "approvals_required": 2,
            "approver_group": "",
            "approval_lifetime_hours": 24,
            "approve_deletes": "on",
            "load_tests": "approval",
            "webhook_url": "https://hooks.example.com/triton",
            "webhook_secret": SECRET,
        },
    )
    assert saved.status_code == 302
    prod.refresh_from_db()
    assert (prod.approvals_required, prod.approval_lifetime_hours, prod.approve_traffic) == (2, 24, False)
    assert prod.load_tests == "approval"
    assert SECRET not in prod.webhook_secret_encrypted
    assert crypto.decrypt(prod.webhook_secret_encrypted) == SECRET
    assert SECRET not in client.get(page).content.decode()
    changed = AuditEvent.objects.get(action="environment.changed")
    assert changed.before["approvals_required"] == 0
    assert changed.after["approvals_required"] == 2
    assert (changed.before["load_tests"], changed.after["load_tests"]) == ("allowed", "approval")
    assert SECRET not in json.dumps([changed.before, changed.after, changed.details])
    assert changed.after["webhook"] == "https://hooks.example.com/…"  # the URL's path may be a secret too
    assert "/triton" not in json.dumps(changed.after)

    bad = client.post(page, {"position": 2, "approvals_required": 11, "approval_lifetime_hours": 24})
    assert bad.status_code == 400
    assert (
        client.post(
            reverse("environment-membership-add", args=[prod.pk]), {"username": "member", "role": "deployer"}
        ).status_code
        == 302
    )
    assert EnvironmentMembership.objects.get(user=member).role == "deployer"
    assert AuditEvent.objects.filter(action="membership.granted").count() == 1

    client.force_login(viewer)
    assert client.post(page, {"position": 0, "approvals_required": 0, "approval_lifetime_hours": 1}).status_code == 403
    assert (
        client.post(
            reverse("environment-membership-add", args=[prod.pk]), {"username": "viewer", "role": "admin"}
        ).status_code
        == 302
    )
    assert not EnvironmentMembership.objects.filter(user=viewer).exists()  # refused, with a message
    prod.refresh_from_db()
    assert prod.approvals_required == 2


class _Receiver(BaseHTTPRequestHandler):
    """Answers 500 to the first delivery and 204 after that, recording each."""

    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"headers": dict(self.headers), "body": body})
        self.send_response(500 if len(self.received) == 1 else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver.received
    server.shutdown()
    server.server_close()


@pytest.fixture
def quick_retries(monkeypatch):
    # Read by the worker process the next fixture starts.
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "1,1")


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_webhooks_are_signed_retried_and_recorded(quick_retries, celery_worker, receiver, django_user_model):
    url, received = receiver
    requester = make_user(django_user_model, "requester", "deployer")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=requester).repository
    prod = local_target("local-prod", "prod", approvals=1)
    Environment.objects.filter(pk=prod.environment_id).update(
        webhook_url=url, webhook_secret_encrypted=crypto.encrypt(SECRET)
    )
    prod.refresh_from_db()
    deployment_create(name="hooked", repository=repository, target=prod, actor=requester)

    processes.wait_for(
        lambda: WebhookDelivery.objects.get().status != "pending",
        within=30,
        what="the webhook delivered or given up",
        process=celery_worker,
    )
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "delivered"
    assert delivery.attempts == 2
    assert delivery.response_status == 204
    assert len(received) == 2
    assert received[0]["body"] == received[1]["body"] == delivery.body.encode()
    expected = "sha256=" + hmac.new(SECRET.encode(), received[1]["body"], hashlib.sha256).hexdigest()
    assert received[1]["headers"]["X-Dashboard-Signature"] == expected
    event = json.loads(received[1]["body"])
    assert event["event"] == "approval.requested"
    assert event["environment"] == "prod"
    assert event["data"]["deployment"]["name"] == "hooked"
    assert event["data"]["requested_by"] == "requester"
