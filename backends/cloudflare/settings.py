"""What the Cloudflare backend, its runtime component, its Worker and its floor agree on:
names, the Worker's configuration (wrangler.json, its vars), the environment wrangler
runs in offline, and the one input of an agent Workflow.

The Worker (src/) reads its configuration from vars; the backend writes them once per
run into the backend's work directory, and the runtime component adds the crash points
it was given before it starts wrangler.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.cloudflare.install import PACKAGE_DIR

if TYPE_CHECKING:
    from harness.scenario import Scenario

__all__ = [
    "AGENT",
    "BASE_CONFIG",
    "COMPATIBILITY_DATE",
    "FLOOR",
    "OFFLINE_ENV",
    "ROW_MARK",
    "SCRIPT",
    "TERMINAL_STATUSES",
    "RuntimeOptions",
    "instance_id",
    "spec_of",
    "worker_config",
    "write_config",
]

SCRIPT = "durabench-agent"
AGENT = "agent"  # the routes' names of the two Workflows (src/index.js)
FLOOR = "floor"
ROW_MARK = "@@durabench-row "  # src/agent.js writes each measurement row after it
# the newest date the pinned workerd (1.20260426) supports, fixed so that wrangler never
# warns about it (the warning asks the npm registry for a newer wrangler)
COMPATIBILITY_DATE = "2026-04-01"
BASE_CONFIG = "worker.json"  # in the backend's work directory
TERMINAL_STATUSES = frozenset({"complete", "errored", "terminated"})
# wrangler offline and quiet: no usage metrics, no error reports, no update check
# (banner), no request.cf download; local mode needs no login
OFFLINE_ENV = {
    "WRANGLER_SEND_METRICS": "false",
    "WRANGLER_SEND_ERROR_REPORTS": "false",
    "WRANGLER_HIDE_BANNER": "true",
    "CLOUDFLARE_CF_FETCH_ENABLED": "false",
    "CI": "true",  # no interactive prompts
}
_INSTANCE_ID = re.compile(r"[^a-zA-Z0-9_-]")
MAX_INSTANCE_ID = 100  # the Workflows limit


@dataclass(frozen=True)
class RuntimeOptions:
    """The runtime component's own flags (runtime.py, given by backend.py)."""

    http_port: int = field(metadata={"help": "the Worker's HTTP port (wrangler dev --port)"})
    inspector_port: int = field(metadata={"help": "wrangler's inspector port"})
    control_port: int = field(metadata={"help": "this process's crash-point endpoint"})
    persist: Path = field(metadata={"help": "wrangler dev --persist-to"})
    config: Path = field(metadata={"help": "the Worker's base wrangler.json"})


def instance_id(prefix: str, run_id: str) -> str:
    """The Workflow instance id of a run: letters, digits, `-` and `_` only (a trial's
    `~` becomes `_`), at most 100 characters; the prefix keeps two durabench runs apart."""
    name = _INSTANCE_ID.sub("_", f"{prefix}-{run_id}")
    if len(name) > MAX_INSTANCE_ID:
        raise ValueError(f"instance id {name!r} is longer than {MAX_INSTANCE_ID} characters")
    return name


def spec_of(scenario: Scenario, run_id: str) -> dict[str, Any]:
    """The agent Workflow's one input: the run and what of the scenario it needs."""
    approval = scenario.approval
    return {
        "run_id": run_id,
        "steps": scenario.steps,
        "on_failure": scenario.verify.on_failure,
        "max_attempts": scenario.verify.max_attempts,
        "approval_after_step": approval.after_step if approval else None,
        "approval_ttl_s": approval.ttl_s if approval else None,
    }


def worker_config(
    scenario: Scenario,
    *,
    backend: str,
    worker: str,
    llm_url: str,
    tools_url: str,
    control_url: str = "",
    failpoints: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """wrangler.json for the Worker: its code in this package, both Workflows, its vars."""
    return {
        "name": SCRIPT,
        "main": str(PACKAGE_DIR / "src" / "index.js"),
        "compatibility_date": COMPATIBILITY_DATE,
        "workflows": [
            {"name": f"{SCRIPT}-agent", "binding": "AGENT", "class_name": "AgentWorkflow"},
            {"name": f"{SCRIPT}-floor", "binding": "FLOOR", "class_name": "FloorWorkflow"},
        ],
        "vars": {
            "DURABENCH_BACKEND": backend,
            "DURABENCH_WORKER": worker,
            "DURABENCH_SCENARIO": scenario.name,
            "DURABENCH_MODEL": scenario.llm.model,
            "DURABENCH_TOOLS": json.dumps(list(scenario.tools)),
            "DURABENCH_LLM_URL": llm_url,
            "DURABENCH_TOOLS_URL": tools_url,
            "DURABENCH_CONTROL_URL": control_url,
            "DURABENCH_FAILPOINTS": json.dumps(failpoints or []),
        },
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path
