"""What the rollout pages and the API show of a rollout."""

from datetime import datetime

from django.db.models import Q

from deployments.models import AuditEvent, Migration, Rollout


def rollout_or_none(user, rollout_id: int) -> Rollout | None:
    return (
        Rollout.objects.visible_to(user)
        .select_related("deployment__target__environment", "created_by")
        .prefetch_related("steps")
        .filter(pk=rollout_id)
        .first()
    )


def timeline(rollout: Rollout) -> list[AuditEvent]:
    """Who did what, and what the driver decided, oldest first."""
    return list(
        AuditEvent.objects.filter(object_type="deployments.deployment", object_id=str(rollout.deployment_id))
        .filter(Q(details__rollout=rollout.pk) | Q(details__request__isnull=False, details__params__rollout=rollout.pk))
        .order_by("seq")
    )


def chart_series(rollout: Rollout, figure: str) -> dict[str, list]:
    """{"baseline": [[t, v], ...], "candidate": [...]} over every step's looks."""
    found = {"baseline": [], "candidate": []}
    for step in rollout.steps.all():
        for point in step.series:
            at = datetime.fromisoformat(point["at"]).timestamp()
            for side in found:
                value = (point.get(side) or {}).get(figure)
                if value is not None:
                    found[side].append([at, value])
    # A side with no figure yet draws nothing rather than an empty series.
    return {side: points for side, points in found.items() if points}


def active_rollout(deployment) -> Rollout | None:
    return deployment.rollouts.filter(status__in=Rollout.ACTIVE).first()


def migrations_of(deployment) -> list:
    """Migrations from or to this deployment, newest first (the page names each)."""
    return list(
        Migration.objects.filter(Q(source=deployment) | Q(destination=deployment))
        .select_related("source__target", "destination__target")
        .order_by("-created_at")[:3]
    )
