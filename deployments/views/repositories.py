from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from deployments import policy, uploads
from deployments.errors import DomainError, NotAllowed
from deployments.model_repository.layout import file_tree
from deployments.selectors.audit_log import object_history
from deployments.selectors.repositories import repository_detail, repository_list
from deployments.services.permissions import require
from deployments.services.repositories import repository_delete, repository_import, repository_upload
from deployments.views import confirm
from deployments.views.access import require_perm
from deployments.views.confirm import Confirmation

PAGE_SIZE = 25


def _list_context(request, **extra):
    page = Paginator(repository_list(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "page": page,
        "can_add": policy.can(request.user, "deployments.add_modelrepository"),
        "import_roots": settings.REPOSITORY_IMPORT_ROOTS,
        "max_upload_bytes": settings.REPOSITORY_MAX_UPLOAD_BYTES,
        **extra,
    }


@require_safe
def repositories(request):
    require_perm(request.user, "deployments.view_modelrepository", "Seeing repositories needs the viewer role.")
    return render(request, "deployments/repositories.html", _list_context(request))


def _after_intake(request, outcome):
    repository = outcome.repository
    if outcome.created:
        level = messages.SUCCESS if repository.status == "valid" else messages.WARNING
        count = len(repository.errors)
        verdict = "valid" if repository.status == "valid" else f"invalid ({count} error{pluralize(count)} to fix)"
        recorded = f"“{repository.name}” recorded as revision {repository.revision}"
        messages.add_message(request, level, f"{recorded}: {verdict}.")
    else:
        messages.info(
            request,
            f"Identical content is already recorded as {repository.label} (digest {repository.short_digest}); "
            "nothing new was stored.",
        )
    url = reverse("repository", args=[repository.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _form_error(request, form: str, exc: DomainError, *, status: int | None = None, **values):
    context = _list_context(request, **{f"{form}_error": exc.message, f"{form}_values": values})
    template = f"deployments/repositories.html#{form}-form" if request.htmx else "deployments/repositories.html"
    return render(request, template, context, status=status or (403 if isinstance(exc, NotAllowed) else 400))


def upload_refused(request, message: str, *, status: int):
    """The upload form with why its body was not read (deployments/uploads.py)."""
    return _form_error(request, "upload", DomainError(message), status=status)


@require_POST
def upload(request):
    archive = request.FILES.get("archive")
    refused = uploads.refusal(request)
    if refused:
        return upload_refused(request, refused, status=413)
    try:
        outcome = repository_upload(
            name=request.POST.get("name", ""),
            archive=archive,
            filename=archive.name if archive else "",
            actor=request.user,
        )
    except DomainError as exc:
        return _form_error(request, "upload", exc, name=request.POST.get("name", ""))
    return _after_intake(request, outcome)


@require_POST
def import_path(request):
    try:
        outcome = repository_import(
            name=request.POST.get("name", ""), path=request.POST.get("path", ""), actor=request.user
        )
    except DomainError as exc:
        return _form_error(request, "import", exc, name=request.POST.get("name", ""), path=request.POST.get("path", ""))
    return _after_intake(request, outcome)


def _visible_or_404(request, repository_id: int):
    repository = repository_detail(request.user, repository_id)
    if repository is None:
        raise Http404("No such repository.")
    return repository


@require_safe
def detail(request, repository_id: int):
    repository = _visible_or_404(request, repository_id)
    tree = file_tree(repository.path) if repository.path.is_dir() else []
    return render(
        request,
        "deployments/repository_detail.html",
        {
            "repository": repository,
            "models": repository.models.all(),
            "tree": tree,
            "can_delete": policy.can(request.user, "deployments.delete_modelrepository"),
            "can_deploy": policy.can_somewhere(request.user, "deployments.add_deployment"),
            **object_history(request.user, repository),
        },
    )


@require_http_methods(["GET", "POST"])
def delete(request, repository_id: int):
    repository = _visible_or_404(request, repository_id)
    require(request.user, "deployments.delete_modelrepository", "Deleting a repository")
    confirmation = Confirmation(
        title=f"Delete repository {repository.name}?",
        consequence="This removes the record and its stored files now; it is refused while a deployment made "
        "from it is not deleted. The audit log keeps that it existed.",
        button="Delete now",
        back=reverse("repository", args=[repository.pk]),
    )
    confirmed, error = confirm.given(request, confirmation)
    if not confirmed:
        return confirm.ask(request, confirmation, error)
    try:
        repository_delete(repository=repository, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("repository", repository_id=repository_id)
    messages.success(request, f"Repository “{repository.name}” deleted.")
    return redirect("repositories")
