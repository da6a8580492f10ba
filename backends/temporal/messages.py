"""The data that crosses the workflow/activity boundary: one dataclass in, one out.

Everything here is recorded in the Temporal event history, so it must stay small,
JSON-able and stable: renaming a field breaks the replay of existing histories.
Names of the workflow, its activities, query and signal are constants for the
same reason (all code versions register the same names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.workload import Decision

__all__ = [
    "ACT",
    "APPROVAL",
    "APPROVE_SIGNAL",
    "COMMIT",
    "REASON",
    "STATE_QUERY",
    "VERIFY",
    "VERSION_QUERY",
    "WORKFLOW_NAME",
    "ActInput",
    "AgentInput",
    "ApprovalNote",
    "CommitAck",
    "CommitInput",
    "PhaseInput",
    "TimeoutPolicy",
    "VerifyInput",
    "VerifyResult",
]

WORKFLOW_NAME = "DurabenchAgent"
REASON = "durabench.reason"
ACT = "durabench.act"
VERIFY = "durabench.verify"
COMMIT = "durabench.commit"  # local activity: the commit row when no activity follows
APPROVAL = "durabench.approval"  # local activity: writes the approval measurement row
STATE_QUERY = "state"
VERSION_QUERY = "version"
APPROVE_SIGNAL = "approve"


@dataclass(frozen=True)
class TimeoutPolicy:
    """Activity timeouts and retries, derived from the scenario (recorded in the manifest)."""

    start_to_close_s: float  # one attempt of reason/act/verify; the run's deadline bounds it
    heartbeat_s: float  # a silent attempt (worker killed) is retried after this
    retry_initial_s: float = 0.2
    retry_backoff: float = 2.0
    retry_max_interval_s: float = 5.0
    retry_max_attempts: int = 0  # 0 = unlimited: the run's deadline is the bound
    local_timeout_s: float = 10.0  # the commit/approval local activities (no I/O but a file)


@dataclass(frozen=True)
class AgentInput:
    """One agent run: the logical run id and the parts of the scenario the workflow needs
    (the workflow cannot read the scenario file: no I/O in workflow code)."""

    run_id: str
    steps: int
    on_failure: str  # VerifyPolicy.on_failure
    max_attempts: int  # VerifyPolicy.max_attempts
    policy: TimeoutPolicy
    approval_after_step: int | None = None
    approval_ttl_s: float | None = None


@dataclass(frozen=True)
class PhaseInput:
    """A reason call: which run, step and attempt (the workload is a function of them).
    The first reason of a step carries the previous step's commit (`committed`): the
    activity writes its commit row, and its scheduled event records the commit."""

    run_id: str
    step: int
    attempt: int
    committed: CommitInput | None = None


@dataclass(frozen=True)
class ActInput:
    """The decision's tool and arguments (not its thought: act never reads it, and every
    input is stored in the history) plus the idempotency key."""

    run_id: str
    step: int
    attempt: int
    tool: str
    arguments: dict[str, Any]
    idempotency_key: str  # the same on every Temporal retry of this act

    def decision(self) -> Decision:
        return Decision(self.tool, self.arguments, "")


@dataclass(frozen=True)
class VerifyInput:
    run_id: str
    step: int
    attempt: int
    tool: str
    arguments: dict[str, Any]
    output: dict[str, Any]

    def decision(self) -> Decision:
        return Decision(self.tool, self.arguments, "")


@dataclass(frozen=True)
class VerifyResult:
    step: int
    attempt: int
    verified: bool
    finished_at: float  # wall clock when the verdict left the worker (commit row start)


@dataclass(frozen=True)
class CommitInput:
    """The step whose every input is now in the history: the commit row's facts."""

    run_id: str
    step: int
    attempts: int
    reason_attempt: int  # the attempt whose reason produced the committed decision
    since: float  # when the last result of the step left the worker
    history_length: int  # events in the history when the step became durable
    history_bytes: int  # history growth since the previous commit (Temporal's own figure)
    durable_at: float = 0.0  # workflow time of the task that saw every result recorded


@dataclass(frozen=True)
class CommitAck:
    """Recorded in the history (local-activity marker): which attempts make up the step."""

    step: int
    attempts: int
    reason_attempt: int


@dataclass(frozen=True)
class ApprovalNote:
    run_id: str
    step: int
    attempts: int
    waited_from: float  # workflow time when the wait began
    approved: bool
