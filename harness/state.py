"""The agent-run state every backend persists and the oracle predicts.

These are the shapes the checker compares. A backend may store them however it
likes, but `inspect` must rebuild a `RunState` from what it *persisted*.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "TERMINAL_STATUSES",
    "LedgerEntry",
    "PersistedRun",
    "RunState",
    "RunStatus",
    "StepRecord",
]

RunStatus = Literal["pending", "running", "waiting_approval", "completed", "aborted", "expired"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "aborted", "expired"})


@dataclass(frozen=True)
class StepRecord:
    """One committed step: the final decision, the accepted tool output, and every
    verify verdict on the way (one per attempt)."""

    index: int
    tool: str
    arguments: dict[str, Any]
    thought: str
    output: dict[str, Any]
    verdicts: tuple[bool, ...]
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        """Field by field, not `asdict`: that deep-copies, and a store that saves the
        whole run state after every step converts every step so far each time (27 µs a
        record with `asdict`; pgstore-naive's worker spent 7% of its CPU here at c=8).
        The tool's arguments and output are copied one level deep."""
        return {
            "index": self.index,
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "thought": self.thought,
            "output": dict(self.output),
            "verdicts": list(self.verdicts),
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        return cls(
            index=int(data["index"]),
            tool=str(data["tool"]),
            arguments=dict(data["arguments"]),
            thought=str(data["thought"]),
            output=dict(data["output"]),
            verdicts=tuple(bool(v) for v in data["verdicts"]),
            attempts=int(data["attempts"]),
        )


@dataclass(frozen=True)
class RunState:
    """The state of one agent run: committed history plus its outcome."""

    run_id: str
    status: RunStatus
    steps: tuple[StepRecord, ...] = ()
    final_answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "steps": [s.to_dict() for s in self.steps],
            "final_answer": self.final_answer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        return cls(
            run_id=str(data["run_id"]),
            status=data["status"],
            steps=tuple(StepRecord.from_dict(s) for s in data["steps"]),
            final_answer=data.get("final_answer"),
        )


@dataclass(frozen=True)
class PersistedRun:
    """What `Backend.inspect` read back from the store or server.

    `state is None` means nothing at all was persisted for the run (or it is gone).
    `bytes_persisted` and `history_length` are the backend's own state-bloat figures,
    `None` when the backend cannot tell.
    """

    run_id: str
    state: RunState | None
    bytes_persisted: int | None = None
    history_length: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LedgerEntry:
    """One tool execution as the tool service recorded it (append-only).

    `applied` is false when the idempotency key had already been applied: the
    execution was recorded but its side effect was not performed again.
    """

    seq: int
    run_id: str
    step: int
    attempt: int
    tool: str
    idempotency_key: str
    applied: bool
    request: dict[str, Any]
    response: dict[str, Any]
    started_at: float
    finished_at: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerEntry:
        return cls(
            seq=int(data["seq"]),
            run_id=str(data["run_id"]),
            step=int(data["step"]),
            attempt=int(data["attempt"]),
            tool=str(data["tool"]),
            idempotency_key=str(data["idempotency_key"]),
            applied=bool(data["applied"]),
            request=dict(data["request"]),
            response=dict(data["response"]),
            started_at=float(data["started_at"]),
            finished_at=float(data["finished_at"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
