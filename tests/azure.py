"""Fixtures for the Azure ML targets: the fake control planes, routed so the
real SDKs and credentials reach them, with real Tritons as the data plane.

v1 services get a Triton each behind a key-checking proxy (an AKS scoring
URI). v2 deployments get a plain Triton each, behind the fake's own scoring
front end (``https://<endpoint>.<location>.inference.ml.localhost:<port>/score``),
which checks the endpoint's key and routes by the traffic split. A test that
creates many v2 deployments calls ``share_one_triton(fake_v2, data_plane)``
first: every deployment is then served by ONE Triton.
"""

import pytest

from deployments.models import Environment
from deployments.services.targets import target_create

CLIENT_ID, CLIENT_SECRET = "dashboard-sp", "sp-secret-for-tests"


@pytest.fixture
def data_plane(tmp_path):
    from tests.fakes.azureml.data_plane import TritonDataPlane

    plane = TritonDataPlane(tmp_path / "data-plane")
    yield plane
    plane.stop_all()


@pytest.fixture
def fake_v1(data_plane):
    from tests.fakes.azureml.aad import add_aad_routes
    from tests.fakes.azureml.routing import no_external_network, route_azure_to
    from tests.fakes.azureml.v1 import FakeAzureMLv1

    fake = FakeAzureMLv1(
        on_deploy=lambda name, model_dir: data_plane.start(
            name, model_dir / "models" / "triton", lambda n: fake.keys(n)
        ),
        on_delete=data_plane.stop,
    ).start()
    with no_external_network() as refused, route_azure_to(fake) as mock:
        fake.token_requests = add_aad_routes(
            mock,
            tenant_id=fake.tenant_id,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            lifetime=lambda: fake.token_lifetime_s,
        )
        yield fake
        assert refused == [], f"traffic tried to leave 127.0.0.1: {refused}"
    fake.stop()
    assert fake.unhandled == [], f"calls the fake does not know: {fake.unhandled}"


@pytest.fixture
def fake_v1_and_v2(data_plane):
    """Both control planes at once (a workspace with SDK v1 webservices and
    SDK v2 endpoints, as when moving one to the other): one routing of
    Azure's hosts, through which v2's loopback calls pass untouched."""
    from tests.fakes.azureml.aad import add_aad_routes
    from tests.fakes.azureml.routing import no_external_network, route_azure_to
    from tests.fakes.azureml.v1 import FakeAzureMLv1
    from tests.fakes.azureml.v2 import FakeAzureMLv2, use_fake_v2

    v1 = FakeAzureMLv1(
        on_deploy=lambda name, model_dir: data_plane.start(name, model_dir / "models" / "triton", lambda n: v1.keys(n)),
        on_delete=data_plane.stop,
    ).start()
    v2 = FakeAzureMLv2(
        on_deploy=lambda endpoint, deployment, model_dir: data_plane.start(f"{endpoint}-{deployment}", model_dir),
        on_delete=lambda endpoint, deployment: data_plane.stop(f"{endpoint}-{deployment}"),
    )
    with v2, use_fake_v2(v2), no_external_network() as refused, route_azure_to(v1) as mock:
        # One Entra ID for both: the same service principal signs in to either workspace.
        add_aad_routes(mock, tenant_id=v1.tenant_id, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        yield v1, v2
        assert refused == [], f"traffic tried to leave 127.0.0.1: {refused}"
    v1.stop()
    assert v1.unhandled == [], f"calls the fake v1 does not know: {v1.unhandled}"
    assert v2.unhandled == [], f"calls the fake v2 does not know: {v2.unhandled}"
    assert v2.errors == [], f"the fake crashed: {v2.errors}"


@pytest.fixture(scope="module")
def triton_url(tmp_path_factory):
    """One real Triton (the add_sub example) behind every v2 deployment of a module."""
    from tests.archives import EXAMPLES
    from tests.fakes.azureml.data_plane import TritonDataPlane

    plane = TritonDataPlane(tmp_path_factory.mktemp("shared-triton"))
    yield plane.shared(EXAMPLES / "add_sub")
    plane.stop_all()


@pytest.fixture(name="v2")
def v2_on_one_triton(fake_v2, triton_url):
    """The fake v2, every deployment of it served by the module's one Triton."""
    fake_v2.on_deploy = lambda endpoint, deployment, files: triton_url
    return fake_v2


def azure_target(admin, kind: str, fake, **settings):
    environment, _ = Environment.objects.get_or_create(name="prod")
    return target_create(
        actor=admin,
        name=f"{kind}-target",
        kind=kind,
        environment=environment,
        auth_method="service_principal",
        settings={
            "subscription_id": fake.subscription_id,
            "resource_group": fake.resource_group,
            "workspace_name": fake.workspace_name,
            "tenant_id": fake_tenant(fake),
            "client_id": CLIENT_ID,
            **settings,
        },
        secrets={"client_secret": CLIENT_SECRET},
    )


@pytest.fixture
def fake_v2(data_plane):
    import re

    import responses

    from tests.fakes.azureml.aad import add_aad_routes
    from tests.fakes.azureml.routing import no_external_network
    from tests.fakes.azureml.v2 import FakeAzureMLv2, use_fake_v2

    def on_deploy(endpoint, deployment, model_dir):
        # Triton's own URL: the fake's scoring front end checks the key and forwards here.
        return data_plane.start(f"{endpoint}-{deployment}", model_dir)

    def on_delete(endpoint, deployment):
        data_plane.stop(f"{endpoint}-{deployment}")

    fake = FakeAzureMLv2(on_deploy=on_deploy, on_delete=on_delete)
    with (
        fake,
        use_fake_v2(fake),
        no_external_network() as refused,
        responses.RequestsMock(assert_all_requests_are_fired=False) as mock,
    ):
        # 127.0.0.1 (ARM, blob) and the endpoints' *.localhost scoring hosts.
        mock.add_passthru(re.compile(r"https?://(127\.0\.0\.1|([a-z0-9-]+\.)*localhost)(:\d+)?/"))
        fake.token_requests = add_aad_routes(
            mock,
            tenant_id=fake_tenant(fake),
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            lifetime=lambda: fake.token_lifetime_s,
        )
        yield fake
        assert refused == [], f"traffic tried to leave 127.0.0.1: {refused}"
    assert fake.unhandled == [], f"calls the fake does not know: {fake.unhandled}"
    assert fake.errors == [], f"the fake crashed: {fake.errors}"


def share_one_triton(fake, data_plane, repository=None) -> None:
    """Serve every deployment the fake v2 makes from now on by ONE real Triton.

    ``repository``: the Triton model repository it serves; by default the model
    files of the first deployment (later deployments' files are ignored, so
    every deployment must serve the same models). Deleting a deployment leaves
    the shared Triton running; the data_plane fixture stops it at the end.
    """

    def on_deploy(endpoint, deployment, model_dir):
        return data_plane.shared(repository or model_dir)

    fake.on_deploy = on_deploy


def fake_tenant(fake) -> str:
    return getattr(fake, "tenant_id", "00000000-0000-0000-0000-0000000000aa")
