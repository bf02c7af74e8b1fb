from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Triton deployments"

    def ready(self):
        from deployments import auth_audit, roles

        auth_audit.connect()
        from django.contrib.auth.signals import user_logged_in

        from deployments import session_limits

        user_logged_in.connect(session_limits.start, dispatch_uid="session_limits_start")
        # Roles are kept in step with roles.py after every migrate (permissions
        # only exist once their models are migrated, so a data migration can't).
        post_migrate.connect(roles.ensure_roles_after_migrate, sender=self)
