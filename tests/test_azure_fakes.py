"""The fakes of Azure ML themselves: each fault, driven through the REAL SDKs
(azure-ai-ml's MLClient, azureml-core's Workspace), no dashboard engine.

One real Triton serves every v2 deployment of the module (share it, never
start one per deployment); delays are a second or two, and asserted through
the fakes' own records (fault_log, recorded requests), never by timing."""

import time

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http

from tests.archives import EXAMPLES
from tests.azure import (  # noqa: F401
    CLIENT_ID,
    CLIENT_SECRET,
    data_plane,
    fake_tenant,
    fake_v1,
    fake_v2,
    triton_url,
    v2_on_one_triton,
)
from tests.fakes.azureml.v1 import make_arm_token
from tests.fakes.azureml.v2 import NO_VALID_DEPLOYMENTS

pytestmark = [pytest.mark.azure]

REPOSITORY = EXAMPLES / "add_sub"


def register(ml):
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    return ml.models.create_or_update(Model(type=AssetTypes.TRITON_MODEL, path=str(REPOSITORY), name="add-sub"))


def managed_endpoint(ml, name, deployments=(), traffic=None):
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name=name, auth_mode="key")).result()
    if deployments:
        model = register(ml)
        for deployment in deployments:
            ml.online_deployments.begin_create_or_update(
                ManagedOnlineDeployment(
                    name=deployment, endpoint_name=name, model=model, instance_type="Standard_NC4as_T4_v3"
                )
            ).result()
    if traffic is not None:
        endpoint = ml.online_endpoints.get(name)
        endpoint.traffic = traffic
        ml.online_endpoints.begin_create_or_update(endpoint).result()
    return ml.online_endpoints.get(name)


def score(fake, endpoint, path="/v2/health/ready", key=None, deployment=None):
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    base = fake.scoring_uri(endpoint).removesuffix("/score")
    return httpx.get(base + path, headers=headers)  # trusts the fake's CA through SSL_CERT_FILE (use_fake_v2)


# ---------------------------------------------------------------------- v2: the endpoint's one address


def test_an_endpoint_has_its_own_address_from_creation_on_and_routes_nowhere_yet(v2):
    ml = v2.ml_client()
    endpoint = managed_endpoint(ml, "lonely")
    assert endpoint.scoring_uri == f"https://lonely.westeurope.inference.ml.localhost:{v2.port}/score"
    assert endpoint.scoring_uri == v2.scoring_uri("lonely")

    answer = score(v2, "lonely", key=v2.keys("lonely").primary)
    assert answer.status_code == 404
    assert answer.text == NO_VALID_DEPLOYMENTS


