"""What on the Overview waits for the person looking: requests they may
approve, deployments whose last operation failed, and deployments whose
target runs something other than their desired spec (drift)."""

from dataclasses import dataclass

from django.db.models import Exists, OuterRef

from deployments.health.verdict import DRIFT
from deployments.models import Deployment, DeployRequest, Operation
from deployments.selectors.approvals import inbox, waiting_count

SHOWN = 5


@dataclass(frozen=True)
class NeedsYou:
    approvals: list[DeployRequest]
    approvals_total: int
    failed_operations: list[Operation]
    drift: list[Deployment]
    # More than SHOWN of either: the lists are the newest (or first) SHOWN.
    more_failures: bool = False
    more_drift: bool = False

    @property
    def count(self) -> int:
        return self.approvals_total + len(self.failed_operations) + len(self.drift)

    @property
    def count_label(self) -> str:
        """The count, with a + where a list was cut (it is then at least that)."""
        return f"{self.count}+" if self.more_failures or self.more_drift else str(self.count)

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
        .order_by("-created_at", "-id")[: SHOWN + 1]
    )
    drift = live.filter(status_reason__startswith=DRIFT).select_related("target").order_by("name")[: SHOWN + 1]
    failed, drift = list(failed), list(drift)
    waiting, more_waiting = inbox(user, "waiting", limit=SHOWN)
    return NeedsYou(
        approvals=waiting,
        # Counted only when the list was cut: most of the time it is the list.
        approvals_total=waiting_count(user) if more_waiting else len(waiting),
        failed_operations=failed[:SHOWN],
        drift=drift[:SHOWN],
        more_failures=len(failed) > SHOWN,
        more_drift=len(drift) > SHOWN,
    )
