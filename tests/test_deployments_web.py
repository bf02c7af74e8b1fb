"""Deployment pages and API: requests, validation, permissions, queries."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments.models import AuditEvent, Deployment, Operation
from deployments.services.deployments import deployment_create
from deployments.services.repositories import repository_load_example
from tests.archives import EXAMPLES
from tests.engine import local_target

pytestmark = pytest.mark.django_db


@pytest.fixture
def repository(deployer):
    return repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository


@pytest.fixture
def target():
    return local_target()


def test_the_api_creates_a_deployment_and_queues_one_operation(client, deployer, token_for, repository, target):
    response = client.post(
        reverse("api:deployments"),
        {"name": "add-sub", "repository": repository.pk, "target": "local-dev", "resources": {"cpu_cores": 1}},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(deployer),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["approval"] == {"required": False, "approvals_required": 0, "status": "not_required", "request": None}
    assert body["repository"]["digest"] == repository.digest
    deployment = Deployment.objects.get(pk=body["id"])
    assert deployment.operations.get().status == Operation.Status.QUEUED
    assert AuditEvent.objects.filter(action="deployment.requested", object_id=str(deployment.pk)).count() == 1
    detail = client.get(reverse("api:deployment", args=[deployment.pk]), HTTP_AUTHORIZATION=token_for(deployer)).json()
    assert {"health", "operations", "spec_digest", "scoring_uri", "approval"} <= set(detail)
    assert detail["operations"][0]["kind"] == "deploy"


@pytest.mark.parametrize(
    ("body", "path", "says"),
    [
        ({"name": "Bad Name"}, "name", "lower-case"),
        ({"repository": 99999}, "repository", "No repository"),
        ({"target": "nowhere"}, "target", "No target"),
        ({"mode": "magic"}, "mode", "'triton' or 'entry_script'"),
        ({"mode": "entry_script"}, "entry_script", "needs the score.py text"),
        ({"mode": "entry_script", "entry_script": "def init():\n    pass\n"}, "entry_script", "must define run()"),
        ({"mode": "entry_script", "entry_script": "def run(:"}, "entry_script", "score.py line 1"),
        ({"worker_count": 0}, "worker_count", "greater than or equal to 1"),
        ({"resources": {"gpu_cores": -1}}, "resources.gpu_cores", "greater than or equal to 0"),
        ({"resources": {"tpus": 1}}, "resources.tpus", "Unknown field"),
        ({"auth_enabled": "yes"}, "auth_enabled", "valid boolean"),
        ({"colour": "blue"}, "colour", "Unknown field"),
    ],
)
def test_the_api_names_each_bad_field(client, deployer, token_for, repository, target, body, path, says):
    payload = {"name": "ok", "repository": repository.pk, "target": target.name, **body}
    response = client.post(
        reverse("api:deployments"), payload, content_type="application/json", HTTP_AUTHORIZATION=token_for(deployer)
    )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["path"] == path
    assert says in error["message"]
    assert not Deployment.objects.exists()


def test_an_invalid_repository_cannot_be_deployed(deployer, target):
    from deployments.errors import DomainError

    broken = repository_load_example(path=EXAMPLES / "broken", actor=deployer).repository
    with pytest.raises(DomainError, match="is invalid"):
        deployment_create(name="nope", repository=broken, target=target, actor=deployer)


def test_names_are_unique_per_target_among_live_deployments(deployer, repository, target):
    from deployments.errors import DomainError

    deployment_create(name="one", repository=repository, target=target, actor=deployer)
    with pytest.raises(DomainError, match="already has a deployment named one"):
        deployment_create(name="one", repository=repository, target=target, actor=deployer)


def test_an_environment_needing_approval_holds_the_deploy(deployer, repository):
    prod = local_target("local-prod", "prod", approvals=1)
    deployment = deployment_create(name="held", repository=repository, target=prod, actor=deployer)
    assert deployment.status == Deployment.Status.PENDING_APPROVAL
    assert not deployment.operations.exists()


def test_a_second_operation_waits_for_the_first(client, deployer, token_for, repository, target):
    deployment = deployment_create(name="busy", repository=repository, target=target, actor=deployer)
    response = client.post(
        reverse("api:deployment-redeploy", args=[deployment.pk]), HTTP_AUTHORIZATION=token_for(deployer)
    )
    assert response.status_code == 409
    assert (
        client.delete(
            reverse("api:deployment", args=[deployment.pk]), HTTP_AUTHORIZATION=token_for(deployer)
        ).status_code
        == 409
    )


def test_a_changed_spec_gets_a_new_digest(deployer, repository, target):
    from deployments.services.deployments import deployment_redeploy

    deployment = deployment_create(name="grow", repository=repository, target=target, actor=deployer)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    first = deployment.spec_digest
    deployment_redeploy(deployment=deployment, actor=deployer, changes={})
    deployment.refresh_from_db()
    assert deployment.spec_digest == first
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    deployment_redeploy(deployment=deployment, actor=deployer, changes={"resources": {"memory_gb": 8}})
    deployment.refresh_from_db()
    assert deployment.spec_digest != first
    event = AuditEvent.objects.filter(action="deployment.redeploy_requested").order_by("-seq").first()
    assert event.details == {"spec_changed": True, "needs_approval": False}


def test_viewers_and_outsiders_cannot_change_anything(
    client, deployer, viewer, outsider, token_for, repository, target
):
    deployment = deployment_create(name="guarded", repository=repository, target=target, actor=deployer)
    url = reverse("api:deployment", args=[deployment.pk])
    assert client.get(url, HTTP_AUTHORIZATION=token_for(outsider)).status_code == 404
    assert client.get(url, HTTP_AUTHORIZATION=token_for(viewer)).status_code == 200
    assert client.delete(url, HTTP_AUTHORIZATION=token_for(viewer)).status_code == 403
    refused = client.post(
        reverse("api:deployments"),
        {"name": "x", "repository": repository.pk, "target": target.pk},
        content_type="application/json",
        HTTP_AUTHORIZATION=token_for(viewer),
    )
    assert refused.status_code == 403
    client.force_login(outsider)
    assert client.get(reverse("deployment", args=[deployment.pk])).status_code == 404
    assert client.post(reverse("deployment-delete", args=[deployment.pk])).status_code == 404


def test_page_actions_need_csrf(deployer, repository, target):
    deployment = deployment_create(name="csrf", repository=repository, target=target, actor=deployer)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(deployer)
    assert browser.post(reverse("deployment-delete", args=[deployment.pk])).status_code == 403
    assert browser.post(reverse("deployment-redeploy", args=[deployment.pk])).status_code == 403
    assert browser.post(reverse("deployment-create"), {"name": "x"}).status_code == 403
    deployment.refresh_from_db()
    assert deployment.desired_state == Deployment.Desired.PRESENT


def test_the_create_form_deploys_and_redirects(client, deployer, repository, target):
    client.force_login(deployer)
    page = client.get(reverse("deployment-create") + f"?repository={repository.pk}").content.decode()
    assert f'<option value="{repository.pk}" selected>' in page
    response = client.post(
        reverse("deployment-create"),
        {
            "name": "from-form",
            "repository": repository.pk,
            "target": target.pk,
            "mode": "triton",
            "worker_count": 1,
            "auth_enabled": "on",
        },
    )
    deployment = Deployment.objects.get(name="from-form")
    assert response["Location"] == reverse("deployment", args=[deployment.pk])
    bad = client.post(
        reverse("deployment-create"),
        {"name": "Bad Name", "repository": repository.pk, "target": target.pk, "mode": "triton", "worker_count": 1},
    )
    assert bad.status_code == 400
    assert "lower-case letters" in bad.content.decode()


def test_the_detail_poll_refreshes_every_section_that_can_change(client, deployer, repository, target):
    deployment = deployment_create(name="poll", repository=repository, target=target, actor=deployer)
    client.force_login(deployer)
    url = reverse("deployment", args=[deployment.pk])
    polling = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    # Fast while the deploy is under way, and the poll keeps the page's range.
    assert polling.lstrip().startswith(f'<div id="live" hx-get="{url}?range=24h" hx-trigger="every 2s"')
    assert "Test inference" not in polling  # nothing answers yet
    Deployment.objects.filter(pk=deployment.pk).update(
        status=Deployment.Status.HEALTHY, scoring_uri="http://127.0.0.1:20000"
    )
    done = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 10s"' in done  # nothing in progress: a calmer pace, not a stop
    for section in ("actions", "spec", "traffic", "rollouts", "performance", "batching"):
        assert f'<div id="{section}-section" class="live-section" hx-swap-oob="true">' in done
    assert '<section id="history" class="live-section" hx-swap-oob="true"' in done
    assert "Test inference" in done  # the actions changed with the status, without a reload
    page = client.get(url).content.decode()
    assert "hx-swap-oob" not in page  # the page itself swaps nothing out of band


def test_a_deleted_deployment_is_not_polled(client, deployer, repository, target):
    deployment = deployment_create(name="gone", repository=repository, target=target, actor=deployer)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.DELETED)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    client.force_login(deployer)
    page = client.get(reverse("deployment", args=[deployment.pk])).content.decode()
    assert '<div id="live">' in page


def test_history_folds_console_calls_by_hour_and_filters_by_kind(client, deployer, repository, target, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from deployments.audit import audit

    deployment = deployment_create(name="busy", repository=repository, target=target, actor=deployer)
    hour = timezone.localtime().replace(minute=0, second=0, microsecond=0)
    moments = [hour - timedelta(hours=2) + timedelta(minutes=m) for m in (1, 5, 9)] + [hour + timedelta(seconds=1)]
    real_now = timezone.now
    for at in moments:
        # The chain stamps events with the time they are written: written "then".
        monkeypatch.setattr(timezone, "now", lambda at=at: at)
        audit(actor=deployer, action="console.inferred", obj=deployment, details={"model": "add_sub"})
    monkeypatch.setattr(timezone, "now", real_now)
    client.force_login(deployer)
    url = reverse("deployment", args=[deployment.pk])
    page = client.get(url).content.decode()
    assert page.count('class="folded"') == 2  # one line per hour with calls, not one per call
    assert "3 console calls" in page
    assert "1 console call<" in page
    assert "deployment.requested" in page
    console = client.get(url, {"history": "console"}).content.decode()
    assert "deployment.requested" not in console.split('id="history"')[1]
    changes = client.get(url, {"history": "changes"}).content.decode().split('id="history"')[1]
    assert "deployment.requested" in changes
    assert "console call" not in changes
    engine = client.get(url, {"history": "engine"}).content.decode().split('id="history"')[1]
    assert "Nothing of this kind yet." in engine


def test_the_strip_axis_marks_round_local_times_and_leaves_its_ends_clear(settings):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from deployments.selectors.health import ticks

    settings.TIME_ZONE = "Europe/Paris"
    with timezone.override("Europe/Paris"):
        now = datetime(2026, 11, 30, 14, 17, tzinfo=ZoneInfo("Europe/Paris"))
        hour = ticks("1h", now=now)
        assert [f"{timezone.localtime(t.at):%H:%M}" for t in hour] == [
            "13:20",
            "13:30",
            "13:40",
            "13:50",
            "14:00",
            "14:10",
        ]
        assert hour[0].offset == pytest.approx(3 / 60 * 100, abs=0.01)
        day = ticks("24h", now=now)
        # 15:00 is 43 minutes into the day: within the 3 % left clear at the ends.
        assert [f"{timezone.localtime(t.at):%H}" for t in day] == ["18", "21", "00", "03", "06", "09", "12"]
        # 14:17 on the 30th: the 24th's midnight is 14 h into the week and kept; none falls within 5 h of an end.
        week = ticks("7d", now=now)
        assert [timezone.localtime(t.at).day for t in week] == [24, 25, 26, 27, 28, 29, 30]
        late = ticks("7d", now=now.replace(hour=2))  # today's midnight is 2 h before the end: no label there
        assert [timezone.localtime(t.at).day for t in late] == [24, 25, 26, 27, 28, 29]


def test_the_range_sets_the_strip_the_axis_and_the_charts(client, deployer, repository, target):
    from datetime import timedelta

    from django.utils import timezone

    from deployments.models import HealthSample

    deployment = deployment_create(name="ranged", repository=repository, target=target, actor=deployer)
    now = timezone.now()
    HealthSample.objects.create(deployment=deployment, at=now - timedelta(days=3), status="healthy")
    HealthSample.objects.create(deployment=deployment, at=now - timedelta(minutes=30), status="unhealthy")
    client.force_login(deployer)
    url = reverse("deployment", args=[deployment.pk])
    hour = client.get(url, {"range": "1h"}).content.decode()
    shown = re.search(r"Availability \(1 hour\): <strong>([\d.]+)%", hour)
    assert float(shown.group(1)) == pytest.approx(50, abs=0.1)  # healthy for the first half hour of the hour
    assert hour.count("<text ") in (5, 6)  # a mark every 10 minutes (none at the very ends)
    assert "?range=1h" in hour.split("data-series-url=")[1].split(">")[0]
    week = client.get(url, {"range": "7d"}).content.decode()
    assert week.count("<text ") in (6, 7)  # one a day
    assert "Availability (7 days)" in week
    assert "Availability (24 hours)" in client.get(url, {"range": "nonsense"}).content.decode()
    chart = client.get(reverse("deployment-chart", args=[deployment.pk, "requests"]), {"range": "7d"}).json()
    assert chart["end"] - chart["start"] == 7 * 24 * 3600
    assert chart["bucket_seconds"] == 900


def test_a_repository_in_use_cannot_be_deleted(deployer, repository, target):
    from deployments.errors import WrongState
    from deployments.services.repositories import repository_delete

    deployment_create(name="user", repository=repository, target=target, actor=deployer)
    with pytest.raises(WrongState, match="In use by deployment"):
        repository_delete(repository=repository, actor=deployer)


def test_the_list_page_and_api_run_a_constant_number_of_queries(client, deployer, token_for, repository, target):
    client.force_login(deployer)
    header = token_for(deployer)

    def counts():
        with CaptureQueriesContext(connection) as page:
            assert client.get(reverse("deployments")).status_code == 200
        with CaptureQueriesContext(connection) as api:
            assert client.get(reverse("api:deployments"), HTTP_AUTHORIZATION=header).status_code == 200
        return len(page), len(api)

    for n in range(5):
        deployment_create(name=f"d{n}", repository=repository, target=target, actor=deployer)
    counts()  # the token's first use records last_used_at: a write the later calls skip
    five = counts()
    for n in range(5, 50):
        deployment_create(name=f"d{n}", repository=repository, target=target, actor=deployer)
    assert counts() == five


def test_azure_targets_need_azure_sized_names(deployer, repository):
    from deployments.errors import DomainError
    from deployments.models import Environment, Target

    env = Environment.objects.create(name="staging")
    target = Target.objects.create(name="aks", kind="azureml_v1_aks", environment=env, settings={})
    with pytest.raises(DomainError, match="3 to 32 characters") as caught:
        deployment_create(name="a" * 40, repository=repository, target=target, actor=deployer)
    assert caught.value.path == "name"
    with pytest.raises(DomainError, match="starting with a letter"):
        deployment_create(name="9lives", repository=repository, target=target, actor=deployer)


def test_the_list_refreshes_its_rows_in_place(client, deployer, repository, target):
    deployment_create(name="listed", repository=repository, target=target, actor=deployer)
    client.force_login(deployer)
    page = client.get(reverse("deployments")).content.decode()
    assert 'hx-trigger="every 10s"' in page
    fragment = client.get(reverse("deployments"), HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="rows"')
    assert "listed" in fragment
    assert "<html" not in fragment


def test_a_delete_is_confirmed_first_and_says_what_will_happen(client, deployer, repository, target):
    deployment = deployment_create(name="to-go", repository=repository, target=target, actor=deployer)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(
        status=Deployment.Status.HEALTHY, scoring_uri="http://127.0.0.1:20000"
    )
    client.force_login(deployer)
    url = reverse("deployment-delete", args=[deployment.pk])
    page = client.get(url).content.decode()
    assert "This stops its server now: http://127.0.0.1:20000 stops answering." in page
    assert 'name="name"' not in page  # no four eyes in dev: a click confirms
    # A POST without the confirmation (a stray click, an old form) changes nothing.
    assert client.post(url).status_code == 200
    deployment.refresh_from_db()
    assert deployment.desired_state == Deployment.Desired.PRESENT
    answer = client.post(url, {"confirmed": "1"}, follow=True)
    assert "Delete under way: the server is being stopped." in answer.content.decode()
    deployment.refresh_from_db()
    assert deployment.desired_state == Deployment.Desired.ABSENT


def test_a_prod_delete_wants_the_name_typed_and_says_it_goes_to_approval(client, deployer, repository):
    prod = local_target("local-prod", "prod", approvals=1)
    deployment = deployment_create(name="guarded", repository=repository, target=prod, actor=deployer)
    deployment.operations.create(kind=Operation.Kind.DEPLOY, status=Operation.Status.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.HEALTHY)
    from deployments.models import EnvironmentMembership

    EnvironmentMembership.objects.create(user=deployer, environment=prod.environment, role="deployer")
    client.force_login(deployer)
    url = reverse("deployment-delete", args=[deployment.pk])
    page = client.get(url).content.decode()
    assert "asks prod for approval" in page
    assert "Type <code>guarded</code> to confirm" in page
    wrong = client.post(url, {"confirmed": "1", "name": "guard"})
    assert wrong.status_code == 400
    assert "Type guarded exactly to confirm." in wrong.content.decode()
    answer = client.post(url, {"confirmed": "1", "name": "guarded"}, follow=True)
    assert "Delete requested: waiting for approval in prod." in answer.content.decode()
    assert deployment.requests.filter(kind="delete", status="pending").exists()


def test_a_deleted_deployment_shows_no_live_data_and_no_console(client, deployer, repository, target):
    deployment = deployment_create(name="gone", repository=repository, target=target, actor=deployer)
    from django.utils import timezone

    Deployment.objects.filter(pk=deployment.pk).update(
        status=Deployment.Status.DELETED, scoring_uri="http://127.0.0.1:20001", checked_at=timezone.now(), observed={}
    )
    client.force_login(deployer)
    page = client.get(reverse("deployment", args=[deployment.pk])).content.decode()
    assert "http://127.0.0.1:20001" not in page
    assert "deleted: nothing answers" in page
    assert "Last checked" not in page
    assert "checked 0" not in page
    assert "Test inference" not in page
    console = client.get(reverse("deployment-console", args=[deployment.pk]), follow=True)
    assert "gone is deleted: nothing answers to test." in console.content.decode()
    overview = client.get(reverse("overview")).content.decode()
    assert "No deployments yet" not in overview
    assert "No deployment is running (1 deleted or rejected" in overview


def test_the_list_shows_the_last_real_change_not_the_last_health_check(client, deployer, repository, target):
    from datetime import timedelta

    from django.utils import timezone

    from deployments.models import HealthSample

    deployment = deployment_create(name="steady", repository=repository, target=target, actor=deployer)
    hours_ago = timezone.now() - timedelta(hours=3)
    Deployment.objects.filter(pk=deployment.pk).update(created_at=hours_ago, status=Deployment.Status.HEALTHY)
    Operation.objects.filter(deployment=deployment).update(created_at=hours_ago)
    HealthSample.objects.create(deployment=deployment, at=timezone.now() - timedelta(hours=2), status="healthy")
    Deployment.objects.filter(pk=deployment.pk).update(updated_at=timezone.now())  # a health check just now
    client.force_login(deployer)
    page = client.get(reverse("deployments")).content.decode()
    assert "2\xa0hours ago" in page
    assert "0\xa0minutes ago" not in page


def test_sending_a_deployment_to_zero_percent_is_confirmed_first(client, deployer, repository):
    from tests.engine import local_target as target_of

    deployment = deployment_create(name="split", repository=repository, target=target_of(), actor=deployer)
    Operation.objects.update(status=Operation.Status.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(
        status=Deployment.Status.HEALTHY, observed={"traffic": {"sa": 90, "sb": 10}}
    )
    client.force_login(deployer)
    url = reverse("deployment-traffic", args=[deployment.pk])
    asked = client.post(url, {"traffic-sa": "100", "traffic-sb": "0"})
    assert asked.status_code == 200
    page = asked.content.decode()
    assert "sb will get no more requests" in page
    assert 'name="traffic-sb" value="0"' in page  # the split goes with the confirmation
    assert not deployment.operations.filter(kind=Operation.Kind.TRAFFIC).exists()
    client.post(url, {"traffic-sa": "100", "traffic-sb": "0", "confirmed": "1"})
    assert deployment.operations.get(kind=Operation.Kind.TRAFFIC).params == {"traffic": {"sa": 100, "sb": 0}}


def test_the_form_names_worker_processes_in_words(client, deployer):
    client.force_login(deployer)
    page = client.get(reverse("deployment-create")).content.decode()
    assert "Worker processes" in page
    assert ">WORKER_COUNT<" not in page


def test_page_links_keep_the_list_filters(client, deployer, repository, target):
    from deployments.views import deployments as views

    for n in range(views.PAGE_SIZE + 1):
        deployment_create(name=f"many-{n}", repository=repository, target=target, actor=deployer)
    client.force_login(deployer)
    page = client.get(reverse("deployments"), {"status": "queued"}).content.decode()
    assert 'href="?status=queued&amp;page=2"' in page
    rows = client.get(reverse("deployments"), {"status": "queued"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'href="?status=queued&amp;page=2"' in rows  # the 10 s refresh keeps them too
    assert "<select" not in rows  # and renders only the rows
