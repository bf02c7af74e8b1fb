"""The new-deployment form shows the fields that apply to the chosen mode and
target (htmx re-renders them on each choice), takes defaults from the target,
and ignores on POST what does not apply."""

import pytest
from django.test.html import Element, parse_html
from django.urls import reverse

from deployments.models import Deployment, Environment, Target
from deployments.services.repositories import repository_load_example
from tests.archives import EXAMPLES
from tests.engine import local_target

pytestmark = pytest.mark.django_db

ENTRY_SCRIPT = ["entry_script", "pip_packages", "worker_count"]
RESOURCES = ["gpu_cores", "cpu_cores", "memory_gb"]
SCRIPT = "def init():\n    pass\n\n\ndef run(data):\n    return data\n"


@pytest.fixture
def repository(deployer):
    return repository_load_example(path=EXAMPLES / "add_sub", actor=deployer).repository


@pytest.fixture
def signed_in(client, deployer):
    client.force_login(deployer)
    return client


def azure_target(kind: str, **settings) -> Target:
    environment, _ = Environment.objects.get_or_create(name="dev")
    return Target.objects.create(name=kind.replace("_", "-"), kind=kind, environment=environment, settings=settings)


def fields_shown(html: str) -> dict[str, bool]:
    """Each field on the page: whether it shows where scripts run (no
    enclosing element marked as not applying). Every one of them is on the
    page, for browsers without JavaScript."""
    shown = {}

    def walk(node, hidden):
        if not isinstance(node, Element):
            return
        attributes = dict(node.attributes)
        hidden = hidden or "does-not-apply" in (attributes.get("class") or "").split()
        name = attributes.get("name")
        if node.name in ("input", "select", "textarea") and name and name != "csrfmiddlewaretoken":
            shown[name] = not hidden
        for child in node.children:
            walk(child, hidden)

    walk(parse_html(html), False)
    return shown


