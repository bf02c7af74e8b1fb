from django.conf import settings
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError
from ninja import Query, Router, Schema, Status
from pydantic import Field

from deployments import policy, uploads
from deployments.api.bodies import RepositoryImport, RepositoryUpload
from deployments.api.errors import NotFound, TooLarge, UnsupportedMedia
from deployments.api.parser import check_declared_size, check_text, parse_as
from deployments.api.schemas import (
    Line,
    LineList,
    Repository,
    RepositoryList,
    RepositoryRecorded,
    RevisionDiff,
    answers,
    changes,
)
from deployments.errors import DomainError, NotAllowed
from deployments.selectors import lines as lines_selecting
from deployments.selectors import repositories as selecting
from deployments.selectors.revisions import revision_diff
from deployments.serializers import line_json, repository_json
from deployments.services import repositories as recording
from deployments.services.permissions import require

router = Router(tags=["repositories"])


class DiffQuery(Schema):
    # Optional in the schema so an unknown line is a 404 before anything
    # else; the operation then names a missing one.
    from_revision: int | None = Field(None, alias="from", description="a revision number of the line (required)")
    to_revision: int | None = Field(None, alias="to", description="a revision number of the line (required)")


# Bodies read by the operation itself (see api.py).
BODIES = (RepositoryUpload, RepositoryImport)


@router.get("repositories", response=answers({200: RepositoryList}), url_name="repositories")
def repository_list(request: HttpRequest):
    """Repositories the caller may see, newest first (at most 500)."""
    if not policy.can_somewhere(request.user, "deployments.view_modelrepository"):
        raise NotAllowed("Seeing repositories needs the viewer role or above.")
    return {"results": [repository_json(r) for r in selecting.repository_list(request.user)[:500]]}


@router.post(
    "repositories",
    response=changes({200: RepositoryRecorded, 201: RepositoryRecorded}),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": {"$ref": "#/components/schemas/RepositoryUpload"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/RepositoryImport"}},
            },
        }
    },
)
def repository_create(request: HttpRequest):
    """Record a repository from an archive (multipart) or a server directory
    (JSON). 201 with it; 200 with the existing one when identical content is
    already recorded (`created` false); 400 naming the entry when the input
    is unsafe or unreadable, and nothing is kept."""
    if request.content_type == "application/json":
        body = parse_as(RepositoryImport, request)
        outcome = recording.repository_import(name=body.name, path=body.path, actor=request.user)
    elif request.content_type == "multipart/form-data":
        # The upload gate (deployments/uploads.py) answered these before
        # anything read the body; the operation stays safe without it.
        require(request.user, uploads.PERMISSION, "Uploading a repository")
        check_declared_size(request, settings.REPOSITORY_MAX_UPLOAD_BYTES + uploads.MULTIPART_OVERHEAD)
        try:
            fields, files = request.POST, request.FILES
        except MultiPartParserError as exc:
            raise DomainError(f"The multipart body cannot be read: {exc}.", path="archive") from None
        refused = uploads.refusal(request)
        if refused:
            raise TooLarge(refused, path="archive")
        check_text([[key, *values] for key, values in fields.lists()], "The form")
        unknown = sorted({*fields, *files} - set(RepositoryUpload.model_fields))
        if unknown:
            raise DomainError(
                f"Unknown field '{unknown[0]}': this operation does not take it.", code="unknown_field", path=unknown[0]
            )
        archive = files.get("archive")
        outcome = recording.repository_upload(
            name=fields.get("name", ""),
            archive=archive,
            filename=archive.name if archive else "",
            actor=request.user,
        )
    else:
        raise UnsupportedMedia("Send multipart/form-data with an archive, or JSON naming a server directory.")
    body = {**repository_json(outcome.repository), "created": outcome.created}
    # Identical content already recorded: 200 with that repository, not a second copy.
    return Status(201 if outcome.created else 200, body)


def _found(request, repository_id: int):
    found = selecting.repository_detail(request.user, repository_id)
    if found is None:
        raise NotFound("No such repository.")
    return found


@router.get("repositories/{int:repository_id}", response=answers({200: Repository}, 404), url_name="repository")
def repository_get(request: HttpRequest, repository_id: int):
    return repository_json(_found(request, repository_id))


@router.delete("repositories/{int:repository_id}", response=changes({204: None}, 404))
def repository_delete(request: HttpRequest, repository_id: int):
    """The files go once the deletion commits; 409 while a deployment uses it."""
    recording.repository_delete(repository=_found(request, repository_id), actor=request.user)
    return Status(204, None)


def _line(request, line_id: int):
    found = lines_selecting.line_detail(request.user, line_id)
    if found is None:
        raise NotFound("No such line.")
    return found


@router.get("lines", response=answers({200: LineList}), url_name="lines")
def line_list(request: HttpRequest):
    """Model lines (one per repository name), by name."""
    if not policy.can_somewhere(request.user, "deployments.view_modelrepository"):
        raise NotAllowed("Seeing repositories needs the viewer role or above.")
    rows = lines_selecting.line_list(request.user)
    return {"results": [{"id": r.pk, "name": r.name, "revisions": r.revision_count, "latest": r.latest} for r in rows]}


@router.get("lines/{int:line_id}", response=answers({200: Line}, 404), url_name="line")
def line_get(request: HttpRequest, line_id: int):
    """Its revisions, newest first: who, when, digest, status, where each runs
    (only in environments the caller may see) and its Azure model versions."""
    return line_json(_line(request, line_id))


@router.get("lines/{int:line_id}/diff", response=answers({200: RevisionDiff}, 404), url_name="line-diff")
def line_diff(request: HttpRequest, line_id: int, query: Query[DiffQuery]):
    """What changed from revision `from` to revision `to`."""
    line = _line(request, line_id)
    old = lines_selecting.revision_of(line, query.from_revision)
    new = lines_selecting.revision_of(line, query.to_revision)
    for number, found, name in ((query.from_revision, old, "from"), (query.to_revision, new, "to")):
        if number is None:
            raise DomainError(f"'{name}' is required: a revision number of {line.name}.", path=name)
        if found is None:
            raise DomainError(f"{line.name} has no revision {number}.", code="not_found", path=name)
    return revision_diff(old, new)
