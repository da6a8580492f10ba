"""The oracle built from recorded decisions, as pure functions: the first recorded answer
of each (run, step, attempt) is the expected decision, the tool outputs stay the
workload's, an oracle whose decisions end early judges only what it knows, and an
answer that is no valid tool call makes the run invalid (not a durability anomaly)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pandas as pd

from harness.checker import RunEvidence, check_run
from harness.evaluate import judge_runs, summarize
from harness.oracle import expected_run
from harness.recorded import InvalidDecision, RecordedDecisions, decision_of
from harness.scenario import Scenario, parse_scenario
from harness.state import PersistedRun
from harness.workload import Decision, decide, digest, tool_output
from tests.conftest import TINY

MODEL_SEED = 999
RUN = "run-000001"


def scenario(failure_probability: float = 0.3) -> Scenario:
    return parse_scenario(
        {
            **TINY,
            "llm": {"base_url": "http://127.0.0.1:9/v1"},
            "verify": {**TINY["verify"], "failure_probability": failure_probability},
        }
    )


def model_answer(decision: Decision) -> dict[str, Any]:
    call = {"name": decision.tool, "arguments": json.dumps(decision.arguments)}
    message = {"role": "assistant", "content": decision.thought, "tool_calls": [{"function": call}]}
    return {
        "choices": [{"message": message}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }


def calls_of(s: Scenario, run_id: str, seed: int, replayed: bool = False) -> list[dict[str, Any]]:
    """A gateway log of a model on another seed answering every reason call of the run
    (replayed: each call answered a second time, differently)."""
    model = s.model_copy(update={"seed": seed})
    rows: list[dict[str, Any]] = []
    for step in range(s.steps):
        for attempt in range(1, s.verify.max_attempts + 1):
            for repeat in range(2 if replayed else 1):
                answer = model_answer(decide(model, run_id, step, attempt, repeat))
                rows.append(
                    {
                        "seq": len(rows) + 1,
                        "run_id": run_id,
                        "step": step,
                        "attempt": attempt,
                        "status": 200,
                        "repeat": repeat,
                        "tokens_in": 7,
                        "tokens_out": 3,
                        "response": json.dumps(answer),
                    }
                )
    return rows


def test_the_first_recorded_answer_is_the_expected_decision() -> None:
    s = scenario()
    recorded = RecordedDecisions.from_calls(s, calls_of(s, RUN, MODEL_SEED, replayed=True))
    model = s.model_copy(update={"seed": MODEL_SEED})
    assert recorded.decision(RUN, 0, 1) == decide(model, RUN, 0, 1)
    assert recorded.decision(RUN, 0, 1) != decide(s, RUN, 0, 1)
    assert recorded.differing_replays[RUN] == s.steps * s.verify.max_attempts
    assert recorded.decision("run-000009", 0, 1) is None


def test_the_oracle_follows_the_recorded_decisions_with_the_workload_tool_outputs() -> None:
    s = scenario()
    recorded = RecordedDecisions.from_calls(s, calls_of(s, RUN, MODEL_SEED))
    oracle = expected_run(s, RUN, recorded)
    assert oracle.known and oracle.invalid is None
    first = oracle.state.steps[0]
    decision = recorded.decision(RUN, 0, first.attempts)
    assert isinstance(decision, Decision)
    assert (first.tool, first.arguments) == (decision.tool, decision.arguments)
    assert first.output == tool_output(s, RUN, 0, first.attempts, first.tool, first.arguments)
    assert oracle.state != expected_run(s, RUN).state  # the seed alone would be wrong
    assert recorded.tokens_of(RUN, oracle.asked) == 10 * oracle.llm_calls


def test_an_oracle_whose_decisions_end_early_judges_only_what_it_knows() -> None:
    s = scenario(failure_probability=0.0)
    calls = [c for c in calls_of(s, RUN, MODEL_SEED) if c["step"] < 2]
    oracle = expected_run(s, RUN, RecordedDecisions.from_calls(s, calls))
    assert not oracle.known
    assert [step.index for step in oracle.state.steps] == [0, 1]
    lost = check_run(
        RunEvidence(oracle, PersistedRun(RUN, None), (), frozenset({0}), finished_in_time=False)
    )
    assert lost["complete"].valid is False  # lost is incomplete whatever the model says
    assert lost["state_match"].valid is False
    assert lost["no_lost_step"].valid is False


def test_a_first_answer_that_is_no_tool_call_makes_the_run_invalid_not_anomalous() -> None:
    s = scenario()
    calls = calls_of(s, RUN, MODEL_SEED)
    text = {"choices": [{"message": {"role": "assistant", "content": "I cannot help"}}]}
    calls[0]["response"] = json.dumps(text)
    oracle = expected_run(s, RUN, RecordedDecisions.from_calls(s, calls))
    assert oracle.invalid == InvalidDecision(0, 1, oracle.invalid.reason if oracle.invalid else "")
    assert "no tool call" in (oracle.invalid.reason if oracle.invalid else "")

    persisted = [{"run_id": RUN, "state": None, "finished_in_time": False}]
    rows = judge_runs(s, "b", persisted, [], _no_steps(), calls)
    assert rows[0]["invalid_decision"].startswith("step 0 attempt 1: no tool call")
    assert rows[0]["state_match"] is None
    summary = summarize(pd.DataFrame(rows), _no_steps(), {"b": 1.0})["b"]
    assert summary["invalid_decisions"]["runs"] == 1
    assert summary["runs"] == 0
    assert summary["result"] != "fail"


def test_decision_of_names_what_is_wrong_with_an_answer() -> None:
    s = scenario()
    wrong_tool = model_answer(Decision("launch_missiles", {}, ""))
    for answer, reason in (
        ({}, "not a chat completion"),
        (wrong_tool, "not one of the scenario's tools"),
    ):
        try:
            decision_of(s, answer)
        except Exception as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(f"{answer} was accepted")


def test_a_kept_decision_other_than_the_first_answer_is_a_state_mismatch() -> None:
    """A backend that asked again after a crash and kept the replayed answer: the state
    differs from the first recorded decision (decision divergence), field by field."""
    s = scenario()
    recorded = RecordedDecisions.from_calls(s, calls_of(s, RUN, MODEL_SEED, replayed=True))
    oracle = expected_run(s, RUN, recorded)
    replayed = decide(s.model_copy(update={"seed": MODEL_SEED}), RUN, 0, 1, 1)
    kept = replace(oracle.state.steps[0], arguments=replayed.arguments)
    state = replace(oracle.state, steps=(kept, *oracle.state.steps[1:]))
    verdicts = check_run(
        RunEvidence(oracle, PersistedRun(RUN, state), (), frozenset(), finished_in_time=True)
    )
    assert verdicts["state_match"].valid is False
    paths = [d["path"] for d in verdicts["state_match"].detail["diffs"]]
    assert any(p.startswith("steps[0].arguments") for p in paths)


def _no_steps() -> pd.DataFrame:
    return pd.DataFrame(
        columns=["run_id", "step", "attempt", "phase", "outcome", "worker", "start", "end"]
    )


def test_an_answer_lost_before_anything_was_done_with_it_yields_to_the_one_acted_on() -> None:
    """A worker killed between the model's answer and its commit asks again: the first
    answer was never acted on (no applied effect carries it), so the answer whose effect
    the ledger applied is the expected one. Asking again is lost work, not lost state."""
    s = scenario()
    calls = calls_of(s, RUN, MODEL_SEED, replayed=True)
    replayed = RecordedDecisions.from_calls(s, calls).first  # (first answers, as a check)
    model = s.model_copy(update={"seed": MODEL_SEED})
    second = decide(model, RUN, 0, 1, 1)
    acted = [(RUN, 0, 1, second.tool, digest(second.arguments))]
    recorded = RecordedDecisions.from_calls(s, calls, acted)
    assert recorded.decision(RUN, 0, 1) == second != replayed[(RUN, 0, 1)]
    assert recorded.decision(RUN, 1, 1) == replayed[(RUN, 1, 1)]  # nothing acted: the first
    assert recorded.differing_replays[RUN] == s.steps * s.verify.max_attempts
