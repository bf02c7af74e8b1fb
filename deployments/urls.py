from django.contrib.auth import views as auth_views
from django.urls import include, path

from deployments.views import account, audit_log, deployments, health, overview, repositories, targets, upcoming

urlpatterns = [
    path("", overview.overview, name="overview"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="deployments/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", account.profile, name="profile"),
    path("profile/tokens/", account.token_create, name="token-create"),
    path("profile/tokens/<int:token_id>/revoke/", account.token_revoke, name="token-revoke"),
    path("audit/", audit_log.audit_log, name="audit"),
    path("repositories/", repositories.repositories, name="repositories"),
    path("repositories/upload/", repositories.upload, name="repository-upload"),
    path("repositories/import/", repositories.import_path, name="repository-import"),
    path("repositories/<int:repository_id>/", repositories.detail, name="repository"),
    path("repositories/<int:repository_id>/delete/", repositories.delete, name="repository-delete"),
    path("targets/", targets.targets, name="targets"),
    path("targets/new/", targets.create, name="target-create"),
    path("targets/<int:target_id>/", targets.detail, name="target"),
    path("targets/<int:target_id>/test/", targets.test, name="target-test"),
    path("targets/<int:target_id>/adopt/", targets.adopt, name="target-adopt"),
    path("deployments/", deployments.deployments, name="deployments"),
    path("deployments/new/", deployments.create, name="deployment-create"),
    path("deployments/<int:deployment_id>/", deployments.detail, name="deployment"),
    path("deployments/<int:deployment_id>/redeploy/", deployments.redeploy, name="deployment-redeploy"),
    path("deployments/<int:deployment_id>/delete/", deployments.delete, name="deployment-delete"),
    path("deployments/<int:deployment_id>/traffic/", deployments.traffic, name="deployment-traffic"),
    path("deployments/<int:deployment_id>/logs/", deployments.logs, name="deployment-logs"),
    path("deployments/<int:deployment_id>/charts/<str:chart>.json", health.chart_data, name="deployment-chart"),
    path("fleet/", health.fleet_fragment, name="fleet"),
    *[path(f"{section}/", upcoming.upcoming, {"section": section}, name=section) for section in upcoming.SECTIONS],
    path("api/v1/", include("deployments.api.urls")),
]
