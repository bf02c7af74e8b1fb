"""The JSON API: django-ninja routes, pydantic schemas, and the OpenAPI 3.1
document generated from them at /api/v1/openapi.json."""

from ninja import NinjaAPI

from deployments.api import (
    approvals,
    audit,
    deployments,
    errors,
    load_tests,
    migrations,
    repositories,
    rollouts,
    system,
    targets,
)
from deployments.api.auth import TokenAuth
from deployments.api.documentation import documentation_access
from deployments.api.parser import StrictJSONParser

DESCRIPTION = """
The dashboard's API for CI pipelines and scripts: the same services,
permissions, approvals and audit as the pages, never a bypass.

Authenticate with `Authorization: Token <key>`. Errors are always
`{"errors": [{"code", "message", "path"}]}`, `path` naming the field at fault.
Bodies take only the documented fields: any other is a 400 naming it.
"""


class DashboardAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        # The view's own name (deployment_create, ...): stable, and what the CLI calls.
        return operation.view_func.__name__

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        # Bodies that an operation parses itself (two content types on one
        # path) are declared in openapi_extra; their schemas join the rest here.
        components = schema["components"].setdefault("schemas", {})
        for model in (*repositories.BODIES, *deployments.BODIES):
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(definition.pop("$defs", {}))
            components[model.__name__] = definition
        return schema


api = DashboardAPI(
    title="Triton Dashboard API",
    version="1",
    description=DESCRIPTION.strip(),
    urls_namespace="api",
    auth=TokenAuth(),
    parser=StrictJSONParser(),
    docs_decorator=documentation_access,
)
errors.install(api)
api.add_router("", system.router)
api.add_router("", audit.router)
api.add_router("", repositories.router)
api.add_router("", targets.router)
api.add_router("", deployments.router)
api.add_router("", approvals.router)
api.add_router("", rollouts.router)
api.add_router("", migrations.router)
api.add_router("", load_tests.router)
