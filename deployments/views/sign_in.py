from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied


class SignInView(auth_views.LoginView):
    """Django's login view, offering single sign-on when configured and
    refusing passwords when local accounts are turned off."""

    template_name = "deployments/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if not settings.PASSWORD_LOGIN:
            raise PermissionDenied("Local accounts are turned off: sign in with single sign-on.")
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "password_login": settings.PASSWORD_LOGIN,
            "sso_enabled": settings.OIDC_ENABLED,
            "sso_provider": settings.OIDC_PROVIDER_NAME,
        }
