"""Destructive actions on pages are confirmed first: a page that says what
will happen and, where four eyes guard the environment, asks for the name to
be typed. A POST without the confirmation shows that page and changes nothing
(an old form or a stray click cannot delete)."""

from dataclasses import dataclass

from django.shortcuts import render

CONFIRMED = "confirmed"


@dataclass(frozen=True)
class Confirmation:
    title: str
    consequence: str
    button: str
    # Typed back by the person where the environment is protected; "" when not asked.
    name_to_type: str = ""
    back: str = ""
    # (name, value) fields the confirmed POST sends again (what was asked for).
    carry: tuple[tuple[str, str], ...] = ()


def given(request, confirmation: Confirmation) -> tuple[bool, str]:
    """(confirmed, what is wrong with the attempt)."""
    if request.method != "POST" or request.POST.get(CONFIRMED) != "1":
        return False, ""
    if confirmation.name_to_type and request.POST.get("name", "").strip() != confirmation.name_to_type:
        return False, f"Type {confirmation.name_to_type} exactly to confirm."
    return True, ""


def ask(request, confirmation: Confirmation, error: str = ""):
    return render(
        request,
        "deployments/confirm.html",
        {"confirmation": confirmation, "error": error, "action": request.path},
        status=400 if error else 200,
    )
