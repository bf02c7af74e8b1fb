from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from deployments.errors import DomainError
from deployments.models import ApiToken
from deployments.services.api_tokens import api_token_create, api_token_revoke


def _profile_context(request, **extra):
    return {
        "tokens": ApiToken.objects.filter(user=request.user),
        "roles": sorted(request.user.groups.values_list("name", flat=True)),
        "now": timezone.now(),
        **extra,
    }


@require_safe
def profile(request):
    return render(request, "deployments/profile.html", _profile_context(request))


@require_http_methods(["POST"])
def token_create(request):
    try:
        days = request.POST.get("expires_in_days", "")
        token, key = api_token_create(
            user=request.user,
            name=request.POST.get("name", ""),
            scope=request.POST.get("scope", ApiToken.Scope.DEPLOY),
            expires_in_days=int(days) if days.isdigit() else None,
        )
    except DomainError as exc:
        context = _profile_context(request, token_error=exc.message, token_name=request.POST.get("name", ""))
    else:
        # Rendered straight away, never redirected: the key must not travel
        # through the session or a flash message, and cannot be shown again.
        context = _profile_context(request, new_token=token, new_key=key)
    template = "deployments/profile.html#tokens" if request.htmx else "deployments/profile.html"
    return render(request, template, context)


@require_POST
def token_revoke(request, token_id: int):
    # Scoped to the user's own tokens: another user's id is a 404, not a 403.
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    try:
        api_token_revoke(token=token, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token “{token.name}” revoked; it stops working at once.")
    return redirect("profile")
