"""The environment, status and target choices of the deployments filters
(the Deployments list, the Overview): only what exists and may be seen can
be picked, never free text."""

from deployments.models import Environment, Target


def filter_fields(user, values: dict, statuses) -> list[dict]:
    environments = Environment.objects.visible_to(user).values_list("name", flat=True)
    targets = Target.objects.visible_to(user).order_by("name").values_list("name", flat=True)
    choices = {
        "environment": ("Environment", [(name, name) for name in environments]),
        "status": ("Status", list(statuses)),
        "target": ("Target", [(name, name) for name in targets]),
    }
    return [
        {"name": name, "label": label, "choices": options, "value": values.get(name, "")}
        for name, (label, options) in choices.items()
    ]
