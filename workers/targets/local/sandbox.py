"""Every local deployment runs in a sandbox: a deployer's model code (a
Python-backend model.py, an entry script) must never reach the dashboard.

bubblewrap (Debian's `bwrap`) gives the sandbox its own mount view (only the
interpreter, the Triton runtime, the staged model repository and the entry
script, all read-only, plus a private scratch folder), its own network
namespace (its own loopback: no dashboard, PostgreSQL or Redis port in
reach), its own PID, IPC and UTS namespaces, and an environment with nothing
but PATH, the library path and what the server needs. Run as root (a
worker in a container), bwrap itself sets up the namespaces and the servers
then run as `nobody` with no capabilities (setpriv); run as another user,
bwrap needs unprivileged user namespaces and the servers keep that user,
seeing no more than the mount view. prlimit caps memory (address space),
processes and open files; the servers run at a lower CPU priority.

From the host the sandbox is reached through Unix sockets in its run folder:
inside, socat bridges each socket to the server's TCP port on the sandbox's
loopback, so Triton answers at localhost:8000 inside, as on Azure.

LOCAL_TARGET_SANDBOX=off runs the same servers unsandboxed (pages warn).
"""

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

# Inside the sandbox, on its own loopback, as Azure's images have them.
TRITON_PORT, METRICS_PORT, ENTRY_PORT, ENTRY_HEALTH_PORT = 8000, 8002, 5001, 5002
NOBODY = 65534
# Sockets in the run folder, by the port they bridge to.
SOCKETS = {TRITON_PORT: "http.sock", METRICS_PORT: "metrics.sock", ENTRY_PORT: "score.sock"}


# socat copies 8 KiB at a time by default: a 4 MB tensor through both bridges
# then took 60 ms instead of 11 (bench/console_overhead.py). 1 MiB blocks,
# and TCP_NODELAY on both TCP ends (a client that writes headers and body
# separately otherwise waits on Nagle and delayed ACKs).
BRIDGE_OPTIONS = ("-b", "1048576")
# Connections a bridge's socat lets wait to be accepted (its own default is 5).
BRIDGE_BACKLOG = 512


