"""Reads for model lines: their revisions, where each runs (in the
environments the viewer may see), and which Azure model version holds it."""

from collections import defaultdict

from django.db.models import Count, Max

from deployments.models import Deployment, ModelLine, ModelRepository, Registration


def line_list(user):
    return (
        ModelLine.objects.visible_to(user)
        .annotate(revision_count=Count("revisions"), latest=Max("revisions__revision"))
        .order_by("name")
    )


def line_detail(user, line_id: int) -> ModelLine | None:
    """The line with `.revision_rows`, newest first, each carrying
    `.running` (live deployments the user may see) and `.azure_models`."""
    line = ModelLine.objects.visible_to(user).filter(pk=line_id).first()
    if line is None:
        return None
    revisions = list(ModelRepository.objects.filter(line=line).select_related("uploaded_by").order_by("-revision"))
    running = defaultdict(list)
    live = (
        Deployment.objects.visible_to(user)
        .filter(repository__line=line)
        .exclude(status__in=Deployment.TERMINAL)
        .select_related("target__environment")
        .order_by("target__environment__position", "name")
    )
    for deployment in live:
        running[deployment.repository_id].append(deployment)
    held = defaultdict(list)
    for registration in Registration.objects.filter(repository_digest__in=[r.digest for r in revisions]):
        held[registration.repository_digest].append(registration)
    for revision in revisions:
        revision.running = running.get(revision.pk, [])
        revision.azure_models = held.get(revision.digest, [])
    line.revision_rows = revisions
    line.workspaces = _workspaces(revisions)
    return line


def _workspaces(revisions) -> list[dict]:
    """Per workspace: [{"workspace", "rows": [(registration, revision)]}], for the page's Azure table."""
    by_workspace = defaultdict(list)
    for revision in revisions:
        for registration in revision.azure_models:
            by_workspace[registration.workspace].append({"registration": registration, "revision": revision})
    return [{"workspace": name, "rows": rows} for name, rows in sorted(by_workspace.items())]


def revision_of(line: ModelLine, number) -> ModelRepository | None:
    try:
        number = int(number)
    except (TypeError, ValueError):
        return None
    return ModelRepository.objects.filter(line=line, revision=number).first()
