from django.urls import path

from deployments.api import approvals, deployments, repositories, targets, views

app_name = "api"

urlpatterns = [
    path("health", views.health, name="health"),
    path("audit", views.audit_list, name="audit"),
    path("audit/verify", views.audit_verify, name="audit-verify"),
    path("repositories", repositories.repositories, name="repositories"),
    path("repositories/<int:repository_id>", repositories.repository, name="repository"),
    path("targets", targets.targets, name="targets"),
    path("environments", targets.environments, name="environments"),
    path("targets/<int:target_id>/adopt", targets.adopt, name="target-adopt"),
    path("deployments", deployments.deployments, name="deployments"),
    path("deployments/<int:deployment_id>", deployments.deployment, name="deployment"),
    path("deployments/<int:deployment_id>/redeploy", deployments.redeploy, name="deployment-redeploy"),
    path("deployments/<int:deployment_id>/approve", deployments.approve, name="deployment-approve"),
    path("deployments/<int:deployment_id>/reject", deployments.reject, name="deployment-reject"),
    path("deployments/<int:deployment_id>/cancel", deployments.cancel, name="deployment-cancel"),
    path("approvals", approvals.approvals, name="approvals"),
    path("deployments/<int:deployment_id>/logs", deployments.logs, name="deployment-logs"),
    path("deployments/<int:deployment_id>/traffic", deployments.traffic, name="deployment-traffic"),
    path("deployments/<int:deployment_id>/infer", deployments.infer, name="deployment-infer"),
]
