from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from deployments import policy
from deployments.errors import DomainError
from deployments.forms import DeploymentForm
from deployments.health import counter_source
from deployments.models import Deployment
from deployments.selectors.batching import batching_insight
from deployments.selectors.deployments import (
    delete_needs_approval,
    deployment_list,
    server_log,
)
from deployments.selectors.health import RANGES, health_view, page_query, range_key
from deployments.selectors.history import history
from deployments.selectors.history import kind_key as history_kind
from deployments.selectors.load_tests import config_searches_of, load_tests_of
from deployments.selectors.rollouts import active_rollout, migrations_of
from deployments.serializers import approval_json
from deployments.services.deployments import (
    deployment_acknowledge_address,
    deployment_create,
    deployment_delete,
    deployment_redeploy,
    deployment_regenerate_key,
    deployment_reveal_keys,
    deployment_set_traffic,
)
from deployments.services.permissions import require
from deployments.views import confirm, revisions
from deployments.views.access import deployment_or_404, field_for, require_perm
from deployments.views.confirm import Confirmation
from deployments.views.filters import filter_fields

PAGE_SIZE = 25
LOG_LINES = 100


@require_safe
def deployments(request):
    require_perm(request.user, "deployments.view_deployment", "Seeing deployments needs the viewer role.")
    filters = {key: request.GET.get(key, "") for key in ("target", "status", "environment")}
    page = Paginator(deployment_list(request.user, **filters), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = {
        "page": page,
        "filters": filters,
        # Page links keep the filters.
        "page_query": urlencode({key: value for key, value in filters.items() if value}),
        "can_add": policy.can_somewhere(request.user, "deployments.add_deployment"),
    }
    if request.htmx:
        # The table refreshes itself: its poll gets only the rows fragment.
        return render(request, "deployments/deployments.html#rows", rows)
    return render(
        request,
        "deployments/deployments.html",
        {
            **rows,
            "filter_fields": filter_fields(request.user, filters, Deployment.Status.choices),
        },
    )


@require_http_methods(["GET", "POST"])
def create(request):
    require_perm(request.user, "deployments.add_deployment", "Deploying needs the deployer role.")
    # The query string fills the form in: links from other pages (?repository=),
    # and htmx asking for the fields of another mode or target with the values so far.
    form = DeploymentForm(
        request.POST or None,
        user=request.user,
        initial=request.GET.dict(),
        refresh_url=reverse("deployment-create"),
    )
    if request.htmx and request.method == "GET":
        return render(request, "deployments/deployment_form.html#spec-fields", {"form": form})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            deployment = deployment_create(
                name=data["name"],
                repository=data["repository"],
                target=data["target"],
                actor=request.user,
                **form.spec(),
            )
        except DomainError as exc:
            form.add_error(field_for(form, exc.path), exc.message)
        else:
            messages.success(request, f"Deployment “{deployment.name}” requested.")
            return redirect("deployment", deployment_id=deployment.pk)
    return render(request, "deployments/deployment_form.html", {"form": form}, status=400 if form.errors else 200)


@require_safe
def detail(request, deployment_id: int):
    """The deployment page. Its poll (htmx) gets the live block and, out of
    band, every other section that can change; the time range and the
    History filter live in the query string, so the poll keeps them."""
    deployment = deployment_or_404(request, deployment_id)
    range_ = range_key(request.GET.get("range", ""))
    kind = history_kind(request.GET.get("history", ""))
    environment = deployment.target.environment
    context = {
        "deployment": deployment,
        "health": health_view(deployment, range_),
        "ranges": [(key, value[0]) for key, value in RANGES.items()],
        "logs": None,  # the log section fetches itself (see logs())
        "can_change": policy.can(request.user, "deployments.add_deployment", environment),
        "can_delete": policy.can(request.user, "deployments.delete_deployment", environment),
        "can_use_console": policy.can(request.user, "deployments.use_console", environment),
        "approval": approval_json(deployment),
        "rollout": active_rollout(deployment),
        "migrations": migrations_of(deployment),
        # Nothing changes any more on a deleted or rejected one.
        "polls": deployment.status not in Deployment.TERMINAL,
        "poll_url": f"{request.path}?{page_query(range_, kind)}",
        **revisions.actions(request, deployment),
        **history(request.user, deployment, kind),
        "rollouts": deployment.rollouts.select_related("created_by")[:10],
        "golden_requests": deployment.golden_requests.all(),
        "batching": batching_insight(deployment),
        "can_roll_out": "traffic" in deployment.target.capabilities and deployment.repository_id is not None,
        "load_tests": load_tests_of(request.user, deployment)[:5],
        "config_searches": config_searches_of(request.user, deployment)[:3],
        "load_test_policy": environment.load_tests,
        "counters_source": counter_source.CHART_SOURCES.get(counter_source.source_for(deployment), ""),
    }
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "deployments/_deployment_poll.html", context)
    return render(request, "deployments/deployment_detail.html", context)


