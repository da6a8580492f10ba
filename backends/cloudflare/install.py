"""Where the Cloudflare runtime comes from: wrangler and workerd, installed by `npm ci` in
this folder (`.ci/run` does it; durabench installs nothing at run time), run with the
machine's Node.js.

workerd's binary arrives as an npm package of its own (`@cloudflare/workerd-linux-64`, an
optional dependency of `workerd`): its install script only links that binary and checks
its version, and downloads nothing when the package is there. What is missing is named
with the command that installs it.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from functools import cache
from pathlib import Path

__all__ = [
    "MIN_NODE",
    "NODE_MODULES",
    "PACKAGE_DIR",
    "missing",
    "node_binary",
    "npm_version",
    "workerd_binary",
    "wrangler_cli",
]

PACKAGE_DIR = Path(__file__).resolve().parent
NODE_MODULES = PACKAGE_DIR / "node_modules"
MIN_NODE = (20, 3)  # wrangler 4.86's engines field; later wranglers need Node 22
INSTALL_HINT = f"run `npm ci` in {PACKAGE_DIR}"
_PLATFORM_PACKAGES = {
    ("Linux", "x86_64"): "workerd-linux-64",
    ("Linux", "aarch64"): "workerd-linux-arm64",
    ("Darwin", "arm64"): "workerd-darwin-arm64",
    ("Darwin", "x86_64"): "workerd-darwin-64",
}


def npm_version(package: str) -> str | None:
    """The version of an npm package installed here, None when it is not."""
    try:
        data = json.loads((NODE_MODULES / package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version")
    return str(version) if version else None


def wrangler_cli() -> Path:
    """wrangler's own entry point, run directly under node (no `bin/wrangler` launcher
    process in between, so a signal to the runtime reaches wrangler itself)."""
    return NODE_MODULES / "wrangler" / "wrangler-dist" / "cli.js"


def workerd_binary() -> Path | None:
    """The platform's workerd binary from its npm package, None when absent."""
    name = _PLATFORM_PACKAGES.get((platform.system(), platform.machine()))
    if name is None:
        return None
    path = NODE_MODULES / "@cloudflare" / name / "bin" / "workerd"
    return path if path.is_file() else None


@cache
def _node_version(node: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return tuple(int(p) for p in out.stdout.strip().lstrip("v").split(".")[:2])
    except ValueError:
        return None


def node_binary() -> str | None:
    """The Node.js that runs wrangler (`node` on PATH), None when absent or too old."""
    node = shutil.which("node")
    if node is None:
        return None
    version = _node_version(node)
    return node if version is not None and version >= MIN_NODE else None


def missing() -> list[str]:
    """What the cloudflare backend still needs, each with how to get it ([] = ready)."""
    problems = []
    if node_binary() is None:
        wanted = ".".join(map(str, MIN_NODE))
        problems.append(f"node >= {wanted} on PATH (apt-get install nodejs)")
    if npm_version("wrangler") is None or not wrangler_cli().is_file():
        problems.append(f"wrangler ({INSTALL_HINT})")
    elif workerd_binary() is None:
        problems.append(f"workerd's platform binary ({INSTALL_HINT})")
    return problems
