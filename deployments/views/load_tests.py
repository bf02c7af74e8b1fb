"""Load tests and config searches on pages: the forms that start them, their
live pages (htmx polling while they run), charts, CSV and comparison."""

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from deployments import policy
from deployments.errors import DomainError
from deployments.forms import ConfigSearchForm, LoadTestForm
from deployments.loadlab import curves
from deployments.loadlab.export import csv_response
from deployments.models import ConfigSearch, Environment, LoadTest
from deployments.selectors.load_tests import comparable, config_search_or_none, finished_tests, load_test_or_none
from deployments.services import config_searches, load_tests
from deployments.services.permissions import require
from deployments.views.access import deployment_or_404, field_for, live_page


def _test_or_404(request, test_id: int) -> LoadTest:
    test = load_test_or_none(request.user, test_id)
    if test is None:
        raise Http404("No such load test.")
    return test


def _search_or_404(request, search_id: int) -> ConfigSearch:
    search = config_search_or_none(request.user, search_id)
    if search is None:
        raise Http404("No such config search.")
    return search


@require_http_methods(["GET", "POST"])
def create(request, deployment_id: int):
    deployment = deployment_or_404(request, deployment_id)
    environment = deployment.target.environment
    require(request.user, "deployments.add_deployment", "Load testing", environment=environment)
    form = LoadTestForm(request.POST or None, deployment=deployment)
    if request.method == "POST" and form.is_valid():
        try:
            test = load_tests.load_test_create(deployment=deployment, actor=request.user, **form.arguments())
        except DomainError as exc:
            form.add_error(field_for(form, exc.path), exc.message)
        else:
            waiting = test.status == LoadTest.Status.AWAITING_APPROVAL
            messages.success(request, f"Load test #{test.pk} {'waits for an approver' if waiting else 'is queued'}.")
            return redirect("loadtest", test_id=test.pk)
    return render(
        request,
        "deployments/load_test_form.html",
        {"form": form, "deployment": deployment, "policy": environment.load_tests, "environment": environment},
        status=400 if form.errors else 200,
    )


@require_safe
def detail(request, test_id: int):
    test = _test_or_404(request, test_id)
    environment = test.deployment.target.environment
    context = {
        "test": test,
        "deployment": test.deployment,
        "points": test.points,
        "can_cancel": policy.can(request.user, "deployments.add_deployment", environment)
        or policy.may_approve(request.user, environment),
        "can_approve": test.status == LoadTest.Status.AWAITING_APPROVAL
        and test.requested_by_id != request.user.pk
        and policy.may_approve(request.user, environment),
        "others": comparable(request.user, test) if test.status in LoadTest.TERMINAL else [],
        "windows": (test.progress or {}).get("windows", []),
        "current": (test.progress or {}).get("current"),
    }
    return live_page(request, "deployments/load_test_detail.html", context, finished=test.status in LoadTest.TERMINAL)


@require_safe
def chart(request, test_id: int, figure: str):
    test = _test_or_404(request, test_id)
    others = [_test_or_404(request, int(other)) for other in request.GET.getlist("with") if other.isdigit()]
    try:
        return JsonResponse(curves.chart(figure, [test, *others]))
    except KeyError:
        raise Http404("No such chart.") from None


@require_safe
def csv_export(request, test_id: int):
    test = _test_or_404(request, test_id)
    return csv_response(test)


@require_safe
def compare(request):
    """Two runs side by side: their points in one table, their curves on one
    chart. Without both, the page offers the finished runs to pick from."""
    picked = [request.GET.get(key, "") for key in ("a", "b")]
    if not all(value.isdigit() for value in picked):
        return render(request, "deployments/load_test_compare.html", {"finished": finished_tests(request.user)})
    # The earlier run is A, so the ratios read "after ÷ before" whichever was picked first.
    first, second = sorted((_test_or_404(request, int(value)) for value in picked), key=lambda t: (t.created_at, t.pk))
    return render(
        request,
        "deployments/load_test_compare.html",
        {"first": first, "second": second, "rows": curves.side_by_side(first, second)},
    )


def _act(request, test_id: int, service, done: str):
    test = _test_or_404(request, test_id)
    try:
        service(test=test, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("loadtest", test_id=test.pk)


@require_POST
def cancel(request, test_id: int):
    return _act(request, test_id, load_tests.load_test_cancel, "Cancelled: a running sweep stops within a second.")


@require_POST
def approve(request, test_id: int):
    return _act(request, test_id, load_tests.load_test_approve, "Approved: the load test is queued.")


@require_http_methods(["GET", "POST"])
def search_create(request, deployment_id: int):
    deployment = deployment_or_404(request, deployment_id)
    require(request.user, "deployments.add_deployment", "Searching configs", environment=deployment.target.environment)
    unavailable = config_searches.why_no_search()
    targets = config_searches.search_targets(request.user)
    form = ConfigSearchForm(request.POST or None, deployment=deployment, targets=targets)
    if request.method == "POST" and not unavailable and form.is_valid():
        data = form.cleaned_data
        try:
            search = config_searches.config_search_create(
                actor=request.user,
                repository=deployment.repository,
                model=data["model"],
                target=data["target"],
                concurrency=data["concurrency"],
                latency_budget_ms=data["latency_budget_ms"],
                window_seconds=data["window_seconds"],
                deployment=deployment,
            )
        except DomainError as exc:
            form.add_error(field_for(form, exc.path), exc.message)
        else:
            messages.success(request, f"Config search #{search.pk} is queued.")
            return redirect("config-search", search_id=search.pk)
    return render(
        request,
        "deployments/config_search_form.html",
        {
            "form": form,
            "deployment": deployment,
            "unavailable": unavailable,
            "no_targets": not targets,
            "allowed": Environment.LoadTests.ALLOWED,
        },
        status=400 if form.errors else 200,
    )


@require_safe
def search_detail(request, search_id: int):
    search = _search_or_404(request, search_id)
    environment = search.target.environment
    context = {
        "search": search,
        "rows": curves.search_rows(search),
        "can_act": policy.can(request.user, "deployments.add_deployment", environment),
        "can_record": policy.can(request.user, "deployments.add_modelrepository"),
    }
    finished = search.status in ConfigSearch.TERMINAL
    return live_page(request, "deployments/config_search_detail.html", context, finished=finished)


@require_safe
def search_chart(request, search_id: int):
    return JsonResponse(curves.search_chart(_search_or_404(request, search_id)))


@require_POST
def search_cancel(request, search_id: int):
    search = _search_or_404(request, search_id)
    try:
        config_searches.config_search_cancel(search=search, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancelling: the config under way stops and its scratch deployment goes.")
    return redirect("config-search", search_id=search.pk)


@require_POST
def search_revision(request, search_id: int):
    search = _search_or_404(request, search_id)
    try:
        revision = config_searches.config_search_make_revision(
            search=search, actor=request.user, which=request.POST.get("which", "latency")
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("config-search", search_id=search.pk)
    messages.success(
        request,
        f"Recorded {revision.label}. It deploys as any revision: update a deployment to it "
        "(through approvals where its environment asks for them).",
    )
    if (
        search.deployment
        and search.deployment.repository_id
        and search.deployment.repository.line_id == revision.line_id
    ):
        # Straight to the update page, with the config diff from what runs.
        return redirect(reverse("deployment-revision", args=[search.deployment_id]) + f"?repository={revision.pk}")
    return redirect("repository", revision.pk)
