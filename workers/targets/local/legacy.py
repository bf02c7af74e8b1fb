"""Deployments started before the local target had endpoints ran one Triton
each, recorded in `server.json`, clients calling its own port. The first
operation or status check that finds one moves it behind an endpoint without
restarting it: its record becomes the endpoint's only Triton deployment. The
status check then reports the endpoint's address, and the dashboard keeps the
old one to tell clients they must move (deployments/services/operations.py)."""

import json

from workers.targets.local import endpoints


def move_behind_endpoint(deployment_id: int) -> endpoints.EndpointRecord | None:
    path = endpoints.folder(deployment_id) / "server.json"
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    name = endpoints.deployment_name(record.get("spec_digest", "") or "legacy")
    entry = "entry_port" in record
    record["mode"] = "entry_script" if entry else "direct"
    record["route_triton"] = f"127.0.0.1:{record['http_port']}"
    record["route_front"] = f"127.0.0.1:{record['entry_port']}" if entry else record["route_triton"]
    endpoints.write_server(deployment_id, name, record)
    # Those servers never checked a key: the endpoint stays open until the next deploy applies the spec's auth.
    endpoint = endpoints.create(deployment_id, auth=False)
    endpoint.traffic = {name: 100}
    endpoints.write(endpoint)
    path.unlink()
    endpoints.publish()
    return endpoint
