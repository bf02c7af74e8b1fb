"""Unique constraints a person can run into (two creates of one name at
once) as a Conflict naming the field, instead of a 500.

The services check before they insert, but two requests can both pass the
check; the database's constraint then refuses the second. Every service
transaction goes through `atomic`, so that refusal reaches pages and the API
as the same domain error the check would have raised.
"""

import functools
import re

from django.db import IntegrityError, transaction

from deployments.errors import Conflict

# (table, columns) -> (field, message). Columns as both backends name them.
_UNIQUE = {
    ("deployments_deployment", frozenset({"target_id", "name"})): (
        "name",
        "This target already has a deployment of that name (created a moment ago?).",
    ),
    ("deployments_target", frozenset({"name"})): ("name", "A target of that name exists already."),
    ("deployments_environment", frozenset({"name"})): ("name", "An environment of that name exists already."),
    ("deployments_operation", frozenset({"deployment_id"})): (
        "",
        "An operation is already under way for this deployment; wait for it to finish.",
    ),
    ("deployments_deployrequest", frozenset({"deployment_id"})): (
        "",
        "A request for this deployment is already waiting for approval.",
    ),
}
_SQLITE = re.compile(r"UNIQUE constraint failed: (.+)$")
_POSTGRES_KEY = re.compile(r"Key \((.+?)\)=")


def _table_and_columns(exc: IntegrityError) -> tuple[str, frozenset[str]] | None:
    diag = getattr(exc.__cause__, "diag", None)
    if diag is not None and diag.table_name:
        found = _POSTGRES_KEY.search(diag.message_detail or "")
        if found:
            return diag.table_name, frozenset(column.strip() for column in found.group(1).split(","))
        return None
    found = _SQLITE.search(str(exc))
    if not found:
        return None
    pairs = [item.strip().rsplit(".", 1) for item in found.group(1).split(",")]
    return pairs[0][0], frozenset(column for _, column in pairs)


def conflict_from(exc: IntegrityError) -> Conflict | None:
    """The Conflict a person should read, or None for a constraint they cannot
    trip (that one is a bug and stays an error)."""
    key = _table_and_columns(exc)
    if key is None or key not in _UNIQUE:
        return None
    field, message = _UNIQUE[key]
    return Conflict(message, path=field)


def atomic(service):
    """transaction.atomic for a service, with its unique-constraint races told as Conflicts."""

    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        try:
            with transaction.atomic():
                return service(*args, **kwargs)
        except IntegrityError as exc:
            conflict = conflict_from(exc)
            if conflict is None:
                raise
            raise conflict from exc

    return wrapper
