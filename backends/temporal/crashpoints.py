"""Temporal's own durability boundaries, and the worker interceptor that marks them.

What Temporal makes durable is the event history: an activity's result once its
completion reaches the server, the workflow's progress once a workflow task's
commands do. The points sit on exactly those edges, seen from the worker:

- `temporal.after_activity_effect`: the act activity's function returned (the tool
  applied the effect, the ledger recorded it), its completion is not reported: the
  server retries the activity after the heartbeat timeout (at-least-once).
- `temporal.before_workflow_task_completion`: the workflow holds the step's record
  in memory (every result of the step is in the history), and the workflow task that
  would record its commit (with the next step's scheduled reason, or a local-activity
  marker) has not completed: the task times out and another worker replays the history.
  It fires in the workflow code itself, never while replaying.
- `temporal.after_workflow_task`: the workflow task that scheduled step N's reason
  completed (the server holds the command); the worker dies as that activity starts,
  before the LLM call.

The interceptor and the workflow-side point are armed only when the worker has crash
points configured.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from backends.temporal.messages import ACT, REASON
from harness.failpoints import BackendCrashPoint
from harness.measure import Recorder

__all__ = ["CRASH_POINTS", "CrashPointInterceptor", "arm_workflow_points", "in_workflow_task"]

AFTER_ACTIVITY_EFFECT = "temporal.after_activity_effect"
BEFORE_TASK_COMPLETION = "temporal.before_workflow_task_completion"
AFTER_WORKFLOW_TASK = "temporal.after_workflow_task"

CRASH_POINTS = (
    BackendCrashPoint(
        AFTER_ACTIVITY_EFFECT,
        "the act activity returned (effect applied, in the ledger) and its completion is "
        "not reported: the server retries it after the heartbeat timeout, same key",
    ),
    BackendCrashPoint(
        BEFORE_TASK_COMPLETION,
        "the workflow holds the step's record in memory, its results are in the history, "
        "the workflow task that commits it has not completed: another worker replays it",
    ),
    BackendCrashPoint(
        AFTER_WORKFLOW_TASK,
        "the workflow task that scheduled the step's reason completed; the worker dies as "
        "the reason activity starts, before the LLM call: the activity is retried",
    ),
)


_workflow_recorder: list[Recorder] = []  # this worker process's, when armed


def arm_workflow_points(recorder: Recorder) -> None:
    """Let workflow code in this process reach the configured crash points."""
    _workflow_recorder[:] = [recorder]


def in_workflow_task(run_id: str, step: int) -> None:
    """Called by the workflow (outside replay) once step `step` is complete in memory,
    inside the workflow task that will record its commit."""
    for recorder in _workflow_recorder:
        recorder.crash_point(BEFORE_TASK_COMPLETION, run_id, step)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, recorder: Recorder) -> None:
        super().__init__(next)
        self.recorder = recorder

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        kind = activity.info().activity_type
        request = input.args[0] if input.args else None
        run_id, step = getattr(request, "run_id", ""), getattr(request, "step", -1)
        if kind == REASON:
            self.recorder.crash_point(AFTER_WORKFLOW_TASK, run_id, step)
        result = await self.next.execute_activity(input)
        if kind == ACT:
            self.recorder.crash_point(AFTER_ACTIVITY_EFFECT, run_id, step)
        return result


class CrashPointInterceptor(Interceptor):
    """Marks Temporal's crash points around the agent's activities."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self.recorder)