def test_the_endpoint_checks_its_key_and_routes_by_split_and_by_header(v2):
    ml = v2.ml_client()
    managed_endpoint(ml, "split", deployments=("blue", "green"), traffic={"blue": 50, "green": 50})
    keys = v2.keys("split")

    assert score(v2, "split").status_code == 401
    wrong = score(v2, "split", key="not-the-key")
    assert (wrong.status_code, wrong.text) == (401, "key_auth_access_denied")

    answered = {score(v2, "split", key=keys.secondary).headers["azureml-model-deployment"] for _ in range(30)}
    assert answered == {"blue", "green"}  # both weights take requests (p of missing one: 2**-29)

    endpoint = ml.online_endpoints.get("split")
    endpoint.traffic = {"blue": 100, "green": 0}
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    answered = {score(v2, "split", key=keys.primary).headers["azureml-model-deployment"] for _ in range(10)}
    assert answered == {"blue"}
    # The header reaches a 0% deployment; an unknown name is not routed.
    pinned = score(v2, "split", key=keys.primary, deployment="green")
    assert (pinned.status_code, pinned.headers["azureml-model-deployment"]) == (200, "green")
    assert score(v2, "split", key=keys.primary, deployment="purple").status_code == 404

    # A regenerated key counts at once: the old one is refused.
    ml.online_endpoints.begin_regenerate_keys("split", key_type="primary").result()
    assert score(v2, "split", key=keys.primary).status_code == 401
    assert score(v2, "split", key=v2.keys("split").primary).status_code == 200

    # Triton's own client, over https with the fake's CA, through the endpoint address.
    client = triton_http.InferenceServerClient(
        v2.scoring_host("split") + f":{v2.port}", ssl=True, ssl_options={"ca_certs": v2.ca_bundle_path}
    )
    inputs = [triton_http.InferInput("INPUT0", [4], "FP32"), triton_http.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(np.arange(4, dtype=np.float32))
    inputs[1].set_data_from_numpy(np.ones(4, dtype=np.float32))
    result = client.infer("add_sub", inputs, headers={"Authorization": f"Bearer {v2.keys('split').secondary}"})
    assert result.as_numpy("OUTPUT0").tolist() == [1, 2, 3, 4]
    assert [r.deployment for r in v2.scoring_requests[-1:]] == ["blue"]


def test_a_deployment_whose_containers_die_stays_succeeded_but_serves_nothing(v2):
    ml = v2.ml_client()
    managed_endpoint(ml, "dying", deployments=("blue",), traffic={"blue": 100})
    key = v2.keys("dying").primary
    assert score(v2, "dying", key=key).status_code == 200

    v2.turn_unhealthy("dying", "blue")
    answer = score(v2, "dying", key=key)
    assert answer.status_code == 424
    assert answer.headers["ms-azureml-model-error-statuscode"] == "503"
    assert ml.online_deployments.get(name="blue", endpoint_name="dying").provisioning_state == "Succeeded"
    assert "Liveness probe failed" in ml.online_deployments.get_logs(name="blue", endpoint_name="dying", lines=10)


# ---------------------------------------------------------------------- v2: control-plane faults


def test_a_throttled_request_is_retried_by_azure_core_after_retry_after(v2):
    managed_endpoint(v2.ml_client(), "busy")
    v2.throttle("GET", "onlineEndpoints/busy", times=1, retry_after=1)
    seen = len(v2.requests)
    assert v2.ml_client(retry_total=2).online_endpoints.get("busy").name == "busy"
    throttled = v2.faults_fired("throttle")
    gets = [r for r in v2.requests[seen:] if r.method == "GET" and r.path.endswith("onlineEndpoints/busy")]
    assert len(throttled) == 1
    assert len(gets) == 2
    assert gets[1].at - gets[0].at >= 1  # the SDK waited the Retry-After before trying again

    from azure.core.exceptions import HttpResponseError

    v2.throttle("GET", "onlineEndpoints/busy", retry_after=7)
    with pytest.raises(HttpResponseError) as raised:
        v2.ml_client(retry_total=0).online_endpoints.get("busy")
    assert raised.value.status_code == 429
    assert raised.value.error.code == "SubscriptionRequestsThrottled"
    assert raised.value.response.headers["Retry-After"] == "7"


def test_server_errors_fire_times_times_and_are_retried(v2):
    from azure.core.exceptions import HttpResponseError

    managed_endpoint(v2.ml_client(), "flaky")
    v2.fail_next_request("GET", "onlineEndpoints/flaky", 503, "ServiceUnavailable", "Try later.", times=2)
    assert v2.ml_client(retry_total=3, retry_backoff_factor=0.01).online_endpoints.get("flaky").name == "flaky"
    assert len(v2.faults_fired("fail")) == 2

    v2.fail_next_request("GET", "onlineEndpoints/flaky", 500, "InternalServerError", "Broken.", times=3)
    with pytest.raises(HttpResponseError) as raised:
        v2.ml_client(retry_total=1, retry_backoff_factor=0.01).online_endpoints.get("flaky")
    assert (raised.value.status_code, raised.value.error.code) == (500, "InternalServerError")
    assert len(v2.faults_fired("fail")) == 4  # one of the three is still queued
    with pytest.raises(HttpResponseError):
        v2.ml_client().online_endpoints.get("flaky")
    assert v2.ml_client().online_endpoints.get("flaky").name == "flaky"


def test_a_dropped_connection_surfaces_as_the_sdks_connection_error(v2):
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    managed_endpoint(v2.ml_client(), "cut")
    v2.reset_next_request("GET", "onlineEndpoints/cut")
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        v2.ml_client().online_endpoints.get("cut")
    assert len(v2.faults_fired("reset")) == 1
    assert v2.ml_client().online_endpoints.get("cut").name == "cut"


def test_slow_uploads_delay_every_blob_write_of_a_registration(v2):
    v2.slow_upload(0.3)
    register(v2.ml_client())
    puts = [r for r in v2.requests if r.method == "PUT" and r.path.startswith(f"/{v2.storage_account}/")]
    slowed = v2.faults_fired("slow_upload")
    assert len(puts) >= 2  # the model files (and their metadata) of the add_sub example
    assert len(slowed) == len(puts)
    assert v2.model_versions() == ["add-sub:1"]
    with pytest.raises(ValueError, match="keep upload delays below"):
        v2.slow_upload(60)  # the storage SDK would time out instead of waiting


def test_long_operations_stay_in_progress_with_arms_polling_headers(v2):
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    ml = v2.ml_client()
    v2.long_operations(2, retry_after=1)
    poller = ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="slowpoke", auth_mode="key"))
    assert ml.online_endpoints.get("slowpoke").provisioning_state == "Creating"
    status_url = next(r for r in v2.requests if "mfeOperationsStatus" in r.path).path
    answer = httpx.get(
        v2.base_url + status_url + "?api-version=2025-12-01",
        headers={"Authorization": "Bearer x"},
    )
    assert answer.json()["status"] == "InProgress"
    assert answer.headers["Retry-After"] == "1"
    assert "mfeOperationsStatus" in answer.headers["Azure-AsyncOperation"]
    assert "mfeOperationResults" in answer.headers["Location"]
    assert poller.result().provisioning_state == "Succeeded"
    assert len(v2.faults_fired("long_operation")) >= 2


