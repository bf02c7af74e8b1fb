"""Every URL pattern, walked: what an outsider and a viewer can reach, and
that every page POST needs its CSRF token. New URLs are covered the day they
are added, because the list comes from the resolver, not from this file."""

import pytest
from django.test import Client
from django.urls import reverse

from deployments.models import (
    AuditEvent,
    ConfigSearch,
    Deployment,
    DeployRequest,
    EnvironmentMembership,
    GoldenRequest,
    LoadTest,
    Migration,
    ModelLine,
    ModelRepository,
    Operation,
    Registration,
    Rollout,
    Target,
)
from deployments.services.api_tokens import api_token_create
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from tests.archives import EXAMPLES
from tests.conftest import make_user
from tests.engine import local_target
from tests.urls import url_patterns

pytestmark = pytest.mark.django_db

# Patterns anyone signed in may use on themselves, or that need no sign-in.
OWN_ACCOUNT = {"login", "logout", "profile", "token-create", "api:health", "sso-login", "sso-callback"}


@pytest.fixture
def world(django_user_model):
    """One of everything, created by someone else in an environment that needs approval."""
    owner = make_user(django_user_model, "owner", "admin")
    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=owner).repository
    target = local_target("local-prod", "prod", approvals=1)
    deployment = deployment_create(name="walked", repository=repository, target=target, actor=owner)
    _, _ = api_token_create(user=owner, name="owner's")
    membership = EnvironmentMembership.objects.create(user=owner, environment=target.environment, role="approver")
    rollout = Rollout.objects.create(
        deployment=deployment,
        spec={},
        candidate_digest="c" * 64,
        baseline_digest=deployment.spec_digest,
        candidate_name="sccccccccc",
        baseline_name="sbbbbbbbbb",
        plan_digest="p" * 64,
        status=Rollout.Status.RUNNING,
        phase=Rollout.Phase.BAKING,
        created_by=owner,
    )
    test = LoadTest.objects.create(
        deployment=deployment,
        model="add_sub",
        concurrency=[1, 2],
        max_requests=100,
        max_seconds=60,
        status=LoadTest.Status.QUEUED,
        requested_by=owner,
    )
    search = ConfigSearch.objects.create(
        repository=repository,
        model="add_sub",
        target=target,
        deployment=deployment,
        grid=[{"dynamic_batching": False, "max_queue_delay_us": 0, "instances": 1}],
        concurrency=[1],
        latency_budget_ms=100,
        requested_by=owner,
    )
    return {
        "test_id": test.pk,
        "search_id": search.pk,
        "repository_id": repository.pk,
        "line_id": repository.line_id,
        "target_id": target.pk,
        "deployment_id": deployment.pk,
        "request_id": deployment.requests.get().pk,
        "token_id": owner.api_tokens.get().pk,
        "chart": "requests",
        "environment_id": target.environment_id,
        "membership_id": membership.pk,
        "delivery_id": 1,
        "rollout_id": rollout.pk,
        "golden_id": GoldenRequest.objects.create(deployment=deployment, name="ones", request={}).pk,
        "migration_id": Migration.objects.create(source=deployment, destination=deployment).pk,
        "figure": "p95_ms",
        "seq": AuditEvent.objects.filter(environment="prod").latest("seq").seq,
    }


def _urls(world):
    for name, kwargs in url_patterns():
        if name in OWN_ACCOUNT or name.startswith("admin:"):
            # Django's admin is for staff only; the tests below check that it turns others away.
            continue
        yield name, reverse(name, kwargs={key: world[key] for key in kwargs}), bool(kwargs)


def _state():
    return (
        AuditEvent.objects.count(),
        Deployment.objects.count(),
        DeployRequest.objects.filter(status="pending").count(),
        Operation.objects.count(),
        ModelRepository.objects.count(),
        ModelLine.objects.count(),
        Registration.objects.count(),
        Target.objects.count(),
        EnvironmentMembership.objects.count(),
        list(Rollout.objects.values_list("status", "phase")),
        GoldenRequest.objects.count(),
        list(Migration.objects.values_list("status", flat=True)),
    )


def test_an_outsider_finds_nothing_and_changes_nothing(client, django_user_model, world, token_for):
    outsider = make_user(django_user_model, "outsider")
    client.force_login(outsider)
    header = token_for(outsider)
    before, wrong = _state(), []
    for name, url, has_object in _urls(world):
        api = name.startswith("api:")
        extra = {"HTTP_AUTHORIZATION": header} if api else {}
        for method in ("get", "post"):
            response = getattr(client, method)(url, **extra)
            # 405 for the wrong method comes before any lookup, so it tells nothing.
            allowed = {404, 405} if has_object else {403, 405}
            if not has_object and method == "get" and not api:
                allowed = {200, 403, 405}  # list pages render empty or refuse; POST-only ones say so
            if not has_object and api and method == "get":
                allowed = {200, 403, 405}
            if api and method == "post":
                # The body's schema is checked before the role: a 400 tells
                # nothing the API's published document does not.
                allowed |= {400}
            if response.status_code not in allowed:
                wrong.append(f"{method.upper()} {url} ({name}): {response.status_code}")
            elif response.status_code == 200 and b"walked" in response.content:
                wrong.append(f"{method.upper()} {url} ({name}) lists the deployment")
    assert not wrong, "\n".join(wrong)
    assert _state() == before
    assert client.get("/admin/").status_code == 302  # to the admin's own sign-in, staff only


def test_a_viewer_sees_but_cannot_change_anything(client, viewer, world, token_for):
    client.force_login(viewer)
    header = token_for(viewer)
    before, wrong = _state(), []
    for name, url, _ in _urls(world):
        extra = {"HTTP_AUTHORIZATION": header} if name.startswith("api:") else {}
        for method in ("post", "delete"):
            response = getattr(client, method)(url, **extra)
            if response.status_code not in {302, 400, 403, 404, 405, 409}:
                wrong.append(f"{method.upper()} {url} ({name}): {response.status_code}")
    assert not wrong, "\n".join(wrong)
    assert _state() == before
    assert Deployment.objects.get(pk=world["deployment_id"]).status == "pending_approval"


def test_every_page_post_needs_its_csrf_token(django_user_model, world):
    admin = make_user(django_user_model, "csrf-admin", "admin")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    before, wrong = _state(), []
    for name, url, _ in _urls(world):
        if name.startswith("api:"):
            continue  # token auth, no cookies: nothing for a forged form to ride on
        response = client.post(url)
        if response.status_code not in {403, 405}:
            wrong.append(f"POST {url} without a CSRF token: {response.status_code}")
    assert not wrong, "\n".join(wrong)
    assert _state() == before
