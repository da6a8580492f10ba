"""Workflow code versions, and replaying persisted histories against one of them.

A deploy of new workflow code is safe only if every open run's history replays
on it. `replay_histories` runs the SDK's Replayer over real histories and turns
each failure into a durabench anomaly: `nondeterminism` when the code issues a
different command sequence than the history recorded, `replay_error` otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Literal

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from backends.temporal.workflows import AgentWorkflow
from backends.temporal.workflows_v2 import AgentWorkflowV2Patched, AgentWorkflowV2Unpatched

__all__ = [
    "WORKFLOW_VERSIONS",
    "ReplayFinding",
    "fetch_histories",
    "replay_histories",
]

WORKFLOW_VERSIONS: dict[str, type] = {
    "v1": AgentWorkflow,
    "v2-unpatched": AgentWorkflowV2Unpatched,
    "v2-patched": AgentWorkflowV2Patched,
}

FindingKind = Literal["ok", "nondeterminism", "replay_error"]


@dataclass(frozen=True)
class ReplayFinding:
    """One history replayed against one code version."""

    workflow_id: str
    run_id: str
    version: str
    kind: FindingKind
    message: str = ""

    @property
    def anomaly(self) -> bool:
        return self.kind != "ok"


async def _iterate(histories: Iterable[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


async def replay_histories(
    histories: Iterable[WorkflowHistory], workflow_cls: type
) -> list[ReplayFinding]:
    """Replay each history on `workflow_cls`; one finding per history, in order."""
    version = str(getattr(workflow_cls, "VERSION", workflow_cls.__name__))
    findings = []
    async with Replayer(workflows=[workflow_cls]).workflow_replay_iterator(
        _iterate(histories)
    ) as results:
        async for result in results:
            failure = result.replay_failure
            kind: FindingKind = "ok"
            if isinstance(failure, NondeterminismError):
                kind = "nondeterminism"
            elif failure is not None:
                kind = "replay_error"
            findings.append(
                ReplayFinding(
                    result.history.workflow_id,
                    result.history.run_id,
                    version,
                    kind,
                    "" if failure is None else f"{type(failure).__name__}: {failure}"[:2000],
                )
            )
    return findings


async def fetch_histories(client: Client, workflow_ids: Iterable[str]) -> list[WorkflowHistory]:
    """The persisted histories of these workflows (latest run of each)."""
    return [await client.get_workflow_handle(wid).fetch_history() for wid in workflow_ids]
