"""Who hears about approvals and failures: an email to the people concerned
and a signed JSON event to the environment's webhook. Both leave after the
transaction commits, through Celery, so a slow mail server or receiver never
holds up a page, and nothing is sent for a change that was rolled back."""

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from deployments import policy, queue
from deployments.models import WebhookDelivery
from deployments.roles import ROLE_PERMISSIONS


def _link(name: str, *args) -> str:
    return settings.DASHBOARD_URL + reverse(name, args=args)


def _email(recipients, subject: str, body: str) -> None:
    recipients = sorted({address for address in recipients if address})
    if not recipients:
        return
    queue.send_email(recipients, subject, body)


def _webhook(environment, event: str, data: dict) -> None:
    if not environment.webhook_url:
        return
    body = json.dumps(
        {"event": event, "at": timezone.now().isoformat(), "environment": environment.name, "data": data},
        sort_keys=True,
    )
    delivery = WebhookDelivery.objects.create(
        environment=environment, event=event, url=environment.webhook_url, body=body
    )
    queue.deliver_webhook(delivery.pk)


def approvers_of(environment, *, excluding_id):
    """Active users who may approve in `environment`, the requester excepted."""
    roles = [role for role, perms in ROLE_PERMISSIONS.items() if policy.APPROVE in perms]
    app_label, codename = policy.APPROVE.split(".")
    grants = Q(is_superuser=True) | Q(
        groups__permissions__codename=codename, groups__permissions__content_type__app_label=app_label
    )
    grants |= Q(memberships__environment=environment, memberships__role__in=roles)
    users = get_user_model().objects.filter(grants, is_active=True).exclude(pk=excluding_id)
    if environment.approver_group_id:
        users = users.filter(Q(groups=environment.approver_group_id) | Q(is_superuser=True))
    return users.distinct()


def _request_data(request) -> dict:
    return {
        "request": request.pk,
        "kind": request.kind,
        "deployment": {"id": request.deployment_id, "name": request.deployment.name},
        "spec_digest": request.spec_digest,
        "requested_by": request.requested_by_name,
        "status": request.status,
        "url": _link("approval", request.pk),
    }


def approval_requested(request) -> None:
    deployment, environment = request.deployment, request.environment
    approvers = approvers_of(environment, excluding_id=request.requested_by_id)
    _email(
        approvers.values_list("email", flat=True),
        f"[{environment.name}] {request.requested_by_name} asks to {request.kind} {deployment.name}",
        f"{request.requested_by_name} asks to {request.get_kind_display().lower()} {deployment.name} in "
        f"{environment.name}. It needs {request.approvals_required} approval(s) by "
        f"{timezone.localtime(request.expires_at):%Y-%m-%d %H:%M %Z}.\n\nReview it: {_link('approval', request.pk)}\n",
    )
    _webhook(environment, "approval.requested", _request_data(request))


def request_decided(request, *, actor, approved: bool, released: bool) -> None:
    verb = "approved" if approved else "rejected"
    what = f"{request.get_kind_display().lower()} of {request.deployment.name}"
    outcome = " It is under way." if released else ""
    _email(
        [request.requested_by.email if request.requested_by else ""],
        f"[{request.environment.name}] {actor.get_username()} {verb} the {what}",
        f"{actor.get_username()} {verb} your request #{request.pk} ({what}).{outcome}\n\n"
        f"{_link('approval', request.pk)}\n",
    )
    _webhook(request.environment, f"approval.{verb}", {**_request_data(request), "by": actor.get_username()})


def request_expired(request) -> None:
    _email(
        [request.requested_by.email if request.requested_by else ""],
        f"[{request.environment.name}] Your request to {request.kind} {request.deployment.name} expired",
        f"Request #{request.pk} did not gather its approvals in time. Ask again if it is still needed.\n\n"
        f"{_link('approval', request.pk)}\n",
    )
    _webhook(request.environment, "approval.expired", _request_data(request))


def deployment_failed(deployment, message: str) -> None:
    environment = deployment.target.environment
    people = {deployment.created_by.email if deployment.created_by else ""}
    latest = deployment.requests.select_related("requested_by").order_by("-requested_at").first()
    if latest and latest.requested_by:
        people.add(latest.requested_by.email)
    _email(
        people,
        f"[{environment.name}] {deployment.name} failed",
        f"{deployment.name} on {deployment.target.name} failed:\n\n{message}\n\n{_link('deployment', deployment.pk)}\n",
    )
    _webhook(
        environment,
        "deployment.failed",
        {
            "deployment": {"id": deployment.pk, "name": deployment.name},
            "error": message,
            "url": _link("deployment", deployment.pk),
        },
    )


def rollout_event(rollout, event: str, what: str) -> None:
    """Each step, verdict and rollback of a rollout: to whoever asked for it, and the webhook."""
    deployment = rollout.deployment
    environment = deployment.target.environment
    people = {rollout.created_by.email if rollout.created_by else ""}
    _email(
        people,
        f"[{environment.name}] rollout #{rollout.pk} of {deployment.name}: {event}",
        f"Rollout #{rollout.pk} of {deployment.name} on {deployment.target.name}: {what}.\n\n"
        f"{_link('rollout', rollout.pk)}\n",
    )
    _webhook(
        environment,
        f"rollout.{event}",
        {
            "rollout": rollout.pk,
            "deployment": {"id": deployment.pk, "name": deployment.name},
            "status": rollout.status,
            "phase": rollout.phase,
            "step": rollout.step_index + 1,
            "what": what,
            "url": _link("rollout", rollout.pk),
        },
    )
