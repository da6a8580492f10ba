"""The step policy as a plan: which phases a step asks for, in which order, and what it records."""

from __future__ import annotations

from typing import Any

import pytest

from harness.scenario import VerifyPolicy
from harness.steppolicy import Act, Reason, Verify, plan_step, run_step, settle
from harness.workload import Decision


class Scripted:
    """Answers a plan with given verdicts, logging every request."""

    def __init__(self, verdicts: list[bool]) -> None:
        self.verdicts = verdicts
        self.log: list[str] = []

    def reason(self, attempt: int) -> Decision:
        self.log.append(f"reason {attempt}")
        return Decision(f"tool-{attempt}", {"a": attempt}, "thought")

    def act(self, attempt: int, decision: Decision) -> dict[str, Any]:
        self.log.append(f"act {attempt} {decision.tool}")
        return {"attempt": attempt}

    def verify(self, attempt: int, decision: Decision, output: dict[str, Any]) -> bool:
        self.log.append(f"verify {attempt}")
        return self.verdicts[attempt - 1]


@pytest.mark.parametrize(
    ("on_failure", "expected"),
    [
        ("retry_act", ["reason 1", "act 1 tool-1", "verify 1", "act 2 tool-1", "verify 2"]),
        (
            "replan",
            ["reason 1", "act 1 tool-1", "verify 1", "reason 2", "act 2 tool-2", "verify 2"],
        ),
    ],
)
def test_a_failed_verify_retries_the_act_or_replans(on_failure: str, expected: list[str]) -> None:
    phases = Scripted([False, True])
    outcome = run_step(plan_step(VerifyPolicy(on_failure=on_failure, max_attempts=3), 4), phases)
    assert phases.log == expected
    assert outcome.move == "commit"
    assert (outcome.record.index, outcome.record.attempts) == (4, 2)
    assert outcome.record.verdicts == (False, True)
    assert outcome.record.output == {"attempt": 2}


def test_the_last_failed_attempt_aborts_and_records_the_step() -> None:
    phases = Scripted([False, False])
    outcome = run_step(plan_step(VerifyPolicy(max_attempts=2), 0), phases)
    assert outcome.move == "abort"
    assert outcome.record.verdicts == (False, False)


def test_the_plan_only_asks_and_never_performs() -> None:
    plan = plan_step(VerifyPolicy(), 0)
    decision = Decision("t", {}, "")
    assert next(plan) == Reason(1)
    assert plan.send(decision) == Act(1, decision)
    assert plan.send({"x": 1}) == Verify(1, decision, {"x": 1})


def test_settle_closes_a_step_only_on_commit_or_abort() -> None:
    decision = Decision("t", {}, "")
    again = settle(VerifyPolicy(max_attempts=3), 0, 1, decision, {}, (), False)
    assert (again.move, again.record) == ("retry_act", None)
    closed = settle(VerifyPolicy(max_attempts=3), 0, 2, decision, {}, again.verdicts, True)
    assert closed.move == "commit" and closed.record is not None
    assert closed.record.verdicts == (False, True)