class SandboxUnavailable(Exception):
    """The host cannot give the isolation; the message names what is missing."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    processes: int = 4096
    open_files: int = 4096


def enabled() -> bool:
    return settings.LOCAL_TARGET_SANDBOX


def _as_root() -> bool:
    return os.geteuid() == 0


def _namespaces(*, host_network: bool = False) -> list[str]:
    flags = [] if host_network else ["--unshare-net"]
    flags += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not _as_root():
        # Without root, only a user namespace lets bwrap make the others.
        flags += ["--unshare-user", "--cap-drop", "ALL"]
    return [*flags, "--new-session"]


def _system_view() -> list[str]:
    """The host's programs and libraries, read-only; /etc only for name lookups."""
    args = []
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc"]
    for name in ("ld.so.cache", "hosts", "passwd", "group", "nsswitch.conf", "localtime"):
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def _mount_points(paths: list[Path]) -> list[str]:
    """bwrap makes missing parent folders 0700; servers running as nobody
    could not pass them. Make each parent first, 0755."""
    skip = {Path("/"), Path("/tmp"), Path("/dev"), Path("/dev/shm")}  # noqa: S108 - the sandbox's own mounts
    parents = sorted({parent for path in paths for parent in path.parents if parent not in skip}, key=str)
    args = []
    for parent in parents:
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def python_paths() -> list[Path]:
    """The interpreter's installation and this virtual environment (both read-only inside)."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        paths.add(Path(libdir).resolve())
    return sorted(paths, key=str)


@functools.cache
def _bwrap() -> str:
    found = shutil.which("bwrap")
    if not found:
        raise SandboxUnavailable("bubblewrap is not installed (apt-get install bubblewrap)")
    return found


def check() -> None:
    """Refuse, naming what is missing, when this host cannot sandbox."""
    if not enabled():
        return
    bwrap = _bwrap()
    if not shutil.which("socat"):
        raise SandboxUnavailable("socat is not installed (apt-get install socat): it bridges into the sandbox")
    trial = subprocess.run(  # noqa: S603 - fixed arguments
        [bwrap, *_namespaces(), *_system_view(), "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if trial.returncode != 0:
        said = (trial.stderr or trial.stdout).strip().splitlines()
        why = said[-1] if said else f"exit {trial.returncode}"
        raise SandboxUnavailable(
            "this host cannot create the sandbox's namespaces "
            + ("" if _as_root() else "(unprivileged user namespaces: sysctl user.max_user_namespaces must be > 0) ")
            + f"— bwrap said: {why}. Set LOCAL_TARGET_SANDBOX=off only on a machine where every deployer is trusted."
        )


def _drop_to_nobody() -> list[str]:
    return [
        *["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"],
        *["--inh-caps=-all", "--bounding-set=-all", "--"],
    ]


def host_bridge(port: int, socket: Path) -> list[str]:
    """The host's side of a bridge: 127.0.0.1:port to the sandbox's socket.
    The sandbox owns that folder and could swap the socket for a link to
    another socket on the host, so the bridge runs in a sandbox of its own:
    on the host's network, but seeing nothing of the host's files besides
    that folder, where such a link leads nowhere."""
    return wrap(
        [
            *["socat", *BRIDGE_OPTIONS],
            # By its name from its folder (the workdir): a full path may pass the 107-byte limit.
            *[
                f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay,backlog={BRIDGE_BACKLOG}",
                f"UNIX-CONNECT:{socket.name}",
            ],
        ],
        read_only=[socket.parent],
        writable=[],
        env={"PATH": "/usr/bin:/bin"},
        workdir=socket.parent,
        limits=Limits(memory_mb=256, processes=4096, open_files=4096),
        host_network=True,
    )


def make_readable(*paths: Path) -> None:
    """What the servers read (the staged repository, the entry script, the
    start script) must be readable by nobody whatever the worker's umask."""
    if not (_as_root() and enabled()):
        return
    for top in paths:
        top.chmod(top.stat().st_mode | (0o555 if top.is_dir() else 0o444))
        for folder, dirs, files in os.walk(top) if top.is_dir() else ():
            for name in dirs:
                (Path(folder) / name).chmod(0o755)
            for name in files:
                path = Path(folder) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o444)


def prepare_folders(*writable: Path) -> None:
    """Folders the servers write to (scratch, sockets) belong to their user."""
    for folder in writable:
        folder.mkdir(parents=True, exist_ok=True)
        if _as_root() and enabled():
            os.chown(folder, NOBODY, NOBODY)
        folder.chmod(0o755)


def wrap(
    command: list[str],
    *,
    read_only: list[Path],
    writable: list[Path],
    env: dict[str, str],
    workdir: Path,
    limits: Limits,
    host_network: bool = False,
) -> list[str]:
    """`command` inside the sandbox (or, with the sandbox off, as it is, with the same limits)."""
    limited = [
        *["prlimit", f"--as={limits.memory_mb * 1024 * 1024}", f"--nproc={limits.processes}"],
        *[f"--nofile={limits.open_files}", "--", "nice", "-n", "5"],
    ]
    if not enabled():
        return ["env", "-i", *[f"{key}={value}" for key, value in env.items()], *limited, *command]
    binds = []
    for path in read_only:
        binds += ["--ro-bind", str(path), str(path)]
    for path in writable:
        binds += ["--bind", str(path), str(path)]
    identity = _drop_to_nobody() if _as_root() else []
    environment = []
    for key, value in env.items():
        environment += ["--setenv", key, value]
    return [
        _bwrap(),
        *_namespaces(host_network=host_network),
        *_system_view(),
        *["--proc", "/proc", "--dev", "/dev"],
        # Private to the sandbox: fresh tmpfs mounts, not the host's folders.
        # First, so that binds below them (a storage root under /tmp) stay visible.
        *["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"],  # noqa: S108
        *_mount_points([*read_only, *writable]),
        *binds,
        "--clearenv",
        *environment,
        *["--chdir", str(workdir)],
        "--",
        *limited,
        *identity,
        *command,
    ]
