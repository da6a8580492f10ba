"""Reading a DBOS run back: the state is what the step policy makes of the recorded step
outputs (no worker memory), and the system database URL keeps every part of the DSN."""

from __future__ import annotations

from typing import Any

import pytest

from backends.dbos.history import Recorded, state_from_steps
from backends.dbos.settings import ACT, APPROVAL, REASON, VERIFY, sqlalchemy_url

SPEC: dict[str, Any] = {
    "run_id": "run-000001",
    "steps": 2,
    "on_failure": "retry_act",
    "max_attempts": 3,
    "approval_after_step": None,
    "approval_ttl_s": None,
}
DECISION = {"tool": "reserve_budget", "arguments": {"amount_cents": 5}, "thought": "t"}


def recorded(name: str, step: int, attempt: int, **output: Any) -> dict[str, Any]:
    body = {"step": step, "attempt": attempt, **output}
    return {"function_name": name, "output": body, "error": None}


def full_step(step: int, verdicts: tuple[bool, ...] = (True,)) -> list[dict[str, Any]]:
    rows = [recorded(REASON, step, 1, decision=DECISION)]
    for attempt, verified in enumerate(verdicts, start=1):
        rows.append(recorded(ACT, step, attempt, key="k", output={"n": attempt}))
        rows.append(recorded(VERIFY, step, attempt, verified=verified, at=0.0))
    return rows


def test_a_finished_workflow_s_steps_fold_into_the_completed_state() -> None:
    steps = full_step(0, (False, True)) + full_step(1)
    state = state_from_steps(SPEC, Recorded(steps), "SUCCESS")
    assert state.status == "completed" and state.final_answer
    assert [s.attempts for s in state.steps] == [2, 1]
    assert state.steps[0].verdicts == (False, True) and state.steps[0].output == {"n": 2}


def test_a_step_whose_verify_is_not_recorded_is_not_committed() -> None:
    steps = full_step(0) + full_step(1)[:2]  # step 1: reason and act, no verify
    state = state_from_steps(SPEC, Recorded(steps), "PENDING")
    assert state.status == "running" and len(state.steps) == 1 and state.final_answer is None


def test_every_output_in_but_no_recorded_end_is_still_running() -> None:
    state = state_from_steps(SPEC, Recorded(full_step(0) + full_step(1)), "PENDING")
    assert state.status == "running" and len(state.steps) == 2


def test_the_approval_wait_and_its_expiry_come_from_the_recorded_approval() -> None:
    spec = {**SPEC, "approval_after_step": 0, "approval_ttl_s": 1.0}
    waiting = state_from_steps(spec, Recorded(full_step(0)), "PENDING")
    assert waiting.status == "waiting_approval"
    expiry = {"function_name": APPROVAL, "output": False, "error": None}
    expired = state_from_steps(spec, Recorded([*full_step(0), expiry]), "SUCCESS")
    assert expired.status == "expired" and len(expired.steps) == 1


def test_nothing_recorded_is_a_pending_run() -> None:
    assert state_from_steps(SPEC, Recorded([]), "ENQUEUED").status == "pending"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://postgres:p%40ss@127.0.0.1:5433/postgres",
        "host=127.0.0.1 port=5433 user=postgres password=p@ss dbname=postgres",
    ],
)
def test_the_system_database_url_keeps_the_dsn_whole(dsn: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url(dsn))
    assert (url.host, url.port, url.username, url.password, url.database) == (
        "127.0.0.1",
        5433,
        "postgres",
        "p@ss",
        "postgres",
    )
