"""Turn the Azure SDKs' many exception types into TargetError, keeping the
SDK's own message and deciding whether trying again can help."""

import contextlib
import re

from workers.targets.base import TargetError

# Azure error codes that no retry will fix.
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
)
_STATUS = re.compile(r"(?:Response Code|status code|StatusCode|Code)[:=\s]+(\d{3})", re.IGNORECASE)


def is_permanent(message: str, status: int | None = None) -> bool:
    if any(code in message for code in _PERMANENT_CODES):
        return True
    if status is None:
        found = _STATUS.search(message)
        status = int(found.group(1)) if found else None
    if status is None:
        return False
    return 400 <= status < 500 and status not in (408, 409, 429)


@contextlib.contextmanager
def translate(doing: str):
    try:
        yield
    except TargetError:
        raise
    except (ConnectionError, TimeoutError) as exc:
        raise TargetError(f"{doing}: {exc}", permanent=False) from exc
    except Exception as exc:  # azureml-core and azure-ai-ml raise dozens of types
        message = str(exc) or type(exc).__name__
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        raise TargetError(f"{doing}: {message}", permanent=is_permanent(message, status)) from exc
