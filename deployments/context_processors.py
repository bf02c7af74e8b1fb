from django.urls import reverse

# (label, url name): the main navigation, in order.
NAVIGATION = [
    ("Overview", "overview"),
    ("Repositories", "repositories"),
    ("Deployments", "deployments"),
    ("Targets", "targets"),
    ("Environments", "environments"),
    ("Approvals", "approvals"),
    ("Audit", "audit"),
]


def navigation(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    if getattr(request, "htmx", False):
        return {}  # a fragment has no navigation: no count to query on every poll
    from deployments.selectors.approvals import waiting_count

    items = []
    for label, name in NAVIGATION:
        url = reverse(name)
        current = request.path == url if name == "overview" else request.path.startswith(url)
        # Requests waiting for this user's decision are counted where they are decided.
        badge = waiting_count(request.user) if name == "approvals" else 0
        items.append({"label": label, "url": url, "current": current, "badge": badge})
    return {"navigation": items}
