"""A deployment's figures from Azure Monitor's metrics: the real client
(azure-mgmt-monitor, through workers/targets/azureml_v2/monitor.py) against
the fake v2, whose metrics come from real requests its scoring address
served to a real Triton. Nothing here times anything: the fake's ingestion
delay is a switch, and windows are wide enough to hold every request."""

import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.archives import EXAMPLES
from tests.azure import CLIENT_ID, CLIENT_SECRET, data_plane, fake_tenant, fake_v2, triton_url, v2_on_one_triton  # noqa: F401
from workers.targets.azureml_v2 import monitor
from workers.targets.base import TargetError

pytestmark = [pytest.mark.azure]

REPOSITORY = EXAMPLES / "add_sub"
METRICS_PATH = "/providers/Microsoft.Insights/metrics"


def blue_green(fake, name):
    """An endpoint with two deployments of add_sub, all traffic on blue."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model

    ml = fake.ml_client()
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name=name, auth_mode="key")).result()
    model = ml.models.create_or_update(Model(type=AssetTypes.TRITON_MODEL, path=str(REPOSITORY), name="add-sub"))
    for deployment in ("blue", "green"):
        ml.online_deployments.begin_create_or_update(
            ManagedOnlineDeployment(
                name=deployment, endpoint_name=name, model=model, instance_type="Standard_NC4as_T4_v3"
            )
        ).result()
    endpoint = ml.online_endpoints.get(name)
    endpoint.traffic = {"blue": 100, "green": 0}
    ml.online_endpoints.begin_create_or_update(endpoint).result()


def infer(fake, endpoint, deployment, times):
    """Real inferences through the endpoint's address, pinned to one deployment by header."""
    body = {
        "inputs": [
            {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]},
        ]
    }
    headers = {"Authorization": f"Bearer {fake.keys(endpoint).primary}", "azureml-model-deployment": deployment}
    url = fake.scoring_uri(endpoint).removesuffix("/score") + "/v2/models/add_sub/infer"
    with httpx.Client(headers=headers) as client:  # trusts the fake's CA through SSL_CERT_FILE
        return [client.post(url, json=body).status_code for _ in range(times)]


def window():
    """From a minute before now; figures() closes it a minute after its call."""
    return datetime.now(UTC) - timedelta(minutes=1)


def figures(fake, endpoint, deployment, start):
    from azure.identity import ClientSecretCredential

    return monitor.deployment_figures(
        ClientSecretCredential(fake_tenant(fake), CLIENT_ID, CLIENT_SECRET),
        subscription_id=fake.subscription_id,
        resource_group=fake.resource_group,
        workspace=fake.workspace_name,
        endpoint=endpoint,
        deployment=deployment,
        start=start,
        end=datetime.now(UTC) + timedelta(minutes=1),
        base_url=fake.base_url,
    )


def test_each_deployment_has_its_own_request_count_and_ordered_percentiles(v2):
    blue_green(v2, "canary")
    start = window()
    assert infer(v2, "canary", "blue", 12) == [200] * 12
    assert infer(v2, "canary", "green", 5) == [200] * 5

    blue = figures(v2, "canary", "blue", start)
    green = figures(v2, "canary", "green", start)

    assert (blue["requests"], blue["errors"]) == (12, {"4xx": 0, "5xx": 0})
    assert (green["requests"], green["errors"]) == (5, {"4xx": 0, "5xx": 0})
    for figure in (blue, green):
        assert 0 < figure["p95_ms"] <= figure["p99_ms"]
    # What the figures came from, said in Azure's own metric names.
    assert "RequestsPerMinute" in blue["source"]
    assert "RequestLatency_P95" in blue["source"]
    assert "deployment 'blue'" in blue["source"]
    queries = [r for r in v2.requests if r.path.endswith(METRICS_PATH)]
    filters = {r.query["$filter"] for r in queries}
    assert filters >= {"deployment eq 'green'", "deployment eq 'green' and statusCodeClass eq '*'"}
    assert {r.query["interval"] for r in queries} == {"PT1M"}


def test_a_deployment_answering_errors_shows_them_and_the_other_does_not(v2):
    blue_green(v2, "sick")
    start = window()
    assert infer(v2, "sick", "blue", 3) == [200] * 3
    v2.turn_unhealthy("sick", "green")
    assert infer(v2, "sick", "green", 4) == [424] * 4  # Azure's answer when the model container fails

    green = figures(v2, "sick", "green", start)
    blue = figures(v2, "sick", "blue", start)

    assert (green["requests"], green["errors"]) == (4, {"4xx": 4, "5xx": 0})
    assert (blue["requests"], blue["errors"]) == (3, {"4xx": 0, "5xx": 0})


