from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from deployments import policy
from deployments.errors import DomainError
from deployments.models import DeployRequest, Rollout
from deployments.selectors.approvals import TABS, inbox, repository_changes, request_detail, spec_changes
from deployments.services.approvals import deployment_approve, deployment_reject, deployment_request_cancel


@require_safe
def approvals(request):
    tab = request.GET.get("tab", "waiting")
    if tab not in TABS:
        tab = "waiting"
    before = request.GET.get("before", "")
    rows, next_cursor = inbox(request.user, tab, before_id=int(before) if before.isdigit() else None)
    return render(request, "deployments/approvals.html", {"rows": rows, "tab": tab, "next_cursor": next_cursor})


def _visible_or_404(request, request_id: int):
    found = request_detail(request.user, request_id)
    if found is None:
        raise Http404("No such request.")
    return found


@require_safe
def detail(request, request_id: int):
    found = _visible_or_404(request, request_id)
    user = request.user
    pending = found.status == found.Status.PENDING and not found.is_expired
    decided_by_me = any(a.approver_id == user.pk for a in found.approvals.all())
    context = {
        "req": found,
        "changes": spec_changes(found),
        "repository": repository_changes(found),
        "approved": sum(a.decision == "approve" for a in found.approvals.all()),
        "is_requester": found.requested_by_id == user.pk,
        "can_decide": pending
        and found.requested_by_id != user.pk
        and not decided_by_me
        and policy.may_approve(user, found.environment),
        "can_cancel": pending and (found.requested_by_id == user.pk or user.is_superuser),
        "pending": pending,
        "rollout": Rollout.objects.prefetch_related("steps").filter(pk=found.params.get("rollout")).first()
        if found.kind == DeployRequest.Kind.ROLLOUT
        else None,
    }
    return render(request, "deployments/approval_detail.html", context)


def _decide(request, request_id: int, service, done: str, **extra):
    found = _visible_or_404(request, request_id)
    try:
        service(deploy_request=found, actor=request.user, **extra)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("approval", request_id=found.pk)


@require_POST
def approve(request, request_id: int):
    return _decide(request, request_id, deployment_approve, "Approved.", comment=request.POST.get("comment", ""))


@require_POST
def reject(request, request_id: int):
    return _decide(request, request_id, deployment_reject, "Rejected.", comment=request.POST.get("comment", ""))


@require_POST
def cancel(request, request_id: int):
    return _decide(request, request_id, deployment_request_cancel, "Request cancelled.")