def refreshed(client, **values) -> str:
    """The fields htmx asks for when the mode or the target changes."""
    response = client.get(reverse("deployment-create"), values, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def worker_count_input(html: str) -> str:
    start = html.index('<input type="number" name="worker_count"')
    return html[start : html.index(">", start)]


def visible(html: str) -> list[str]:
    return [name for name, shown in fields_shown(html).items() if shown]


def test_without_javascript_every_field_is_on_the_page_and_the_choices_re_render_the_rest(signed_in):
    page = signed_in.get(reverse("deployment-create")).content.decode()
    fields = fields_shown(page)
    assert set(fields) == {"name", "repository", "target", "mode", *ENTRY_SCRIPT, *RESOURCES, "auth_enabled"}
    # Triton mode and no target yet: where scripts run, nothing of either shows.
    assert [name for name in (*ENTRY_SCRIPT, *RESOURCES) if fields[name]] == []
    url = reverse("deployment-create")
    assert page.count(f'hx-get="{url}"') == 2  # the target and the mode
    assert 'hx-params="not csrfmiddlewaretoken,entry_script,pip_packages"' in page
    assert page.count('hx-preserve="true"') == 2  # the textareas keep what was typed


def test_only_entry_script_mode_shows_the_entry_script_fields(signed_in):
    target = local_target()
    triton = refreshed(signed_in, target=target.pk, mode="triton")
    assert visible(triton) == ["mode"]
    scripted = refreshed(signed_in, target=target.pk, mode="entry_script")
    assert visible(scripted) == ["mode", *ENTRY_SCRIPT]
    # A hidden field carries no constraint the browser would refuse to submit over.
    assert "required" in worker_count_input(scripted)
    assert "required" not in worker_count_input(triton)
    assert 'min="1"' not in worker_count_input(triton)


@pytest.mark.parametrize(
    ("kind", "target_settings", "resources"),
    [
        ("local", {}, []),
        ("fake", {}, []),
        ("azureml_v1_aks", {"compute_name": "aks-gpu"}, RESOURCES),
        ("azureml_v2_kubernetes", {"compute_name": "k8s", "instance_type": "gpu-small"}, []),
        ("azureml_v2_managed", {"instance_type": "Standard_NC6s_v3", "instance_count": 2}, []),
    ],
)
def test_each_kind_of_target_shows_the_resources_it_uses(signed_in, kind, target_settings, resources):
    target = azure_target(kind, **target_settings) if kind.startswith("azure") else local_target()
    if kind == "fake":
        target = Target.objects.create(name="fake", kind="fake", environment=target.environment)
    fields = refreshed(signed_in, target=target.pk, mode="triton")
    assert visible(fields) == ["mode", *resources]
    if not resources:
        assert f"{target.kind_label} targets take no resources per deployment" in fields


def test_sdk_v2_says_what_each_deployment_runs_on_and_that_it_takes_no_entry_script(signed_in):
    target = azure_target("azureml_v2_managed", instance_type="Standard_NC6s_v3", instance_count=2)
    fields = refreshed(signed_in, target=target.pk, mode="entry_script")
    assert "each runs on 2 instances of Standard_NC6s_v3, from the target's settings" in fields
    assert '<p class="warn">Azure ML v2 (managed) targets serve in Triton mode only' in fields
    assert visible(fields) == ["mode"]


def test_the_defaults_come_from_the_chosen_target(signed_in, repository):
    aks = azure_target("azureml_v1_aks", compute_name="aks-gpu", default_resources={"gpu_cores": 1, "memory_gb": 4})
    fields = refreshed(signed_in, target=aks.pk, mode="triton")
    assert 'placeholder="1"' in fields
    assert 'placeholder="4"' in fields
    assert "empty: the target&#x27;s default, 4" in fields
    assert "empty: the platform&#x27;s default" in fields  # no default CPU on this target
    answer = signed_in.post(
        reverse("deployment-create"),
        {"name": "on-aks", "repository": repository.pk, "target": aks.pk, "mode": "triton", "cpu_cores": "2"},
    )
    assert answer.status_code == 302, answer.content.decode()
    assert Deployment.objects.get(name="on-aks").resources == {"gpu_cores": 1, "memory_gb": 4, "cpu_cores": 2}


def test_a_re_render_keeps_the_values_so_far(signed_in):
    aks = azure_target("azureml_v1_aks", compute_name="aks-gpu")
    fields = refreshed(signed_in, target=aks.pk, mode="entry_script", worker_count="3", gpu_cores="0.5")
    assert 'value="3"' in fields
    assert 'value="0.5"' in fields
    assert '<option value="entry_script" selected>' in fields
    # Only the fieldset that changes, not the page.
    assert fields.lstrip().startswith('<fieldset id="spec-fields"')


def test_a_triton_mode_post_saves_no_entry_script_and_ignores_what_does_not_apply(signed_in, deployer, repository):
    from deployments.services.deployments import deployment_create

    target = local_target()
    answer = signed_in.post(
        reverse("deployment-create"),
        {
            "name": "plain",
            "repository": repository.pk,
            "target": target.pk,
            "mode": "triton",
            "entry_script": SCRIPT,
            "pip_packages": "numpy==1.26.4",
            "worker_count": "not a number",  # would be an error in entry-script mode
            "gpu_cores": "-3",  # and this on a target that takes GPU cores
            "auth_enabled": "on",
        },
    )
    assert answer.status_code == 302, answer.content.decode()
    deployment = Deployment.objects.get(name="plain")
    assert deployment.entry_script == ""
    assert deployment.pip_packages == []
    assert deployment.worker_count == 1
    assert deployment.resources == {}
    # What was ignored is not in the spec's digest either: the same as a plain Triton deploy's.
    twin = deployment_create(name="twin", repository=repository, target=target, actor=deployer)
    assert deployment.spec_digest == twin.spec_digest


def test_what_applies_is_still_checked(signed_in, repository):
    target = local_target()
    bad = signed_in.post(
        reverse("deployment-create"),
        {"name": "scripted", "repository": repository.pk, "target": target.pk, "mode": "entry_script"},
    )
    assert bad.status_code == 400
    assert "This field is required" in bad.content.decode()  # worker_count, which applies here
    good = signed_in.post(
        reverse("deployment-create"),
        {
            "name": "scripted",
            "repository": repository.pk,
            "target": target.pk,
            "mode": "entry_script",
            "entry_script": SCRIPT,
            "pip_packages": "numpy",
            "worker_count": "2",
        },
    )
    assert good.status_code == 302, good.content.decode()
    deployment = Deployment.objects.get(name="scripted")
    assert deployment.entry_script == SCRIPT.strip()  # Django's CharField strips
    assert (deployment.pip_packages, deployment.worker_count) == (["numpy"], 2)


def test_entry_script_mode_on_a_target_without_it_is_refused_by_name(signed_in, repository):
    v2 = azure_target("azureml_v2_managed", instance_type="Standard_NC6s_v3")
    answer = signed_in.post(
        reverse("deployment-create"),
        {
            "name": "scripted",
            "repository": repository.pk,
            "target": v2.pk,
            "mode": "entry_script",
            "entry_script": SCRIPT,
        },
    )
    assert answer.status_code == 400
    assert "do not support entry-script (score.py) mode" in answer.content.decode()
    assert not Deployment.objects.exists()


def test_a_target_the_user_may_not_deploy_to_shapes_nothing(client, django_user_model):
    from deployments.models import EnvironmentMembership
    from tests.conftest import make_user

    dev = local_target()
    aks = azure_target("azureml_v1_aks", compute_name="aks-gpu")
    prod = Environment.objects.create(name="prod")
    Target.objects.filter(pk=aks.pk).update(environment=prod)
    member = make_user(django_user_model, "dev-deployer")
    EnvironmentMembership.objects.create(user=member, environment=dev.environment, role="deployer")
    client.force_login(member)
    fields = refreshed(client, target=aks.pk, mode="triton")
    assert visible(fields) == ["mode"]  # as with no target chosen
    assert "targets take no resources" not in fields
    assert "placeholder" not in fields
