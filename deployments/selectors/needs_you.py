"""What on the Overview waits for the person looking: requests they may
approve, deployments whose last operation failed, and deployments whose
target runs something other than their desired spec (drift)."""

from dataclasses import dataclass

from django.db.models import Exists, OuterRef

from deployments.models import Deployment, DeployRequest, Operation
from deployments.selectors.approvals import inbox, waiting_count

SHOWN = 5
DRIFT_PREFIX = "drift:"


@dataclass(frozen=True)
class NeedsYou:
    approvals: list[DeployRequest]
    approvals_total: int
    failed_operations: list[Operation]
    drift: list[Deployment]

    @property
    def count(self) -> int:
        return self.approvals_total + len(self.failed_operations) + len(self.drift)

    def __bool__(self) -> bool:
        return bool(self.count)


def needs_you(user) -> NeedsYou:
    live = Deployment.objects.visible_to(user).exclude(status__in=Deployment.TERMINAL)
    newer = Operation.objects.filter(deployment=OuterRef("deployment"), created_at__gt=OuterRef("created_at"))
    # A failure a later operation has since put right needs nobody.
    failed = (
        Operation.objects.filter(
            deployment__in=live.values("pk"),
            status__in=[Operation.Status.FAILED, Operation.Status.NEEDS_ATTENTION],
        )
        .exclude(Exists(newer))
        .select_related("deployment")
        .order_by("-created_at", "-id")[:SHOWN]
    )
    drift = live.filter(status_reason__startswith=DRIFT_PREFIX).select_related("target").order_by("name")[:SHOWN]
    waiting, _ = inbox(user, "waiting", limit=SHOWN)
    return NeedsYou(
        approvals=waiting,
        approvals_total=waiting_count(user) if len(waiting) >= SHOWN else len(waiting),
        failed_operations=list(failed),
        drift=list(drift),
    )
