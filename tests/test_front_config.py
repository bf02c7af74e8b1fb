"""The compose stack's front, read from its files (issue 17, finding 4): only
the proxy is published, it serves the repository's nginx template, and
that template agrees with the dashboard's settings. tests/test_front_proxy.py
runs the same template under a real nginx."""

import re

import yaml
from django.conf import settings

from deployments import uploads
from tests import front_proxy, processes

COMPOSE = yaml.safe_load((processes.ROOT / "docker-compose.yml").read_text())


def directives(name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", front_proxy.TEMPLATE.read_text(), re.MULTILINE)


def test_only_the_proxy_is_published_and_the_web_server_is_not():
    services = COMPOSE["services"]
    published = sorted(name for name, service in services.items() if service.get("ports"))
    assert published == ["proxy"]
    assert services["proxy"]["image"].startswith("nginx:")
    assert "ports" not in services["web"]


def test_the_proxy_serves_the_repositorys_template_naming_the_web_service():
    proxy = COMPOSE["services"]["proxy"]
    mounts = proxy["volumes"]
    assert any(m.startswith("./deploy/nginx/templates:/etc/nginx/templates") for m in mounts), mounts
    assert proxy["environment"]["DASHBOARD_UPSTREAM"] == "web:8000"


def test_the_template_is_rendered_only_in_the_upstream_and_the_port():
    names = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?", front_proxy.TEMPLATE.read_text()))
    assert names == {"DASHBOARD_UPSTREAM", "NGINX_PORT"}


def test_the_proxys_upload_size_matches_the_dashboards_limit():
    sizes = directives("client_max_body_size")
    to_bytes = {"k": 1024, "m": 1024**2, "g": 1024**3}
    values = sorted(int(size[:-1]) * to_bytes[size[-1].lower()] for size in sizes)
    # Every other request: what a form or a JSON body may be.
    assert values[0] == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    # The upload operations: the archive and its multipart envelope, within a MiB.
    upload = settings.REPOSITORY_MAX_UPLOAD_BYTES + uploads.MULTIPART_OVERHEAD
    assert upload <= values[-1] <= upload + 1024**2


def test_the_proxy_keeps_no_idle_connection_to_the_web_server():
    # gunicorn.conf.py closes every connection after its answer (keepalive = 0):
    # a proxy reusing one would race that close.
    assert "keepalive" not in re.sub(r"#.*", "", front_proxy.TEMPLATE.read_text()).replace("keepalive_timeout", "")
