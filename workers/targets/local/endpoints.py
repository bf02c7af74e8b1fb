"""A local deployment's endpoint, shaped like an Azure online endpoint: one
stable address for the dashboard deployment's whole life, its keys, and a
traffic split between the Triton deployments behind it (one per spec).

Records, in the deployment's work folder (adapter.workdir):
- `endpoint.json`: port, auth, keys (encrypted with the dashboard's
  ENCRYPTION_KEYS), traffic by deployment name;
- `servers/<name>.json`: what runs for each Triton deployment (sandbox pid,
  bridges, ports, sockets, spec digest).
The router's configuration is rendered from these files.
"""

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

from deployments.crypto import SecretUnreadable, decrypt, encrypt
from workers.targets.base import endpoint_deployment_name
from workers.targets.local import router
from workers.targets.local.files import write_atomically


def deployment_name(spec_digest: str) -> str:
    """Named like the SDK v2 adapter names Azure deployments: one per spec."""
    return endpoint_deployment_name(spec_digest)


@dataclass
class EndpointRecord:
    deployment_id: int
    port: int
    auth: bool
    keys: list[str] = field(default_factory=list)  # encrypted, primary first
    traffic: dict[str, int] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"http://{settings.LOCAL_ENDPOINT_ADDRESS}:{self.port}"

    def plain_keys(self) -> list[str]:
        return [decrypt(key) for key in self.keys]

    def readable_keys(self) -> list[str]:
        """The keys in clear, or none when one can no longer be decrypted (see router_view)."""
        try:
            return self.plain_keys()
        except SecretUnreadable:
            return []

    def as_dict(self) -> dict:
        """As written in endpoint.json (its folder names the deployment)."""
        return {key: value for key, value in asdict(self).items() if key != "deployment_id"}


def folder(deployment_id: int) -> Path:
    return Path(settings.STORAGE_ROOT) / "deployments" / str(deployment_id)


def _path(deployment_id: int) -> Path:
    return folder(deployment_id) / "endpoint.json"


def servers_folder(deployment_id: int) -> Path:
    return folder(deployment_id) / "servers"


def read(deployment_id: int) -> EndpointRecord | None:
    try:
        data = json.loads(_path(deployment_id).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return EndpointRecord(
        deployment_id=deployment_id,
        port=data["port"],
        auth=data["auth"],
        keys=data.get("keys", []),
        traffic=data.get("traffic", {}),
    )


def write(record: EndpointRecord) -> None:
    path = _path(record.deployment_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(record.as_dict(), indent=2))


def remove(deployment_id: int) -> None:
    """The endpoint is gone: the router stops serving its address at the next publish."""
    _path(deployment_id).unlink(missing_ok=True)


def new_key() -> str:
    return secrets.token_urlsafe(32)


def create(deployment_id: int, *, auth: bool) -> EndpointRecord:
    """Its port is taken once, for the endpoint's life (LOCAL_ENDPOINT_PORTS),
    under the router's lock: two deployments created at once get two ports."""
    with router.locked():
        taken = {record.port for record in all_records()}
        record = EndpointRecord(
            deployment_id=deployment_id,
            port=router.free_port(taken),
            auth=auth,
            keys=[encrypt(new_key()), encrypt(new_key())],
        )
        write(record)
    return record


def regenerate_key(record: EndpointRecord, which: str) -> None:
    """A new primary or secondary key; the other keeps working (an unreadable
    one is replaced too, so the endpoint opens again to its keys)."""
    index = {"primary": 0, "secondary": 1}[which]
    record.keys = [
        encrypt(new_key()) if position == index or not _readable(key) else key
        for position, key in enumerate(record.keys)
    ]
    write(record)


def _readable(token: str) -> bool:
    try:
        decrypt(token)
    except SecretUnreadable:
        return False
    return True


def all_records() -> list[EndpointRecord]:
    found = []
    for path in (Path(settings.STORAGE_ROOT) / "deployments").glob("*/endpoint.json"):
        if path.parent.name.isdigit() and (record := read(int(path.parent.name))) is not None:
            found.append(record)
    return found


# --- the Triton deployments behind an endpoint ------------------------------------


def server_path(deployment_id: int, name: str) -> Path:
    return servers_folder(deployment_id) / f"{name}.json"


def read_server(deployment_id: int, name: str) -> dict | None:
    try:
        return json.loads(server_path(deployment_id, name).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_server(deployment_id: int, name: str, server: dict) -> None:
    path = server_path(deployment_id, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps({**server, "name": name, "written_at": time.time()}, indent=2))


def servers(deployment_id: int) -> dict[str, dict]:
    found = {}
    for path in sorted(servers_folder(deployment_id).glob("*.json")):
        try:
            found[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
    return found


def routes(record: EndpointRecord) -> list[router.Route]:
    """Every deployment in the traffic map that has a server record, at its share."""
    found = []
    for name, share in sorted(record.traffic.items()):
        server = read_server(record.deployment_id, name)
        if server is None:
            continue
        triton = server["route_triton"]
        found.append(router.Route(name=name, weight=share, triton=triton, front=server.get("route_front", triton)))
    return found


def router_view(record: EndpointRecord) -> router.Endpoint:
    digests: tuple[str, ...] = ()
    if record.auth:
        # Keys encrypted under a key no longer in ENCRYPTION_KEYS: this endpoint
        # refuses every request (closed, not open) until its keys are
        # regenerated; the others are served as usual.
        digests = tuple(router.key_digest(key) for key in record.readable_keys()) or ("unreadable",)
    return router.Endpoint(id=record.deployment_id, port=record.port, key_digests=digests, routes=tuple(routes(record)))


def publish() -> bool:
    """Make the router serve what the records say now (see router.apply)."""
    return router.apply([router_view(record) for record in all_records()])