def test_the_metrics_api_splits_by_deployment_and_status_as_azure_answers_it(v2):
    from azure.identity import ClientSecretCredential
    from azure.mgmt.monitor import MonitorManagementClient

    blue_green(v2, "split")
    start = window()
    infer(v2, "split", "blue", 3)
    infer(v2, "split", "green", 2)
    v2.turn_unhealthy("split", "green")
    infer(v2, "split", "green", 1)
    end = datetime.now(UTC) + timedelta(minutes=1)

    client = MonitorManagementClient(
        ClientSecretCredential(fake_tenant(v2), CLIENT_ID, CLIENT_SECRET), v2.subscription_id, base_url=v2.base_url
    )
    resource = f"{v2.workspace_path}/onlineEndpoints/split".lstrip("/")
    timespan = f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}"
    answer = client.metrics.list(
        resource,
        timespan=timespan,
        interval="PT1M",
        metricnames="RequestsPerMinute",
        aggregation="Total,Count",
        filter="deployment eq '*' and statusCodeClass eq '*'",
    )

    assert (answer.interval, answer.timespan, answer.namespace) == (
        "PT1M",
        timespan,
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
    )
    [metric] = answer.value
    assert (metric.name.value, metric.unit) == ("RequestsPerMinute", "Count")
    totals = {}
    for series in metric.timeseries:
        dims = {item.name.value: item.value for item in series.metadatavalues}
        totals[(dims["deployment"], dims["statuscodeclass"])] = sum(p.total for p in series.data)
        minutes = [p.time_stamp for p in series.data]
        assert all((b - a) == timedelta(minutes=1) for a, b in itertools.pairwise(minutes))
    assert totals == {("blue", "2xx"): 3, ("green", "2xx"): 2, ("green", "4xx"): 1}

    only_blue = client.metrics.list(
        resource, timespan=timespan, metricnames="RequestLatency_P50,RequestLatency_P99", filter="deployment eq 'blue'"
    )
    for metric in only_blue.value:
        [series] = metric.timeseries
        assert [(m.name.value, m.value) for m in series.metadatavalues] == [("deployment", "blue")]
        assert any(p.average is not None for p in series.data)


def test_an_unknown_metric_name_is_a_permanent_error_that_names_it(v2, monkeypatch):
    blue_green(v2, "renamed")
    monkeypatch.setattr(monitor, "P95", "RequestLatency_P95th")  # as if Azure renamed a metric

    with pytest.raises(TargetError) as raised:
        figures(v2, "renamed", "blue", window())

    assert raised.value.permanent
    assert "Failed to find metric configuration" in raised.value.message
    assert "metric: RequestLatency_P95th" in raised.value.message
    assert "renamed/blue" in raised.value.message


def test_a_throttled_or_failing_metrics_call_is_a_transient_error_with_azures_retry_after(v2):
    blue_green(v2, "busy")
    start = window()
    infer(v2, "busy", "blue", 2)

    v2.throttle("GET", METRICS_PATH, retry_after=7)
    with pytest.raises(TargetError) as throttled:
        figures(v2, "busy", "blue", start)
    assert (throttled.value.permanent, throttled.value.retry_after) == (False, 7)
    assert "SubscriptionRequestsThrottled" in throttled.value.message
    assert len(v2.faults_fired("throttle")) == 1  # one attempt: the engine retries, not the client

    v2.fail_next_request("GET", METRICS_PATH, 503, "ServiceUnavailable", "The metrics service is busy.")
    with pytest.raises(TargetError) as failed:
        figures(v2, "busy", "blue", start)
    assert not failed.value.permanent

    assert figures(v2, "busy", "blue", start)["requests"] == 2  # the next read goes through


def test_requests_azure_monitor_has_not_ingested_yet_read_as_no_requests(v2):
    blue_green(v2, "fresh")
    start = window()
    infer(v2, "fresh", "blue", 3)

    v2.metrics_delay_s = 3600
    unseen = figures(v2, "fresh", "blue", start)
    assert (unseen["requests"], unseen["p95_ms"], unseen["p99_ms"]) == (0, None, None)

    v2.metrics_delay_s = 0
    assert figures(v2, "fresh", "blue", start)["requests"] == 3
