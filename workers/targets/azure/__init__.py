"""What the Azure ML kinds share: settings, credentials, names, errors, probes."""

from workers.targets.azure import errors, settings

# The descriptor fields every Azure ML kind has in common.
KIND_DEFAULTS = {
    "secret_fields": settings.SECRETS,
    "auth_methods": settings.AUTH_METHODS,
    "check_auth": settings.check_auth,
    "auth_settings": settings.AUTH_SETTINGS,
    "default_resources": True,
    "name_rule": settings.NAME_RULE,
    "translate_error": errors.translate_error,
    "where": settings.where,
}
