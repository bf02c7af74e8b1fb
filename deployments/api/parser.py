"""Request bodies as the API accepts them: a JSON object in UTF-8, of
bounded size and depth. Anything else is a 400 or 413 that says which,
before a schema looks at it."""

import json
import math

import pydantic
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http.multipartparser import MultiPartParserError
from ninja.errors import ValidationError
from ninja.parser import Parser

from deployments.api.errors import TooLarge, UnsupportedMedia
from deployments.errors import DomainError

# Far deeper than any documented body (the deepest is an infer input's data),
# far shallower than the recursion limit that json.loads would hit.
MAX_DEPTH = 32


def check_declared_size(request, limit: int) -> None:
    """Refuse on the Content-Length alone, before any of the body is read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise DomainError("Content-Length is not a number.", code="invalid_request") from None
    if declared > limit:
        raise TooLarge(f"The body is {declared} bytes; this operation takes at most {limit}.")


def parse_json_object(request) -> dict:
    check_declared_size(request, settings.API_MAX_JSON_BYTES)
    try:
        # A chunked body has no Content-Length; Django stops reading it at
        # DATA_UPLOAD_MAX_MEMORY_SIZE, which settings keep equal to the limit.
        raw = request.body
    except RequestDataTooBig:
        raise TooLarge(f"The body is over {settings.API_MAX_JSON_BYTES} bytes.") from None
    if not raw or _empty_form(request):
        return {}
    if request.content_type not in ("application/json", ""):
        raise UnsupportedMedia(f"Send the body as application/json (this one is {request.content_type}).")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DomainError(f"The body is not UTF-8 (byte {exc.start}).", code="invalid_json") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DomainError(f"The body is not valid JSON ({exc}).", code="invalid_json") from None
    except RecursionError:
        raise _too_deep() from None
    if _depth(body) > MAX_DEPTH:
        raise _too_deep()
    check_text(body)
    if body is None:  # where the body is optional, `null` says "none"
        return {}
    if not isinstance(body, dict):
        raise DomainError("The body must be a JSON object.", code="invalid_json")
    return body


def _empty_form(request) -> bool:
    """A form with nothing in it (what some clients send for "no body")."""
    if request.content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return False
    try:
        return not request.POST and not request.FILES
    except MultiPartParserError:
        return False


def _too_deep() -> DomainError:
    return DomainError(f"The body nests deeper than {MAX_DEPTH} levels.", code="invalid_json")


def check_text(value, where: str = "The body") -> None:
    """No string of the API may hold a NUL or half a surrogate pair (JSON can
    spell both, PostgreSQL can store neither), and no number may be NaN or
    Infinity (Python's json reads them; JSON has no such numbers). The error
    names the field where it found one."""
    stack = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, path))
                stack.append((child, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list):
            stack.extend((child, f"{path}.{index}" if path else str(index)) for index, child in enumerate(item))
        elif isinstance(item, str) and not _storable(item):
            named = f"'{path}'" if path else where.lower()
            raise DomainError(
                f"{where}: {named} holds a NUL character or half a surrogate pair; no field takes one.", path=path
            )
        elif isinstance(item, float) and not math.isfinite(item):
            raise DomainError(f"{where}: '{path}' is {item!r} (NaN or Infinity), not a JSON number.", path=path)


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth(value) -> int:
    """How deeply containers nest, without recursion (a hostile body must not
    be the one to find Python's recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


class StrictJSONParser(Parser):
    def parse_body(self, request) -> dict:
        return parse_json_object(request)

    def parse_querydict(self, data, list_fields, request) -> dict:
        check_text([[key, *values] for key, values in data.lists()], "The query string")
        for key, values in data.lists():
            if len(values) > 1 and key not in list_fields:
                raise DomainError(f"'{key}' is given {len(values)} times; it takes one value.", path=key)
        return super().parse_querydict(data, list_fields, request)


def parse_as(model, request):
    """A body the operation reads itself (one of two content types), checked
    by its schema as ninja checks the others."""
    try:
        return model.model_validate(parse_json_object(request))
    except pydantic.ValidationError as exc:
        raise ValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None
