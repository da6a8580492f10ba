"""The embedded Restate server: `restate-server` from the npm registry's
`@restatedev/restate-server` package (its platform package ships the binary).

It runs as a platform component on free 127.0.0.1 ports (ingress, admin and the
node-to-node fabric), TCP only (no unix sockets under a results directory whose path
may be too long for one), with its data directory in the backend's work directory, so
killing and restarting it with the same spec resumes every invocation where the
server left it. Everything else is Restate's own default (its RocksDB write-ahead
logs fsynced, 24 partitions), except what is recorded in `SERVER_SETTINGS`.

The binary is found on PATH, else in the project's `node_modules/.bin` (what
`npm ci --ignore-scripts` in the repository installs), else in the current
directory's. The `.bin` entry the npm package installs is a Node script that spawns
the platform binary; durabench runs that binary itself, so a signal (SIGKILL,
SIGSTOP) reaches the server, not a wrapper.
"""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BackendError
from harness.platform.base import ComponentSpec, binary_version, free_port

__all__ = [
    "INSTALL_HINT",
    "SERVER_COMPONENT",
    "SERVER_SETTINGS",
    "ServerPlan",
    "find_restate_server",
    "missing_server",
    "plan_server",
    "restate_server_binary",
    "restate_version",
]

SERVER_COMPONENT = "restate-server"
SERVER_READY_TIMEOUT_S = 60.0
BINARY = "restate-server"
ENV_BINARY = "DURABENCH_RESTATE_SERVER"  # a binary elsewhere (a release tarball's)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "run `npm ci --ignore-scripts` in the durabench checkout (its package.json brings "
    "@restatedev/restate-server into node_modules/.bin), put restate-server on PATH, or "
    "give --restate-admin/--restate-ingress to use an existing server"
)
NODE_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
# What durabench sets beyond Restate's defaults (recorded in the manifest): no
# telemetry and no web UI (nothing leaves the machine, nothing serves a browser), a
# modest memory budget on a shared machine, quieter logs and a short drain on SIGTERM.
SERVER_SETTINGS: Mapping[str, str] = {
    "RESTATE_DISABLE_TELEMETRY": "true",
    "RESTATE_ADMIN__DISABLE_WEB_UI": "true",
    "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "512 MiB",
    "RESTATE_LOG_FILTER": "warn",
    "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
    "RESTATE_SHUTDOWN_TIMEOUT": "5s",
}


def _candidates() -> list[Path]:
    found = []
    override = os.environ.get(ENV_BINARY)
    if override:
        found.append(Path(override))
    on_path = shutil.which(BINARY)
    if on_path:
        found.append(Path(on_path))
    for root in (PROJECT_ROOT, Path.cwd()):
        found.append(root / "node_modules" / ".bin" / BINARY)
    return found


def _native(entry: Path) -> Path | None:
    """The platform binary behind `entry`: itself when it is one, the binary of the
    platform package beside it when it is the npm package's Node launcher."""
    try:
        resolved = entry.resolve(strict=True)
    except OSError:
        return None
    if resolved.suffix != ".js":
        return resolved if os.access(resolved, os.X_OK) else None
    # .../@restatedev/restate-server/lib/index.js -> .../@restatedev/restate-server-<os>-<arch>
    scope = resolved.parent.parent.parent
    arch = NODE_ARCH.get(platform.machine().lower(), platform.machine().lower())
    binary = scope / f"restate-server-{platform.system().lower()}-{arch}" / "bin" / BINARY
    return binary if os.access(binary, os.X_OK) else None


def find_restate_server() -> Path | None:
    """The native restate-server binary, or None when none is installed."""
    for candidate in _candidates():
        native = _native(candidate)
        if native is not None:
            return native
    return None


def restate_server_binary() -> Path:
    """The binary, or a BackendError naming where it looked and how to install it."""
    found = find_restate_server()
    if found is None:
        raise BackendError(
            f"restate: no restate-server binary (looked on PATH, in {PROJECT_ROOT}/node_modules"
            f"/.bin and ./node_modules/.bin, and ${ENV_BINARY}); {INSTALL_HINT}"
        )
    return found


def missing_server() -> list[str]:
    """What the restate backend still misses outside Python ([] = ready): for the list
    of available backends."""
    return [] if find_restate_server() is not None else ["restate-server (npm ci)"]


def restate_version(binary: Path) -> str:
    return binary_version(binary)


@dataclass(frozen=True)
class ServerPlan:
    spec: ComponentSpec
    ingress_url: str
    admin_url: str
    data_dir: Path


def plan_server(workdir: Path, partitions: int | None = None) -> ServerPlan:
    """The server component on free ports; the same spec restarts it on the same data."""
    binary = restate_server_binary()
    ingress, admin, fabric = free_port(), free_port(), free_port()
    data_dir = workdir / "restate-data"
    argv = [
        str(binary),
        "--no-logo",
        "--node-name",
        "durabench",
        "--base-dir",
        str(data_dir),
        "--listen-mode",
        "tcp",
        "--bind-ip",  # every listener (ingress, admin, fabric) on this address
        "127.0.0.1",
        "--bind-port",
        str(fabric),
        "--advertised-address",
        f"http://127.0.0.1:{fabric}/",
    ]
    if partitions is not None:
        argv += ["--default-num-partitions", str(partitions)]
    env = {
        **SERVER_SETTINGS,
        "RESTATE_INGRESS__BIND_PORT": str(ingress),
        "RESTATE_ADMIN__BIND_PORT": str(admin),
    }
    spec = ComponentSpec(
        name=SERVER_COMPONENT,
        role="server",
        argv=tuple(argv),
        port=ingress,
        # the ingress answers once the node joined its cluster and serves invocations
        health_url=f"http://127.0.0.1:{ingress}/restate/health",
        env=env,
        ready_timeout_s=SERVER_READY_TIMEOUT_S,
    )
    return ServerPlan(spec, f"http://127.0.0.1:{ingress}", f"http://127.0.0.1:{admin}", data_dir)
