"""The compose stack's front proxy, run here by Debian's nginx (no Docker
engine on these machines): the same template file, rendered the way nginx's
official image renders /etc/nginx/templates/*.template (envsubst of the
variables it is given), included from a minimal main configuration that
keeps every path in a temporary folder, the process unprivileged and in the
foreground."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests import processes

TEMPLATE = processes.ROOT / "deploy" / "nginx" / "templates" / "default.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The unprivileged user nginx runs as when the tests run as root.
NOBODY = 65534

MAIN = """
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/conf.d/*.conf;
}}
"""


def envsubst(text: str, variables: dict[str, str]) -> str:
    """`envsubst '$A $B'`: only the named variables are replaced (both
    `$NAME` and `${NAME}`), so nginx's own lower-case `$variables` stay."""
    pattern = re.compile(r"\$(?:\{(%s)\}|(%s)\b)" % (("|".join(variables),) * 2))
    return pattern.sub(lambda m: variables[m.group(1) or m.group(2)], text)


def render(*, upstream: str, port: int) -> str:
    assert TEMPLATE.is_file(), f"the front proxy's configuration is missing: {TEMPLATE}"
    return envsubst(TEMPLATE.read_text(), {"DASHBOARD_UPSTREAM": upstream, "NGINX_PORT": str(port)})


def start(*, upstream: str, port: int) -> tuple[subprocess.Popen, Path]:
    """nginx in front of `upstream` (host:port) on 127.0.0.1:`port`; its
    folder (temporary bodies under client_body/) is returned with it."""
    root = Path(tempfile.mkdtemp(prefix="front-proxy-"))
    (root / "conf.d").mkdir()
    (root / "conf.d" / "dashboard.conf").write_text(render(upstream=upstream, port=port))
    (root / "nginx.conf").write_text(MAIN.format(root=root))
    command = [NGINX, "-p", str(root), "-e", str(root / "error.log"), "-c", str(root / "nginx.conf")]
    command += ["-g", f"daemon off; pid {root}/nginx.pid;"]
    if os.geteuid() == 0:
        # Never as root: the folder is nobody's, and nginx drops nothing it does not have.
        for path in (root, *root.rglob("*")):
            os.chown(path, NOBODY, NOBODY)
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    return processes.start(command, env=processes.child_env(), log=root / "nginx.out"), root


def stop(process: subprocess.Popen, root: Path) -> None:
    processes.stop(process)
    shutil.rmtree(root, ignore_errors=True)
