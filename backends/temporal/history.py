"""Reading a run back from its Temporal event history: state, size, and what went wrong.

The history *is* what Temporal persisted. A closed run's state is the workflow
result recorded in its last event. For an open run (when no worker answers a
query) or a run the server terminated (e.g. past the history limits), the state
is rebuilt from recorded facts only: each commit (carried in the input of the next
step's scheduled reason activity, or a `commit` local-activity marker when no activity
followed) names the attempts that make up a committed step, and the step's fields are
the recorded results of those reason, act and verify attempts.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from backends.temporal.messages import ACT, COMMIT, REASON, VERIFY
from harness.state import PersistedRun, RunState, RunStatus, StepRecord

__all__ = ["HISTORY_LIMITS", "persisted_from_history", "state_from_events"]

# Temporal's default per-workflow history limits: the server warns, then terminates the run
HISTORY_LIMITS = {
    "warn_events": 10_240,
    "warn_bytes": 10 * 1024 * 1024,
    "fail_events": 51_200,
    "fail_bytes": 50 * 1024 * 1024,
}
LOCAL_ACTIVITY_MARKER = "core_local_activity"
CLOSE_STATUS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "COMPLETED",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "FAILED",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "TIMED_OUT",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "CANCELED",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "TERMINATED",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
}


class _Decoder:
    def __init__(self, converter: DataConverter) -> None:
        self.converter = converter.payload_converter

    def first(self, payloads: Any) -> Any:
        values = self.converter.from_payloads(list(payloads.payloads))
        return values[0] if values else None


def _results(events: list[HistoryEvent], decode: _Decoder) -> dict[tuple[str, int, int], Any]:
    """(activity type, step, attempt) -> recorded result, for activities and local ones."""
    scheduled: dict[int, tuple[str, dict[str, Any]]] = {}
    results: dict[tuple[str, int, int], Any] = {}
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            kind, request = attrs.activity_type.name, decode.first(attrs.input)
            scheduled[event.event_id] = (kind, request)
            if kind == REASON and (commit := request.get("committed")):
                results[(COMMIT, int(commit["step"]), int(commit["attempts"]))] = commit
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            kind, request = scheduled[done.scheduled_event_id]
            results[(kind, int(request["step"]), int(request["attempt"]))] = decode.first(
                done.result
            )
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name != LOCAL_ACTIVITY_MARKER or "result" not in marker.details:
                continue
            data = decode.first(marker.details["data"])
            result = decode.first(marker.details["result"])
            if data.get("activity_type") == COMMIT:
                results[(COMMIT, int(result["step"]), int(result["attempts"]))] = result
            elif data.get("activity_type") == VERIFY:  # v2 verifies in a local activity
                results[(VERIFY, int(result["step"]), int(result["attempt"]))] = result
    return results


def state_from_events(
    run_id: str, events: list[HistoryEvent], converter: DataConverter
) -> RunState:
    """The committed steps as the history records them (status running/waiting_approval)."""
    results = _results(events, _Decoder(converter))
    steps: list[StepRecord] = []
    commits = sorted(
        (value for (kind, _, _), value in results.items() if kind == COMMIT),
        key=lambda ack: int(ack["step"]),
    )
    for ack in commits:
        step, attempts = int(ack["step"]), int(ack["attempts"])
        decision = results[(REASON, step, int(ack["reason_attempt"]))]
        verdicts = tuple(
            bool(results[(VERIFY, step, a)]["verified"])
            for a in range(1, attempts + 1)
            if (VERIFY, step, a) in results
        )
        steps.append(
            StepRecord(
                index=step,
                tool=str(decision["tool"]),
                arguments=dict(decision["arguments"]),
                thought=str(decision["thought"]),
                output=dict(results[(ACT, step, attempts)]),
                verdicts=verdicts,
                attempts=attempts,
            )
        )
    status: RunStatus = "running"
    if events and events[-1].event_type == EventType.EVENT_TYPE_TIMER_STARTED:
        status = "waiting_approval"  # the only timer the workflow starts is the approval TTL
    return RunState(run_id, status, tuple(steps), None)


def _close_reason(event: HistoryEvent) -> str:
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        return event.workflow_execution_terminated_event_attributes.reason
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        return event.workflow_execution_failed_event_attributes.failure.message
    return ""


def _nondeterminism(events: list[HistoryEvent]) -> list[str]:
    cause = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR
    return [
        e.workflow_task_failed_event_attributes.failure.message[:1000]
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        and e.workflow_task_failed_event_attributes.cause == cause
    ]


def persisted_from_history(
    run_id: str, history: WorkflowHistory, converter: DataConverter
) -> PersistedRun:
    """State, history length (events) and size (serialized bytes) of one run.

    `extra.temporal_status` is the server's view (RUNNING, COMPLETED, TERMINATED, ...),
    with the reason when the server or someone ended the run (a run past the history
    limit is TERMINATED with "Workflow history count exceeds limit."); `extra.nondeterminism`
    lists workflow-task failures caused by code that does not replay the history.
    """
    events = list(history.events)
    size = History(events=events).ByteSize()
    extra: dict[str, Any] = {}
    last = events[-1] if events else None
    status = CLOSE_STATUS.get(last.event_type, "RUNNING") if last is not None else "RUNNING"
    extra["temporal_status"] = status
    if len(events) > HISTORY_LIMITS["warn_events"] or size > HISTORY_LIMITS["warn_bytes"]:
        extra["history_warning"] = "past Temporal's default warn limit (10,240 events / 10 MB)"
    if failures := _nondeterminism(events):
        extra["nondeterminism"] = failures
    if status == "COMPLETED" and last is not None:
        result = _Decoder(converter).first(
            last.workflow_execution_completed_event_attributes.result
        )
        return PersistedRun(run_id, RunState.from_dict(result), size, len(events), extra)
    if last is not None and (reason := _close_reason(last)):
        extra["reason"] = reason
    extra["source"] = "history"
    return PersistedRun(
        run_id, state_from_events(run_id, events, converter), size, len(events), extra
    )
