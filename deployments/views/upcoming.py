from django.shortcuts import render

# Sections of the navigation whose features are not built yet; each says so
# plainly instead of showing an empty table.
SECTIONS = {
    "approvals": ("Approvals", "Production deploys wait here for a second person's approval."),
}


def upcoming(request, section: str):
    title, purpose = SECTIONS[section]
    return render(request, "deployments/upcoming.html", {"title": title, "purpose": purpose})
