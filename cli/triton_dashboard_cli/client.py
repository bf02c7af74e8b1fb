"""The API's operations this CLI calls, by the operationId the dashboard's
OpenAPI document gives them (a test holds this table against the document),
and one error type for everything that can go wrong on the way."""

import httpx

# operationId -> (method, path template under the dashboard's URL)
OPERATIONS = {
    "repository_create": ("POST", "/api/v1/repositories"),
    "deployment_list": ("GET", "/api/v1/deployments"),
    "deployment_create": ("POST", "/api/v1/deployments"),
    "deployment_get": ("GET", "/api/v1/deployments/{deployment_id}"),
    "deployment_delete": ("DELETE", "/api/v1/deployments/{deployment_id}"),
    "deployment_redeploy": ("POST", "/api/v1/deployments/{deployment_id}/redeploy"),
    "deployment_promote": ("POST", "/api/v1/deployments/{deployment_id}/promote"),
    "deployment_logs": ("GET", "/api/v1/deployments/{deployment_id}/logs"),
    "deployment_approve": ("POST", "/api/v1/deployments/{deployment_id}/approve"),
    "deployment_reject": ("POST", "/api/v1/deployments/{deployment_id}/reject"),
    "deployment_traffic": ("POST", "/api/v1/deployments/{deployment_id}/traffic"),
    "deployment_infer": ("POST", "/api/v1/deployments/{deployment_id}/infer"),
    "rollout_create": ("POST", "/api/v1/deployments/{deployment_id}/rollouts"),
    "rollout_detail": ("GET", "/api/v1/rollouts/{rollout_id}"),
    "rollout_pause": ("POST", "/api/v1/rollouts/{rollout_id}/pause"),
    "rollout_resume": ("POST", "/api/v1/rollouts/{rollout_id}/resume"),
    "rollout_promote": ("POST", "/api/v1/rollouts/{rollout_id}/promote"),
    "rollout_abort": ("POST", "/api/v1/rollouts/{rollout_id}/abort"),
    "migration_create": ("POST", "/api/v1/deployments/{deployment_id}/migrations"),
    "migration_detail": ("GET", "/api/v1/migrations/{migration_id}"),
    "load_test_create": ("POST", "/api/v1/deployments/{deployment_id}/loadtests"),
    "load_test_detail": ("GET", "/api/v1/loadtests/{test_id}"),
    "load_test_cancel": ("POST", "/api/v1/loadtests/{test_id}/cancel"),
}


class ApiFailure(Exception):
    """The dashboard refused (its error list), or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, errors: list | None = None):
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class Client:
    # Another way to the server than the network (the tests' in-process dashboard).
    transport: httpx.BaseTransport | None = None

    def __init__(self, url: str, token: str, *, timeout: float = 30.0):
        # No idle connections kept: a pipeline polls every few seconds, and a
        # server closing an idle one must never meet a request on its way.
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Token {token}", "User-Agent": "triton-dashboard-cli"},
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
            transport=self.transport,
        )

    def call(self, operation: str, **kwargs) -> dict | None:
        """The answer's body; see answer()."""
        return self.answer(operation, **kwargs)[1]

    def answer(
        self, operation: str, *, path: dict | None = None, query: dict | None = None, **kwargs
    ) -> tuple[int, dict | None]:
        """The answer's status and body (some operations tell apart what
        they did by the status: a promotion's 201 created, 202 updated).
        path fills the template's {fields}; query is the query string;
        kwargs go to httpx (json=, files=, data=)."""
        method, template = OPERATIONS[operation]
        path = template.format(**(path or {}))
        try:
            response = self._http.request(method, path, params=query, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiFailure(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise _failure(method, path, response)
        if response.status_code == 204 or not response.content:
            return response.status_code, None
        return response.status_code, response.json()


def _failure(method: str, path: str, response: httpx.Response) -> ApiFailure:
    try:
        errors = response.json().get("errors", [])
    except ValueError:
        errors = []
    if errors:
        said = "; ".join(f"{e['message']}" + (f" [{e['path']}]" if e.get("path") else "") for e in errors)
    else:
        said = response.text[:300] or response.reason_phrase
    status = response.status_code
    return ApiFailure(f"{method} {path}: HTTP {status}: {said}", status=status, errors=errors)
