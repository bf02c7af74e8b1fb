from django.http import HttpRequest
from ninja import Router, Status

from deployments.api.schemas import SystemHealth
from deployments.selectors.system_status import broker_status, database_status, worker_status

router = Router(tags=["system"])


@router.get("health", auth=None, response={200: SystemHealth, 503: SystemHealth}, url_name="health")
def health(request: HttpRequest):
    """The dashboard itself: database and broker reachable (503 when not). No token needed."""
    database, broker = database_status(), broker_status()
    workers = worker_status()
    ok = database == "ok" and broker == "ok"
    body = {
        "status": "ok" if ok else "error",
        "database": database,
        "broker": broker,
        # Informational: the web tier is up even while no worker runs.
        "workers": {"online": workers.online, "last_seen": workers.last_seen},
    }
    return Status(200 if ok else 503, body)
