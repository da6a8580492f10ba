"""pgstore's state machine as pure functions: a log written by following
`next_action` folds to the oracle's state, and a worker restarted at ANY point of
the log continues with exactly the phase that is missing."""

from __future__ import annotations

from typing import Any

import pytest

from backends.pgstore.fold import (
    CorruptLog,
    Event,
    Progress,
    apply_event,
    fold,
    internal_events,
    next_action,
)
from harness.oracle import expected_run
from harness.scenario import Scenario, parse_scenario
from harness.workload import decide, idempotency_key, tool_output, verify_output

Rows = list[tuple[int, Event, int]]


def scenario(**overrides: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "fold",
        "seed": 5,
        "runs": 12,
        "steps": 4,
        "load": {"concurrency": 1},
        "tool_mix": {"search_supplier": 1, "reserve_budget": 1},
        "verify": {"failure_probability": 0.4, "on_failure": "retry_act", "max_attempts": 3},
    }
    data.update(overrides)
    return parse_scenario(data)


def events_for(s: Scenario, progress: Progress) -> list[Event]:
    """What a worker appends for the next action (the 'LLM' and 'tools' answer as the
    simulated services do)."""
    action = next_action(s, progress)
    run_id = progress.run_id
    if action.kind == "reason":
        decision = decide(s, run_id, action.step, action.attempt)
        return [Event("reason", action.step, action.attempt, {"decision": decision.__dict__})]
    if action.kind == "act":
        assert action.decision is not None
        output = tool_output(
            s, run_id, action.step, action.attempt, action.decision.tool, action.decision.arguments
        )
        key = idempotency_key(run_id, action.step, action.attempt)
        return [Event("act", action.step, action.attempt, {"key": key, "output": output})]
    draft = progress.copy()
    events = []
    if action.kind == "verify":
        assert action.decision is not None and action.output is not None
        verified = verify_output(action.decision, action.output)
        event = Event("verify", action.step, action.attempt, {"verified": verified})
        apply_event(draft, event, draft.last_seq + 1)
        events.append(event)
    return events + internal_events(s, draft)


def write_log(s: Scenario, run_id: str, approve_first: bool = False) -> tuple[Rows, Progress]:
    progress = Progress(run_id)
    rows: Rows = []

    def append(event: Event) -> None:
        seq = len(rows)
        apply_event(progress, event, seq)
        rows.append((seq, event, 0))

    append(Event("run_started"))
    if approve_first:
        append(Event("approved"))
    while next_action(s, progress).kind not in ("done", "wait"):
        for event in events_for(s, progress):
            append(event)
    return rows, progress


@pytest.mark.parametrize("on_failure", ["retry_act", "replan"])
def test_following_next_action_reaches_the_oracle_state(on_failure: str) -> None:
    s = scenario(verify={"failure_probability": 0.4, "on_failure": on_failure, "max_attempts": 3})
    for i in range(s.runs):
        run_id = f"run-{i:06d}"
        rows, progress = write_log(s, run_id)
        assert progress.state() == expected_run(s, run_id).state
        assert fold(run_id, rows).state() == progress.state()


def test_a_restart_anywhere_continues_with_the_missing_phase() -> None:
    s = scenario(approval={"after_step": 1, "delay_s": 0.1, "ttl_s": 1})
    for i in range(6):
        run_id = f"run-{i:06d}"
        rows, final = write_log(s, run_id, approve_first=True)
        for cut in range(2, len(rows)):
            resumed = fold(run_id, rows[:cut])
            appended = events_for(s, resumed)
            assert appended == [e for _, e, _ in rows[cut : cut + len(appended)]], (run_id, cut)
        assert final.state() == expected_run(s, run_id).state


def test_a_snapshot_folds_to_the_same_state_as_the_whole_log() -> None:
    s = scenario()
    rows, final = write_log(s, "run-000003")
    for cut in range(1, len(rows)):
        snapshot = Progress.from_dict(fold("run-000003", rows[:cut]).to_dict())
        assert fold("run-000003", rows, snapshot).state() == final.state()


def test_an_approval_wait_is_a_state_and_the_approval_an_event() -> None:
    s = scenario(
        verify={"failure_probability": 0.0},
        approval={"after_step": 0, "delay_s": None, "ttl_s": 1},
    )
    rows, progress = write_log(s, "run-000000")
    assert progress.status == "waiting_approval"
    assert next_action(s, progress).kind == "wait"
    assert [e.type for _, e, _ in rows][-2:] == ["step_committed", "approval_requested"]

    approved = fold("run-000000", [*rows, (len(rows), Event("approved"), 0)])
    assert approved.status == "running"
    assert next_action(s, approved).kind == "reason"

    expired = fold("run-000000", [*rows, (len(rows), Event("expired"), 0)])
    assert expired.state() == expected_run(s, "run-000000").state
    assert next_action(s, expired).kind == "done"


def test_a_log_that_contradicts_itself_is_refused() -> None:
    s = scenario()
    rows, _ = write_log(s, "run-000001")
    reason = next(e for _, e, _ in rows if e.type == "reason")
    assert reason.step == 0
    bad = Event("reason", 5, 1, reason.payload)
    with pytest.raises(CorruptLog, match="step 5"):
        fold("run-000001", [rows[0], (1, bad, 0)])
