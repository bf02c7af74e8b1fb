"""The Azure SDKs' exceptions as TargetError: the one translation both Azure
kinds hand to the registry's boundary. It keeps the SDK's own message and
decides whether trying again can help.

Transient: throttling (429), timeouts (408), conflicts with an operation in
progress (409), server errors (5xx), connection resets and time-outs (any
OSError). A transient answer's Retry-After travels with it.
Permanent: validation, quota, authorisation, not found, any other 4xx, and
what the SDK refuses by itself, with no HTTP answer behind it.
An exception that is none of the SDKs' (nor a network error) is not
translated: it is a bug of ours and is reported as one.
"""

import re
import sys

from workers.targets.base import TargetError

# Azure error codes that no retry will fix, whatever the HTTP status says.
_PERMANENT_CODES = (
    "QuotaExceeded",
    "AuthorizationFailed",
    "InvalidAuthenticationToken",
    "ResourceNotFound",
    "ResourceGroupNotFound",
    "WorkspaceNotFound",
    "BadArgument",
    "ValidationError",
    "UserError",
    "ImageBuildFailure",
    "InvalidModel",
    # A deployment Azure provisioned and saw fail: its container crashed or
    # its image cannot be pulled. Trying the same spec again repeats it
    # (how-to-troubleshoot-online-endpoints: fix the image or the model first).
    "ResourceNotReady",
    "ImagePullLoopBackOff",
    "DeploymentCrashLoopBackOff",
    "KubernetesCrashLoopBackOff",
)
# Refused for a reason the next attempt does not share: it builds a new
# credential, hence a new token.
_TRANSIENT_CODES = ("ExpiredAuthenticationToken",)
_TRANSIENT_STATUS = {408, 409, 429}
_STATUS = re.compile(r"(?:Response Code|status code|StatusCode|Code)[:=\s]+(\d{3})", re.IGNORECASE)
# Modules whose exceptions are the SDKs' answers (and their HTTP stacks').
_SDK_MODULES = ("azure.", "azureml.", "msrest", "adal", "msal", "requests.", "urllib3.", "httpx", "httpcore")


def is_permanent(message: str, status: int | None) -> bool:
    if any(code in message for code in _PERMANENT_CODES):
        return True
    if status is None:
        # No HTTP answer behind it and no network error: the SDK refused the
        # call itself (a validation, a bad argument). Asking again will not help.
        return True
    return 400 <= status < 500 and status not in _TRANSIENT_STATUS


def _status_of(exc: BaseException, message: str) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int):
            return status
    # azureml-core puts the answer's status in its text only.
    found = _STATUS.search(message)
    return int(found.group(1)) if found else None


def _from_sdk(exc: BaseException) -> bool:
    return any(type(exc).__module__.startswith(module) for module in _SDK_MODULES)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the answer's Retry-After (or retry-after-ms) asked for, if any."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("Retry-After"):
            return float(headers["Retry-After"])
    except (TypeError, ValueError):
        return None  # an HTTP date or junk: the engine's own backoff applies
    return None


def translate_error(exc: BaseException, doing: str) -> TargetError | None:
    message = f"{doing}: {str(exc) or type(exc).__name__}"
    if isinstance(exc, OSError):
        # Resets, refused connections, time-outs, TLS cut short: the network, not an answer.
        return TargetError(message, permanent=False)
    if not _from_sdk(exc):
        return None
    # Imported here, not at the top: only a worker that met an SDK error loads them.
    import requests
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

    # azure-ai-ml takes seconds to import: where it is not loaded, none of its exceptions can be here.
    if any(code in message for code in _TRANSIENT_CODES):
        return TargetError(message, permanent=False)
    ml_exceptions = sys.modules.get("azure.ai.ml.exceptions")
    if isinstance(exc, ClientAuthenticationError) or (
        ml_exceptions is not None and isinstance(exc, ml_exceptions.ValidationException)
    ):
        return TargetError(message, permanent=True)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, requests.ConnectionError, requests.Timeout)):
        return TargetError(message, permanent=False)
    permanent = is_permanent(message, _status_of(exc, message))
    return TargetError(message, permanent=permanent, retry_after=None if permanent else _retry_after(exc))
