"""One audit event's page and API: what it changed, who may see it, and
its neighbours as that person sees the log."""

import contextlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments import request_context
from deployments.audit import audit
from deployments.audit.changes import changes
from deployments.models import Environment, EnvironmentMembership
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def during_request(request_id: str, source_ip: str = "10.0.0.7"):
    """Events written inside are stamped as the middleware stamps a request's."""
    token = request_context._current.set(request_context.RequestContext(request_id, source_ip))
    try:
        yield
    finally:
        request_context._current.reset(token)


@pytest.fixture
def dev():
    return Environment.objects.create(name="dev")


@pytest.fixture
def prod():
    return Environment.objects.create(name="prod", position=2)


@pytest.fixture
def dev_member(django_user_model, dev):
    member = make_user(django_user_model, "dev-viewer")
    EnvironmentMembership.objects.create(user=member, environment=dev, role="viewer")
    return member


def page_of(client, seq):
    return client.get(reverse("audit-event", args=[seq]))


def summary(found):
    return [(c.path, c.kind, c.before, c.after) for c in found]


def test_the_diff_names_changed_added_and_removed_keys_nested_ones_by_path():
    before = {
        "mode": "triton",
        "worker_count": 1,
        "resources": {"gpu_cores": 1, "cpu_cores": 2},
        "auth_enabled": True,
        "traffic": {"blue": 100},
        "old": "x",
    }
    after = {
        "mode": "entry_script",
        "worker_count": 1,
        "resources": {"gpu_cores": 2, "memory_gb": 4},
        "auth_enabled": 1,
        "traffic": {"blue": 100},
        "new": [1, 2],
    }
    assert summary(changes(before, after)) == [
        ("auth_enabled", "changed", True, 1),  # JSON tells a flag from a number; Python's == does not
        ("mode", "changed", "triton", "entry_script"),
        ("new", "added", None, [1, 2]),
        ("old", "removed", "x", None),
        ("resources.cpu_cores", "removed", 2, None),
        ("resources.gpu_cores", "changed", 1, 2),
        ("resources.memory_gb", "added", None, 4),
        ("traffic", "unchanged", {"blue": 100}, {"blue": 100}),
        ("worker_count", "unchanged", 1, 1),
    ]


def test_a_creation_adds_every_key_a_deletion_removes_them_and_nothing_is_no_change():
    spec = {"mode": "triton", "resources": {"gpu_cores": 1}}
    assert summary(changes(None, spec)) == [
        ("mode", "added", None, "triton"),
        ("resources", "added", None, spec["resources"]),
    ]
    assert [c.kind for c in changes(spec, None)] == ["removed", "removed"]
    assert changes(None, None) == []
    assert summary(changes(3, 4)) == [("", "changed", 3, 4)]


def test_a_changed_entry_script_reads_as_a_line_diff_and_objects_as_indented_json():
    script = "def init():\n    pass\n\ndef run(data):\n    return data\n"
    (change,) = changes({"entry_script": script}, {"entry_script": script.replace("return data", "return 2 * data")})
    assert "-    return data\n+    return 2 * data" in change.text_diff
    (added,) = changes({}, {"resources": {"memory_gb": 4, "cpu_cores": 1}})
    assert added.after_text == '{\n  "cpu_cores": 1,\n  "memory_gb": 4\n}'
    assert added.spans_lines
    assert not added.text_diff


def test_the_page_shows_everything_the_event_recorded(client, viewer, dev):
    with during_request("req-42", "10.1.2.3"):
        event = audit(
            action="environment.updated",
            actor=viewer,
            obj=dev,
            before={"approvals_required": 0, "webhook_url": "", "policy": {"deletes": True}},
            after={"approvals_required": 2, "approver_group": "ml-leads", "policy": {"deletes": False}},
            details={"why": "going live", "ticket": {"id": 7, "system": "jira"}},
        )
    client.force_login(viewer)
    response = page_of(client, event.seq)
    assert response.status_code == 200
    page = response.content.decode()
    for shown in (
        "environment.updated",
        "viewer",
        f'href="{reverse("environment", args=[dev.pk])}"',  # the object's own page
        "req-42",
        "10.1.2.3",
        event.hash,
        event.prev_hash,
        event.key_id,
        "approvals_required",
        "approver_group",
        "webhook_url",
        "policy.deletes",
        "&quot;system&quot;: &quot;jira&quot;",  # the details, as indented JSON
    ):
        assert shown in page, shown
    assert page.count('class="change-changed"') == 2
    assert page.count('class="change-added"') == 1
    assert page.count('class="change-removed"') == 1


def test_someone_who_may_not_see_an_event_gets_the_404_of_one_that_does_not_exist(
    client, dev_member, outsider, prod, token_for
):
    in_prod = audit(action="environment.updated", obj=prod)
    about_nobody = audit(action="user.login", actor_name="someone")  # global viewers only
    for user in (dev_member, outsider):
        client.force_login(user)
        for seq in (in_prod.seq, about_nobody.seq, 999_999):
            assert page_of(client, seq).status_code == 404, (user, seq)
            api = client.get(reverse("api:audit-event", args=[seq]), HTTP_AUTHORIZATION=token_for(user))
            assert api.status_code == 404
            assert api.json()["errors"][0]["code"] == "not_found"


@pytest.mark.parametrize("seq", ["0", "-1", "abc", "99999999999999999999999"])
def test_a_bad_seq_is_a_404(client, admin, seq):
    audit(action="test.event")
    client.force_login(admin)
    assert client.get(f"/audit/{seq}/").status_code == 404


