from django.http import HttpResponse, JsonResponse

from deployments import policy
from deployments.api.auth import api_view
from deployments.api.responses import api_error, json_body
from deployments.errors import DomainError, NotAllowed
from deployments.selectors.repositories import repository_detail, repository_list
from deployments.serializers import repository_json
from deployments.services.repositories import repository_delete, repository_import, repository_upload


@api_view("GET", "POST")
def repositories(request):
    if request.method == "GET":
        if not policy.can_somewhere(request.user, "deployments.view_modelrepository"):
            raise NotAllowed("Seeing repositories needs the viewer role or above.")
        return JsonResponse({"results": [repository_json(r) for r in repository_list(request.user)[:500]]})
    if request.content_type == "application/json":
        body = json_body(request)
        name, path = body.get("name", ""), body.get("path", "")
        if not isinstance(name, str) or not isinstance(path, str) or not path:
            raise DomainError('Send {"name": str, "path": str} with an absolute server path.', path="path")
        outcome = repository_import(name=name, path=path, actor=request.user)
    else:
        archive = request.FILES.get("archive")
        outcome = repository_upload(
            name=request.POST.get("name", ""),
            archive=archive,
            filename=archive.name if archive else "",
            actor=request.user,
        )
    body = repository_json(outcome.repository)
    body["created"] = outcome.created
    # Identical content already recorded: 200 with that repository, not a second copy.
    return JsonResponse(body, status=201 if outcome.created else 200)


@api_view("GET", "DELETE")
def repository(request, repository_id: int):
    found = repository_detail(request.user, repository_id)
    if found is None:
        return api_error(404, "not_found", "No such repository.")
    if request.method == "DELETE":
        repository_delete(repository=found, actor=request.user)
        return HttpResponse(status=204)
    return JsonResponse(repository_json(found))
