from django.shortcuts import render

# Sections of the navigation whose features are not built yet; each says so
# plainly instead of showing an empty table.
SECTIONS = {
    "targets": (
        "Targets",
        "Where deployments run: a local Triton, or Azure Machine Learning AKS and online endpoints.",
    ),
    "approvals": ("Approvals", "Production deploys wait here for a second person's approval."),
}


def upcoming(request, section: str):
    title, purpose = SECTIONS[section]
    return render(request, "deployments/upcoming.html", {"title": title, "purpose": purpose})