def test_previous_and_next_skip_the_events_the_user_may_not_see(client, dev_member, admin, dev, prod, token_for):
    first = audit(action="environment.updated", obj=dev)
    hidden = [audit(action="environment.updated", obj=prod), audit(action="user.login", actor_name="x")]
    middle = audit(action="environment.updated", obj=dev)
    audit(action="environment.updated", obj=prod)
    client.force_login(dev_member)
    page = page_of(client, middle.seq).content.decode()
    assert f'href="{reverse("audit-event", args=[first.seq])}" rel="prev"' in page
    assert 'rel="next"' not in page
    assert "No later event" in page
    header = token_for(dev_member)
    api = client.get(reverse("api:audit-event", args=[middle.seq]), HTTP_AUTHORIZATION=header).json()
    assert api["previous"].endswith(reverse("api:audit-event", args=[first.seq]))
    assert api["next"] is None
    # A global viewer sees every event, and so its neighbours are the next seqs.
    client.force_login(admin)
    page = page_of(client, first.seq).content.decode()
    assert f'href="{reverse("audit-event", args=[hidden[0].seq])}" rel="next"' in page
    assert "No earlier event" in page


def test_other_events_of_the_request_are_listed_as_far_as_the_user_may_see_them(client, dev_member, dev, prod):
    with during_request("req-1"):
        first = audit(action="environment.updated", obj=dev)
        audit(action="environment.updated", obj=prod)
        third = audit(action="environment.updated", obj=dev)
    with during_request("req-2"):
        alone = audit(action="environment.updated", obj=dev)
    client.force_login(dev_member)
    page = page_of(client, first.seq).content.decode()
    assert "Other events of this request" in page
    assert f'href="{reverse("audit-event", args=[third.seq])}"' in page
    assert "1 other event<" in page
    assert "Other events of this request" not in page_of(client, alone.seq).content.decode()


def test_an_approval_event_links_its_deployment_and_the_request_it_decided(client, admin, deployer):
    from deployments.models import AuditEvent
    from deployments.services.deployments import deployment_create
    from deployments.services.repositories import repository_load_example
    from tests.archives import EXAMPLES
    from tests.engine import local_target

    repository = repository_load_example(path=EXAMPLES / "add_sub", actor=admin).repository
    prod = local_target("local-prod", "prod", approvals=1)
    deployment = deployment_create(name="held", repository=repository, target=prod, actor=deployer)
    event = AuditEvent.objects.get(action="deployment.approval_requested")
    client.force_login(admin)
    page = page_of(client, event.seq).content.decode()
    assert f'href="{reverse("deployment", args=[deployment.pk])}"' in page
    request = deployment.requests.get()
    assert f'<a href="{reverse("approval", args=[request.pk])}">approval request #{request.pk}</a>' in page
    uploaded = AuditEvent.objects.get(action="repository.uploaded")
    page = page_of(client, uploaded.seq).content.decode()
    assert f'href="{reverse("repository", args=[repository.pk])}"' in page
    # An object that is gone is named, not linked to a 404.
    gone = audit(
        action="deployment.deleted", object_type="deployments.deployment", object_id="999999", object_repr="gone"
    )
    page = page_of(client, gone.seq).content.decode()
    assert "gone" in page
    assert 'href="/deployments/999999/"' not in page


def test_each_row_of_the_log_links_to_its_event(client, viewer):
    events = [audit(action="test.event") for _ in range(3)]
    client.force_login(viewer)
    page = client.get(reverse("audit")).content.decode()
    for event in events:
        assert f'href="{reverse("audit-event", args=[event.seq])}"' in page


def test_the_api_gives_the_event_with_its_changes_chain_and_request(client, viewer, token_for, dev):
    header = token_for(viewer)
    with during_request("req-9"):
        event = audit(
            action="environment.updated",
            obj=dev,
            before={"resources": {"gpu_cores": 1}, "same": 1},
            after={"resources": {"gpu_cores": 2}, "same": 1},
        )
        sibling = audit(action="environment.updated", obj=dev)
    body = client.get(reverse("api:audit-event", args=[event.seq]), HTTP_AUTHORIZATION=header).json()
    assert body["seq"] == event.seq
    assert body["hash"] == event.hash
    assert body["prev_hash"] == event.prev_hash
    assert body["key_id"] == event.key_id
    assert body["changes"] == [{"path": "resources.gpu_cores", "change": "changed", "before": 1, "after": 2}]
    assert body["same_request"] == [sibling.seq]
    assert body["next"].endswith(reverse("api:audit-event", args=[sibling.seq]))


def test_the_page_runs_a_constant_number_of_queries(client, dev_member, dev, prod, deployer):
    def count(seq):
        with CaptureQueriesContext(connection) as queries:
            assert page_of(client, seq).status_code == 200
        return len(queries)

    def write(n, request_id):
        with during_request(request_id):
            for i in range(n):
                audit(
                    action="environment.updated",
                    obj=dev if i % 2 else prod,
                    before={f"k{j}": j for j in range(i)},
                    after={f"k{j}": j + 1 for j in range(i)},
                    details={"request": 10_000 + i, "rollout": 20_000 + i},
                )

    write(4, "req-small")
    client.force_login(dev_member)
    with during_request("req-small"):
        small = audit(action="environment.updated", obj=dev, details={"request": 1})
    few = count(small.seq)
    write(80, "req-small")  # more of its request than the page lists
    write(40, "req-other")
    with during_request("req-small"):
        many = audit(action="environment.updated", obj=dev, details={"request": 1})
    assert count(many.seq) == few
    assert count(small.seq) == few
