"""An SDK v1 AKS webservice moved to an SDK v2 online endpoint, end to end
through the real SDKs against both fakes, each service a real Triton: the
equivalent deployment is created, both answer the same golden request and
are timed side by side, then the cut-over deletes the v1 service."""

import httpx
import pytest

from deployments.models import Deployment, Migration
from deployments.services.deployments import deployment_create
from deployments.services.migrations import (
    migration_compare,
    migration_compare_run,
    migration_create,
    migration_cut_over,
    migrations_settle,
)
from deployments.services.rollouts import golden_request_save
from tests.azure import azure_target, data_plane, fake_v1_and_v2  # noqa: F401 - fixtures
from tests.engine import endpoint_headers, run_pending
from tests.load import BODY
from tests.rollout_models import GOLDEN
from tests.test_azureml_v1 import settle

pytestmark = [pytest.mark.django_db, pytest.mark.azure]


def test_a_v1_webservice_moves_to_a_v2_endpoint(admin, repository, fake_v1_and_v2):  # noqa: F811
    v1_fake, v2_fake = fake_v1_and_v2
    v1 = azure_target(admin, "azureml_v1_aks", v1_fake, compute_name="aks-gpu")
    v2 = azure_target(admin, "azureml_v2_managed", v2_fake, instance_type="Standard_NC6s_v3")
    source = deployment_create(name="add-sub", repository=repository, target=v1, actor=admin)
    run_pending(source)
    settle(source)
    assert source.status == Deployment.Status.HEALTHY, source.status_reason
    golden_request_save(deployment=source, actor=admin, name=GOLDEN["name"], request=GOLDEN)

    migration = migration_create(source=source, target=v2, actor=admin, name="add-sub-v2")
    destination = migration.destination
    run_pending(destination)
    settle(destination)
    assert destination.status == Deployment.Status.HEALTHY, destination.status_reason
    migrations_settle()
    migration.refresh_from_db()
    assert migration.status == Migration.Status.DEPLOYED

    migration_compare(migration=migration, actor=admin)
    migration_compare_run(migration.pk)  # the worker's part
    migration.refresh_from_db()
    comparison = migration.comparison
    assert migration.status == Migration.Status.COMPARED
    assert comparison["passed"], comparison
    assert comparison["golden"][0]["same"]
    for side in ("source", "destination"):
        assert comparison["latency"][side]["samples"] == 20
        assert comparison["latency"][side]["p95_ms"] >= comparison["latency"][side]["p50_ms"] > 0

    migration_cut_over(migration=migration, actor=admin)
    run_pending(source)
    migrations_settle()
    migration.refresh_from_db()
    source.refresh_from_db()
    assert migration.status == Migration.Status.DONE, migration.reason
    assert source.status == Deployment.Status.DELETED
    assert "add-sub" not in v1_fake.services, "the v1 webservice is gone from the workspace"
    with httpx.Client(timeout=10) as client:
        answer = client.post(
            destination.scoring_uri.removesuffix("/score") + "/v2/models/add_sub/infer",
            json=BODY,
            headers=endpoint_headers(destination),
        )
    assert answer.json()["outputs"][0]["data"] == [11, 22, 33, 44]
