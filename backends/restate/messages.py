"""What the harness and the agent service agree on: names (handlers, the approval
promise, the K/V keys `inspect` reads), the run's input and the service's policy.

The K/V layout is what `inspect` reads back through the admin SQL API: one key for the
run (`run`: id, status, final answer) and one per committed step (`step-00003`), so a
step's write carries only that step.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "APPROVAL_PROMISE",
    "APPROVE_HANDLER",
    "RUN_HANDLER",
    "RUN_KEY",
    "STEP_PREFIX",
    "AgentInput",
    "ServicePolicy",
    "service_name",
    "step_key",
]

RUN_HANDLER = "run"
APPROVE_HANDLER = "approve"
APPROVAL_PROMISE = "approval"
RUN_KEY = "run"
STEP_PREFIX = "step-"
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")


def service_name(bench_id: str, prefix: str = "durabench") -> str:
    """The workflow's name for one durabench run: every run registers its own, so two
    runs on one server never share a service, its deployments or its keys."""
    return f"{prefix}_{_NOT_NAME.sub('_', bench_id)}"


def step_key(index: int) -> str:
    return f"{STEP_PREFIX}{index:05d}"


@dataclass(frozen=True)
class AgentInput:
    """One agent run: the logical run id and the parts of the scenario the workflow
    follows (the journal holds it: small and JSON-able)."""

    run_id: str
    steps: int
    on_failure: str
    max_attempts: int
    approval_after_step: int | None = None
    approval_ttl_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentInput:
        return cls(**data)


@dataclass(frozen=True)
class ServicePolicy:
    """How the server drives the service's invocations (set in the service definition,
    so the deployment's discovery carries it): the invocation retry policy a killed or
    failing attempt is retried under (a `ctx.run` without options of its own falls back
    to it), and the inactivity/abort timeouts after which a silent attempt (a paused
    worker, a cut link) is given up and retried (None: the server's defaults, 1 min and
    10 min)."""

    retry_initial_s: float = 0.2
    retry_factor: float = 2.0
    retry_max_s: float = 5.0
    retry_max_attempts: int = 100_000  # the run's deadline is the bound, as for Temporal
    inactivity_timeout_s: float | None = None
    abort_timeout_s: float | None = None