@pytest.mark.parametrize(
    ("stage", "kubernetes", "code"),
    [
        ("image_pull", False, "BadArgument"),
        ("image_pull", True, "ImagePullLoopBackOff"),
        ("model_download", False, "BadArgument"),
        ("liveness_probe", False, "ResourceNotReady"),
    ],
)
def test_provisioning_fails_at_a_stage_with_azures_code(v2, stage, kubernetes, code):
    from azure.ai.ml.entities import (
        KubernetesOnlineDeployment,
        KubernetesOnlineEndpoint,
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
    )
    from azure.core.exceptions import HttpResponseError

    ml = v2.ml_client()
    model = register(ml)
    if kubernetes:
        endpoint = KubernetesOnlineEndpoint(name="doomed", compute="aks-gpu", auth_mode="key")
        deployment = KubernetesOnlineDeployment(name="blue", endpoint_name="doomed", model=model, instance_type="gpu")
    else:
        endpoint = ManagedOnlineEndpoint(name="doomed", auth_mode="key")
        deployment = ManagedOnlineDeployment(
            name="blue", endpoint_name="doomed", model=model, instance_type="Standard_NC4as_T4_v3"
        )
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    v2.fail_provisioning(stage, after_seconds=0.2)
    with pytest.raises(HttpResponseError) as raised:
        ml.online_deployments.begin_create_or_update(deployment).result()
    assert code in str(raised.value)
    assert ml.online_deployments.get(name="blue", endpoint_name="doomed").provisioning_state == "Failed"
    assert v2.deployment_error("doomed", "blue")["code"] == code
    assert [e.detail["stage"] for e in v2.faults_fired("provisioning")] == [stage]
    logs = ml.online_deployments.get_logs(name="blue", endpoint_name="doomed", lines=20)
    expected = {"image_pull": "ImagePullBackOff", "model_download": "storage-initializer", "liveness_probe": "502"}
    assert expected[stage] in logs


