"""The dashboard's roles, as Django groups whose permissions this file defines.

A role lists permission codenames; ones whose model does not exist yet are
skipped, so later features add their codenames here and the next migrate
grants them.
"""

from django.contrib.auth.models import Group, Permission

VIEWER, DEPLOYER, APPROVER, ADMIN = "viewer", "deployer", "approver", "admin"

_VIEW = {
    "deployments.view_auditevent",
    "deployments.view_modelrepository",
    "deployments.view_tritonmodel",
    "deployments.view_deployment",
    "deployments.view_operation",
    "deployments.view_target",
    "deployments.view_environment",
    "deployments.view_deployrequest",
}
_APPROVE = {"deployments.approve_deployrequest"}
_DEPLOY = {
    "deployments.add_modelrepository",
    "deployments.delete_modelrepository",
    "deployments.add_deployment",
    "deployments.delete_deployment",
    "deployments.use_console",
}
_ADMINISTER = {
    "deployments.add_target",
    "deployments.change_target",
    "deployments.add_environment",
    "deployments.change_environment",
    "deployments.view_workerheartbeat",
    "deployments.add_environmentmembership",
    "deployments.delete_environmentmembership",
    "deployments.view_webhookdelivery",
}
ROLE_PERMISSIONS: dict[str, set[str]] = {
    VIEWER: _VIEW,
    DEPLOYER: _VIEW | _DEPLOY,
    APPROVER: _VIEW | _APPROVE,
    ADMIN: _VIEW | _DEPLOY | _APPROVE | _ADMINISTER,
}


def ensure_roles() -> None:
    """Create the role groups and set their permissions to exactly ROLE_PERMISSIONS."""
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = []
        for dotted in sorted(codenames):
            app_label, codename = dotted.split(".", 1)
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                permissions.append(permission)
        group.permissions.set(permissions)


def ensure_roles_after_migrate(**kwargs) -> None:
    ensure_roles()
