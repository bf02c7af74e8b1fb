"""The Overview's fleet: live deployments as tiles grouped by environment,
each with its figures and its last change, filtered by environment, status
and target, in a number of queries that does not grow with the fleet."""

from dataclasses import dataclass
from itertools import groupby

from django.db.models import Count, Max
from django.utils.http import urlencode

from deployments.models import Deployment, Operation
from deployments.selectors.tile_figures import Figure, figures_for

# Tiles on the Overview: enough for a team's fleet at a glance; beyond that
# the ones needing attention come first and the list page has the rest.
FLEET_TILES = 120
# Statuses needing attention first, in this order; then everything else.
ATTENTION_ORDER = ["failed", "unhealthy", "degraded", "deploying", "deleting", "queued", "pending_approval"]
FILTERS = ("environment", "status", "target")


@dataclass(frozen=True)
class FleetFilters:
    environment: str = ""
    status: str = ""
    target: str = ""

    @classmethod
    def from_query(cls, params) -> "FleetFilters":
        status = params.get("status", "")
        # An unknown status is dropped, not an error: a stale bookmark still opens, unfiltered by it.
        return cls(
            environment=params.get("environment", "").strip(),
            status=status if status in Deployment.Status.values else "",
            target=params.get("target", "").strip(),
        )

    def as_query(self) -> str:
        return urlencode({name: getattr(self, name) for name in FILTERS if getattr(self, name)})

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in FILTERS)


@dataclass(frozen=True)
class Change:
    """The last operation asked of a deployment (a deploy, delete, traffic
    or key change), or its request when none has run yet."""

    what: str
    at: object
    by: str


@dataclass(frozen=True)
class Tile:
    deployment: Deployment
    figures: list[Figure]
    change: Change


@dataclass(frozen=True)
class Group:
    environment: str
    tiles: list[Tile]


@dataclass(frozen=True)
class Fleet:
    groups: list[Group]
    shown: int
    total: int
    by_status: dict[str, int]
    # Deleted or rejected ones, not on the grid: "no deployments yet" would be untrue.
    ended: int = 0

    @property
    def hidden(self) -> int:
        return self.total - self.shown

    @property
    def in_progress(self) -> int:
        return sum(self.by_status.get(status, 0) for status in Deployment.IN_PROGRESS)

    @property
    def failing(self) -> int:
        return self.by_status.get(Deployment.Status.UNHEALTHY, 0) + self.by_status.get(Deployment.Status.FAILED, 0)

    @property
    def pending_approval(self) -> int:
        return self.by_status.get(Deployment.Status.PENDING_APPROVAL, 0)


def fleet(user, filters: FleetFilters | None = None) -> Fleet:
    """Live deployments for the Overview: those needing attention first, at
    most FLEET_TILES, grouped by environment, and the counts of all of them."""
    filters = filters or FleetFilters()
    visible = Deployment.objects.visible_to(user)
    live = _filtered(visible.exclude(status__in=Deployment.TERMINAL), filters)
    by_status = dict(live.values_list("status").annotate(n=Count("id")).values_list("status", "n").order_by())
    ordered = live.select_related("target__environment", "created_by").order_by(
        "target__environment__position", "target__environment__name", "name"
    )
    # One small query per status bucket (each uses the status index) rather
    # than ranking and sorting every live deployment.
    chosen: list[Deployment] = []
    for status in [*ATTENTION_ORDER, None]:
        room = FLEET_TILES - len(chosen)
        if room <= 0:
            break
        if status is None:
            chosen += ordered.exclude(status__in=ATTENTION_ORDER)[:room]
        elif by_status.get(status):
            chosen += ordered.filter(status=status)[:room]
    figures = figures_for(chosen)
    changes = _changes(chosen)
    rank = {status: i for i, status in enumerate(ATTENTION_ORDER)}
    # Environments in their order; within one, those needing attention first.
    chosen.sort(
        key=lambda d: (d.target.environment.position, d.target.environment.name, rank.get(d.status, len(rank)), d.name)
    )
    groups = [
        Group(environment, [Tile(d, figures[d.pk], changes[d.pk]) for d in members])
        for environment, members in groupby(chosen, key=lambda d: d.target.environment.name)
    ]
    ended = 0
    if not by_status and not filters:
        ended = visible.filter(status__in=Deployment.TERMINAL).count()
    return Fleet(
        groups=groups,
        shown=len(chosen),
        total=sum(by_status.values()),
        by_status=by_status,
        ended=ended,
    )


def _filtered(deployments, filters: FleetFilters):
    if filters.environment:
        deployments = deployments.filter(target__environment__name=filters.environment)
    if filters.target:
        deployments = deployments.filter(target__name=filters.target)
    if filters.status:
        deployments = deployments.filter(status=filters.status)
    return deployments


def _changes(deployments) -> dict[int, Change]:
    """Each deployment's last operation, with who asked for it, in two small
    queries (operations are numbered in the order they are created)."""
    latest = (
        Operation.objects.filter(deployment_id__in=[d.pk for d in deployments])
        .values("deployment_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
        .order_by()
    )
    operations = {
        op.deployment_id: op
        for op in Operation.objects.filter(pk__in=list(latest))
        .select_related("created_by")
        .only("deployment_id", "kind", "reason", "created_at", "created_by__username")
    }
    changes = {}
    for deployment in deployments:
        operation = operations.get(deployment.pk)
        if operation:
            by = operation.created_by.get_username() if operation.created_by else _by_the_dashboard(operation)
            changes[deployment.pk] = Change(operation.get_kind_display().lower(), operation.created_at, by)
        else:
            creator = deployment.created_by.get_username() if deployment.created_by else "—"
            changes[deployment.pk] = Change("requested", deployment.created_at, creator)
    return changes


def _by_the_dashboard(operation: Operation) -> str:
    # No user behind it: a restart, a rollout step or a reconciliation.
    return f"the dashboard ({operation.reason})" if operation.reason else "the dashboard"