def test_expired_tokens_are_refused_unless_the_credential_refreshes(v2):
    from azure.ai.ml import MLClient
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential

    managed_endpoint(v2.ml_client(), "guarded")
    v2.expire_tokens(1)

    class StaleCredential:
        def get_token(self, *scopes, **kwargs):
            return AccessToken(make_arm_token(fake_tenant(v2), lifetime_s=-60), int(time.time()) - 60)

    stale = MLClient(StaleCredential(), v2.subscription_id, v2.resource_group, v2.workspace_name, retry_total=0)
    with pytest.raises(ClientAuthenticationError) as raised:
        stale.online_endpoints.get("guarded")
    assert raised.value.error.code == "ExpiredAuthenticationToken"
    assert "is earlier than current UTC time" in raised.value.error.message

    credential = ClientSecretCredential(fake_tenant(v2), CLIENT_ID, CLIENT_SECRET)
    fresh = MLClient(credential, v2.subscription_id, v2.resource_group, v2.workspace_name, retry_total=0)
    assert fresh.online_endpoints.get("guarded").name == "guarded"
    issued = len(v2.token_requests)
    time.sleep(1.5)  # the token from that call has expired now
    assert fresh.online_endpoints.get("guarded").name == "guarded"  # azure-identity asked for a new one
    assert len(v2.token_requests) > issued
    assert [e.detail["code"] for e in v2.faults_fired("expired_token")] == ["ExpiredAuthenticationToken"]


# ---------------------------------------------------------------------- v1 (azureml-core)


def v1_workspace(fake, token=None):
    from azureml.core import Workspace
    from azureml.core.authentication import ArmTokenAuthentication

    auth = ArmTokenAuthentication(token or make_arm_token(fake.tenant_id), cloud="AzureCloud")
    return Workspace(fake.subscription_id, fake.resource_group, fake.workspace_name, auth=auth)


def test_v1_throttling_server_errors_resets_and_expired_tokens_as_mms_answers_them(fake_v1):  # noqa: F811
    # azureml-core retries 429, 5xx and dropped connections itself, ignoring
    # Retry-After, with a backoff of tens of seconds (a 429 with Retry-After: 1
    # cost Webservice.list 33 s here), so the fake's answers are checked at the
    # HTTP level, after one real SDK call through the workspace's discovery URL.
    from azureml.core.webservice import Webservice

    assert Webservice.list(v1_workspace(fake_v1)) == []
    services = fake_v1.base_url + "/modelmanagement/v1.0" + fake_v1.workspace_path() + "/services"
    bearer = {"Authorization": f"Bearer {make_arm_token(fake_v1.tenant_id)}"}
    fake_v1.throttle("GET", "/services", retry_after=3)
    throttled = httpx.get(services, headers=bearer)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert httpx.get(services, headers=bearer).status_code == 200
    fake_v1.fail_next_request("GET", "/services", 503, "ServiceUnavailable", "MMS is down.", times=2)
    answers = [httpx.get(services, headers=bearer) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json()["error"]["code"] == "ServiceUnavailable"

    fake_v1.reset_next_request("GET", "/services")
    with pytest.raises(httpx.TransportError):
        httpx.get(services, headers=bearer)
    assert httpx.get(services, headers=bearer).status_code == 200
    assert [e.fault for e in fake_v1.faults_fired()] == ["throttle", "fail", "fail", "reset"]

    # azureml-core's ArmTokenAuthentication holds a fixed token: nothing refreshes it.
    fake_v1.expire_tokens(1)
    stale = {"Authorization": f"Bearer {make_arm_token(fake_v1.tenant_id, lifetime_s=-5)}"}
    refused = httpx.get(services, headers=stale)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert httpx.get(services, headers=bearer).status_code == 200  # a live token still passes


def test_v1_provisioning_fails_at_a_stage_with_the_service_error(fake_v1):  # noqa: F811
    from azureml.core.webservice import AksWebservice, Webservice

    fake_v1.fail_provisioning("image_pull", after_seconds=0.2)
    mms = fake_v1.base_url + "/modelmanagement/v1.0" + fake_v1.workspace_path()
    # The create payload as Model.deploy sends it for a no-code deploy (models: none needed here).
    body = {"name": "doomed", "computeType": "AKS", "computeName": "aks-gpu", "environmentImageRequest": {}}
    bearer = {"Authorization": f"Bearer {make_arm_token(fake_v1.tenant_id)}"}
    assert httpx.post(mms + "/services", json=body, headers=bearer).status_code == 202
    fake_v1.join_deployments()
    service = Webservice(v1_workspace(fake_v1), "doomed")
    assert isinstance(service, AksWebservice)
    service.update_deployment_state()
    assert service.state == "Failed"
    assert service.error["code"] == "KubernetesDeploymentFailed"
    assert service.error["details"][0]["code"] == "ImagePullBackOff"
    assert "ImagePullBackOff" in service.get_logs()
