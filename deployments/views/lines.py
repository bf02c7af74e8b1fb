"""A model line's page: its revisions, where each runs, a diff between any
two, and which Azure model version holds each."""

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_safe

from deployments.selectors.lines import line_detail, revision_of
from deployments.selectors.revisions import revision_diff


@require_safe
def detail(request, line_id: int):
    # Not visible and not there answer alike: 404.
    line = line_detail(request.user, line_id)
    if line is None:
        raise Http404("No such line.")
    revisions = line.revision_rows
    # By default the two newest revisions: what the latest upload changed.
    newest = [r.revision for r in revisions[:2]]
    asked_from = request.GET.get("from", newest[-1] if newest else "")
    asked_to = request.GET.get("to", newest[0] if newest else "")
    old, new = revision_of(line, asked_from), revision_of(line, asked_to)
    diff_error = ""
    if request.GET and (old is None or new is None):
        diff_error = f"{line.name} has no revision {asked_from if old is None else asked_to}."
    return render(
        request,
        "deployments/line_detail.html",
        {
            "line": line,
            "old": old,
            "new": new,
            "diff": revision_diff(old, new) if old and new else None,
            "diff_error": diff_error,
        },
    )