def _act(request, deployment: Deployment, service, done: str):
    try:
        service(deployment=deployment, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("deployment", deployment_id=deployment.pk)


@require_POST
def redeploy(request, deployment_id: int):
    return _act(request, deployment_or_404(request, deployment_id), deployment_redeploy, "Redeploy requested.")


@require_http_methods(["GET", "POST"])
def delete(request, deployment_id: int):
    deployment = deployment_or_404(request, deployment_id)
    environment = deployment.target.environment
    require(request.user, "deployments.delete_deployment", "Deleting", environment=environment)
    approval = delete_needs_approval(deployment)
    address = deployment.scoring_uri or "its address"
    if approval:
        consequence = (
            f"This asks {environment.name} for approval: nothing stops until {environment.approvals_required} "
            f"approver(s) agree. Then its server stops and {address} stops answering."
        )
    elif deployment.scoring_uri:
        consequence = f"This stops its server now: {address} stops answering. Its logs and history are kept."
    else:
        consequence = "This removes it now; nothing answers for it yet. Its history is kept."
    confirmation = Confirmation(
        title=f"Delete {deployment.name}?",
        consequence=consequence,
        button="Ask for approval to delete" if approval else "Delete now",
        # Four eyes guard this environment: the name is typed, not clicked.
        name_to_type=deployment.name if environment.approvals_required else "",
        back=reverse("deployment", args=[deployment.pk]),
    )
    confirmed, error = confirm.given(request, confirmation)
    if not confirmed:
        return confirm.ask(request, confirmation, error)
    done = (
        f"Delete requested: waiting for approval in {environment.name}."
        if approval
        else "Delete under way: the server is being stopped."
    )
    return _act(request, deployment, deployment_delete, done)


@require_POST
def keys_reveal(request, deployment_id: int):
    """The page's key panel with the keys in it (htmx); audited by the service."""
    deployment = deployment_or_404(request, deployment_id)
    keys = deployment_reveal_keys(deployment=deployment, actor=request.user)  # refusals: page_errors.py
    context = {"deployment": deployment, "keys": keys, "can_change": True}
    return render(request, "deployments/deployment_detail.html#keys", context)


@require_POST
def key_regenerate(request, deployment_id: int):
    which = request.POST.get("key", "")

    def regenerate(*, deployment, actor):
        return deployment_regenerate_key(deployment=deployment, actor=actor, key=which)

    deployment = deployment_or_404(request, deployment_id)
    return _act(request, deployment, regenerate, f"New {which} key requested: clients using it must take the new one.")


@require_POST
def address_acknowledge(request, deployment_id: int):
    return _act(request, deployment_or_404(request, deployment_id), deployment_acknowledge_address, "Noted.")


@require_safe
def logs(request, deployment_id: int):
    """Plain text, or the page's log section when htmx asks for it."""
    deployment = deployment_or_404(request, deployment_id)
    lines = server_log(deployment, LOG_LINES)
    if request.htmx:
        return render(request, "deployments/deployment_detail.html#log", {"deployment": deployment, "logs": lines})
    return HttpResponse("\n".join(lines), content_type="text/plain; charset=utf-8")


def _traffic_from(post) -> dict[str, int]:
    """Fields traffic-<azure deployment> = percentage; "all_to" puts 100% on one (rollback)."""
    names = [key.removeprefix("traffic-") for key in post if key.startswith("traffic-")]
    if post.get("all_to"):
        return {name: 100 if name == post["all_to"] else 0 for name in names}
    split = {}
    for name in names:
        raw = post.get(f"traffic-{name}", "").strip() or "0"
        split[name] = int(raw) if raw.isdigit() else -1
    return split


@require_POST
def traffic(request, deployment_id: int):
    split = _traffic_from(request.POST)
    deployment = deployment_or_404(request, deployment_id)
    current = (deployment.observed or {}).get("traffic", {})
    stopping = sorted(name for name, share in split.items() if share == 0 and current.get(name, 0) > 0)
    if stopping:
        # Sending a deployment to 0 % stops its clients' requests reaching it: asked first.
        environment = deployment.target.environment
        confirmation = Confirmation(
            title=f"Take {', '.join(stopping)} to 0%?",
            consequence=(
                f"{', '.join(stopping)} will get no more requests from the split "
                f"({', '.join(f'{n} {s}%' for n, s in sorted(split.items()))})"
                + (f"; {environment.name} asks for approval first." if environment.needs_approval("traffic") else ".")
            ),
            button="Change the traffic",
            name_to_type=deployment.name if environment.approvals_required else "",
            back=reverse("deployment", args=[deployment.pk]),
            carry=tuple((f"traffic-{name}", str(share)) for name, share in split.items()),
        )
        confirmed, error = confirm.given(request, confirmation)
        if not confirmed:
            return confirm.ask(request, confirmation, error)

    def shift(*, deployment, actor):
        return deployment_set_traffic(deployment=deployment, actor=actor, traffic=split)

    return _act(request, deployment, shift, "Traffic change requested.")
