"""Moving a deployment to another target (an SDK v1 webservice to an SDK v2
endpoint) from a pipeline: the same services as the pages."""

from django.http import HttpRequest
from ninja import Router, Status

from deployments.api.bodies import CutOver, MigrationCreate
from deployments.api.deployments import _by_id_or_name, _revision, _visible
from deployments.api.errors import NotFound
from deployments.api.schemas import Migration, answers, changes
from deployments.models import Migration as MigrationRow
from deployments.models import Target
from deployments.serializers import migration_json
from deployments.services import migrations as moving

router = Router(tags=["migrations"])


def _migration(request, migration_id: int) -> MigrationRow:
    found = (
        MigrationRow.objects.visible_to(request.user)
        .select_related("source__target", "destination__target", "created_by")
        .filter(pk=migration_id)
        .first()
    )
    if found is None:
        raise NotFound("No such migration.")
    return found


@router.post(
    "deployments/{int:deployment_id}/migrations",
    response=changes({201: Migration}, 404),
    url_name="deployment-migrations",
)
def migration_create(request: HttpRequest, deployment_id: int, body: MigrationCreate):
    """Create the equivalent deployment on another target of the same
    environment (approved where it asks); 400 `cannot_migrate` saying why
    when it cannot move (e.g. an entry-script service to SDK v2)."""
    source = _visible(request, deployment_id)
    target = _by_id_or_name(Target.objects.visible_to(request.user), body.target, "target")
    repository = _revision(request, body.repository) if body.repository is not None else None
    migration = moving.migration_create(
        source=source,
        target=target,
        actor=request.user,
        name=body.name,
        repository=repository,
        golden_requests=body.golden_requests,
    )
    return Status(201, migration_json(migration))


@router.get("migrations/{int:migration_id}", response=answers({200: Migration}, 404), url_name="migration")
def migration_detail(request: HttpRequest, migration_id: int):
    return migration_json(_migration(request, migration_id))


@router.post(
    "migrations/{int:migration_id}/compare", response=changes({202: Migration}, 404), url_name="migration-compare"
)
def migration_compare(request: HttpRequest, migration_id: int):
    """Golden requests and timed calls to both sides, in a worker; `status`
    is comparing until the `comparison` is in."""
    found = moving.migration_compare(migration=_migration(request, migration_id), actor=request.user)
    return Status(202, migration_json(found))


@router.post(
    "migrations/{int:migration_id}/cut-over", response=changes({202: Migration}, 404), url_name="migration-cut-over"
)
def migration_cut_over(request: HttpRequest, migration_id: int, body: CutOver = None):
    """Delete the original (approved where the environment asks for deletes)."""
    body = body or CutOver()
    found = moving.migration_cut_over(
        migration=_migration(request, migration_id), actor=request.user, force=body.force, because=body.because
    )
    return Status(202, migration_json(found))
