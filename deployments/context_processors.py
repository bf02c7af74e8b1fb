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
    items = []
    for label, name in NAVIGATION:
        url = reverse(name)
        current = request.path == url if name == "overview" else request.path.startswith(url)
        items.append({"label": label, "url": url, "current": current})
    return {"navigation": items}
