"""Sign-in with OpenID Connect (Microsoft Entra ID, or any OIDC provider),
on mozilla-django-oidc: discovery, the stricter ID-token checks, and the
mapping from the provider's groups to the dashboard's roles."""
