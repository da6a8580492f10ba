"""The checker as a specification: a perfect history passes every verdict, and for
every verdict there is a hand-built history that must fail it."""

from __future__ import annotations

import dataclasses
from types import EllipsisType
from typing import Any

import pytest

from harness.checker import (
    VERDICTS,
    FieldDiff,
    RunEvidence,
    Verdict,
    check_run,
    combine,
    diff_states,
    run_passed,
)
from harness.oracle import OracleRun, expected_run
from harness.scenario import Scenario, parse_scenario
from harness.state import LedgerEntry, PersistedRun, RunState, StepRecord
from harness.workload import decide, idempotency_key, tool_output

RUN_ID = "run-000001"


def make_scenario(seed: int = 7, **overrides: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "t",
        "seed": seed,
        "runs": 3,
        "steps": 5,
        "load": {"concurrency": 1},
        "tool_chain": ["a", "b", "c"],
        "verify": {"failure_probability": 0.3, "on_failure": "retry_act", "max_attempts": 3},
    }
    data.update(overrides)
    return parse_scenario(data)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return make_scenario()


@pytest.fixture(scope="module")
def oracle(scenario: Scenario) -> OracleRun:
    return expected_run(scenario, RUN_ID)


def entry(
    scenario: Scenario,
    step: int,
    attempt: int,
    *,
    seq: int,
    applied: bool = True,
    key: str | None = None,
) -> LedgerEntry:
    """The ledger entry a perfect tool service records for one execution (retry_act:
    every attempt of a step replays the first decision)."""
    decision = decide(scenario, RUN_ID, step, 1)
    response = tool_output(scenario, RUN_ID, step, attempt, decision.tool, decision.arguments)
    key = key or idempotency_key(RUN_ID, step, attempt)
    return LedgerEntry(
        seq=seq,
        run_id=RUN_ID,
        step=step,
        attempt=attempt,
        tool=decision.tool,
        idempotency_key=key,
        applied=applied,
        request={
            "run_id": RUN_ID,
            "step": step,
            "attempt": attempt,
            "idempotency_key": key,
            "arguments": decision.arguments,
        },
        response=response,
        started_at=float(seq),
        finished_at=float(seq) + 0.5,
    )


def perfect_ledger(scenario: Scenario, oracle: OracleRun) -> tuple[LedgerEntry, ...]:
    return tuple(entry(scenario, s, a, seq=i) for i, (s, a) in enumerate(oracle.effects))


def evidence_for(
    scenario: Scenario,
    oracle: OracleRun,
    *,
    state: RunState | EllipsisType | None = ...,
    ledger: tuple[LedgerEntry, ...] | None = None,
    committed: frozenset[int] | None = None,
    finished_in_time: bool = True,
) -> RunEvidence:
    """A perfect run's evidence, with any part replaced by a hand-built one
    (`state=...` keeps the oracle's state, `state=None` means nothing persisted)."""
    persisted = oracle.state if isinstance(state, EllipsisType) else state
    return RunEvidence(
        oracle=oracle,
        persisted=PersistedRun(run_id=RUN_ID, state=persisted),
        ledger=perfect_ledger(scenario, oracle) if ledger is None else ledger,
        committed_steps=(
            frozenset(s.index for s in oracle.state.steps) if committed is None else committed
        ),
        finished_in_time=finished_in_time,
    )


def with_steps(state: RunState, steps: tuple[StepRecord, ...], **changes: Any) -> RunState:
    return dataclasses.replace(state, steps=steps, **changes)


def failing(verdicts: dict[str, Verdict]) -> set[str]:
    return {name for name, v in verdicts.items() if v.valid is not True}


# --- the oracle the checker trusts ---------------------------------------------------


def test_oracle_is_deterministic(scenario: Scenario) -> None:
    assert expected_run(scenario, RUN_ID) == expected_run(make_scenario(), RUN_ID)


def test_oracle_depends_on_seed(oracle: OracleRun) -> None:
    assert expected_run(make_scenario(seed=8), RUN_ID).state != oracle.state


def test_fixture_scenario_exercises_retries(oracle: OracleRun) -> None:
    """The fixture is only a good specification if some step needed a retry."""
    assert oracle.state.status == "completed"
    assert len(oracle.state.steps) == 5
    assert any(s.attempts > 1 for s in oracle.state.steps)


# --- a perfect history ---------------------------------------------------------------


def test_perfect_history_passes_every_verdict(scenario: Scenario, oracle: OracleRun) -> None:
    verdicts = check_run(evidence_for(scenario, oracle))
    assert list(verdicts) == list(VERDICTS)
    assert all(v.valid is True for v in verdicts.values()), verdicts
    assert run_passed(verdicts)


def test_perfect_history_detail_counts(scenario: Scenario, oracle: OracleRun) -> None:
    detail = check_run(evidence_for(scenario, oracle))["effects_exactly_once"].detail
    n = len(oracle.effects)
    assert detail["raw_executions"] == detail["applied"] == detail["expected"] == n
    assert detail["deduplicated_retries"] == 0
    assert detail["duplicated"] == []


def test_backend_namespaced_run_id_is_not_a_diff(oracle: OracleRun) -> None:
    renamed = dataclasses.replace(oracle.state, run_id="pg/" + RUN_ID)
    assert diff_states(oracle.state, renamed) == []


# --- complete ------------------------------------------------------------------------


def test_still_running_is_not_complete(scenario: Scenario, oracle: OracleRun) -> None:
    running = dataclasses.replace(oracle.state, status="running", final_answer=None)
    verdict = check_run(evidence_for(scenario, oracle, state=running))["complete"]
    assert verdict.valid is False
    assert verdict.detail["expected"] == "completed"
    assert verdict.detail["actual"] == "running"


def test_finishing_after_the_deadline_is_not_complete(
    scenario: Scenario, oracle: OracleRun
) -> None:
    verdicts = check_run(evidence_for(scenario, oracle, finished_in_time=False))
    assert failing(verdicts) == {"complete"}
    assert verdicts["complete"].detail["finished_in_time"] is False


def test_wrong_terminal_status_is_not_complete(scenario: Scenario, oracle: OracleRun) -> None:
    aborted = dataclasses.replace(oracle.state, status="aborted")
    assert check_run(evidence_for(scenario, oracle, state=aborted))["complete"].valid is False


def test_nothing_persisted_fails_complete_but_lost_nothing(
    scenario: Scenario, oracle: OracleRun
) -> None:
    """A run that never started lost nothing: only `complete` and `state_match` fail."""
    evidence = evidence_for(scenario, oracle, state=None, ledger=(), committed=frozenset())
    verdicts = check_run(evidence)
    assert failing(verdicts) == {"complete", "state_match"}
    assert verdicts["state_match"].detail["diffs"] == [
        {"path": "", "expected": "<state>", "actual": None}
    ]
    assert not run_passed(verdicts)


# --- state_match ---------------------------------------------------------------------


def test_diverged_output_field_is_named(scenario: Scenario, oracle: OracleRun) -> None:
    steps = list(oracle.state.steps)
    steps[1] = dataclasses.replace(steps[1], output={**steps[1].output, "ref": "forged"})
    state = with_steps(oracle.state, tuple(steps))
    verdict = check_run(evidence_for(scenario, oracle, state=state))["state_match"]
    assert verdict.valid is False
    assert verdict.detail["differing"] == 1
    expected_ref = oracle.state.steps[1].output["ref"]
    assert verdict.detail["diffs"] == [
        {"path": "steps[1].output.ref", "expected": expected_ref, "actual": "forged"}
    ]


def test_diff_states_names_every_kind_of_field(oracle: OracleRun) -> None:
    expected = oracle.state
    s0 = expected.steps[0]
    changed = dataclasses.replace(
        s0,
        tool="zzz",
        arguments={**s0.arguments, "quantity": -1},
        thought="other",
        verdicts=(*s0.verdicts, True),
        attempts=s0.attempts + 1,
    )
    actual = with_steps(expected, (changed, *expected.steps[1:]), final_answer="nope")
    paths = {d.path for d in diff_states(expected, actual)}
    assert paths == {
        "final_answer",
        "steps[0].tool",
        "steps[0].arguments.quantity",
        "steps[0].thought",
        "steps[0].verdicts",
        "steps[0].attempts",
    }


def test_missing_and_extra_steps_are_one_diff_each(oracle: OracleRun) -> None:
    expected = oracle.state
    short = with_steps(expected, expected.steps[:-1])
    last = len(expected.steps) - 1
    assert diff_states(expected, short) == [
        FieldDiff(f"steps[{last}]", expected.steps[-1].to_dict(), None)
    ]
    extra = dataclasses.replace(expected.steps[-1], index=last + 1)
    long = with_steps(expected, (*expected.steps, extra))
    assert diff_states(expected, long) == [FieldDiff(f"steps[{last + 1}]", None, extra.to_dict())]


# --- no_lost_step --------------------------------------------------------------------


def test_gap_in_the_middle_is_a_lost_step(scenario: Scenario, oracle: OracleRun) -> None:
    steps = tuple(s for s in oracle.state.steps if s.index != 2)
    state = with_steps(oracle.state, steps)
    verdict = check_run(evidence_for(scenario, oracle, state=state))["no_lost_step"]
    assert verdict.valid is False
    assert verdict.detail["lost"] == 1
    assert verdict.detail["first_lost"] == [2]


def test_committed_step_missing_at_the_end_of_a_running_run(
    scenario: Scenario, oracle: OracleRun
) -> None:
    """The worker acknowledged steps 0..2, the store only has 0..1."""
    state = with_steps(oracle.state, oracle.state.steps[:2], status="running", final_answer=None)
    evidence = evidence_for(scenario, oracle, state=state, committed=frozenset({0, 1, 2}))
    verdict = check_run(evidence)["no_lost_step"]
    assert verdict.valid is False
    assert verdict.detail["first_lost"] == [2]


def test_running_run_with_every_committed_step_lost_nothing(
    scenario: Scenario, oracle: OracleRun
) -> None:
    state = with_steps(oracle.state, oracle.state.steps[:3], status="running", final_answer=None)
    evidence = evidence_for(scenario, oracle, state=state, committed=frozenset({0, 1, 2}))
    assert check_run(evidence)["no_lost_step"].valid is True


def test_out_of_order_history_fails_no_lost_step(scenario: Scenario, oracle: OracleRun) -> None:
    steps = list(oracle.state.steps)
    steps[1], steps[2] = steps[2], steps[1]
    state = with_steps(oracle.state, tuple(steps))
    verdict = check_run(evidence_for(scenario, oracle, state=state))["no_lost_step"]
    assert verdict.valid is False
    assert verdict.detail["out_of_order"] is True
    assert verdict.detail["lost"] == 0


# --- no_duplicate_step ---------------------------------------------------------------


def test_duplicated_step_fails(scenario: Scenario, oracle: OracleRun) -> None:
    steps = oracle.state.steps
    state = with_steps(oracle.state, (*steps[:3], steps[2], *steps[3:]))
    verdicts = check_run(evidence_for(scenario, oracle, state=state))
    assert verdicts["no_duplicate_step"].valid is False
    assert verdicts["no_duplicate_step"].detail["indices"] == [2]
    assert verdicts["no_lost_step"].valid is True  # a repeat is not a gap nor a reorder


# --- effects_exactly_once ------------------------------------------------------------


def test_same_effect_applied_under_two_keys_is_a_duplicate(
    scenario: Scenario, oracle: OracleRun
) -> None:
    """Without a stable idempotency key the ledger cannot deduplicate: two applied
    entries for one (step, attempt), whatever their keys, are one effect done twice."""
    ledger = perfect_ledger(scenario, oracle)
    step, attempt = oracle.effects[0]
    again = entry(scenario, step, attempt, seq=len(ledger), key="random-uuid-2")
    verdicts = check_run(evidence_for(scenario, oracle, ledger=(*ledger, again)))
    verdict = verdicts["effects_exactly_once"]
    assert verdict.valid is False
    assert verdict.detail["duplicated"] == [[step, attempt, 2]]
    assert verdict.detail["applied"] == len(oracle.effects) + 1
    assert failing(verdicts) == {"effects_exactly_once"}


def test_deduplicated_retries_are_counted_not_failed(scenario: Scenario, oracle: OracleRun) -> None:
    ledger = perfect_ledger(scenario, oracle)
    retries = tuple(
        entry(scenario, s, a, seq=len(ledger) + i, applied=False)
        for i, (s, a) in enumerate(oracle.effects[:3])
    )
    verdicts = check_run(evidence_for(scenario, oracle, ledger=ledger + retries))
    verdict = verdicts["effects_exactly_once"]
    assert verdict.valid is True
    assert verdict.detail["deduplicated_retries"] == 3
    assert verdict.detail["raw_executions"] == len(oracle.effects) + 3
    assert verdict.detail["applied"] == len(oracle.effects)
    assert run_passed(verdicts)


# --- no_orphan_effect ----------------------------------------------------------------


def test_applied_effect_for_a_missing_step_is_an_orphan(
    scenario: Scenario, oracle: OracleRun
) -> None:
    """The tool ran for step 3 but the run, still in flight, only persisted 0..2."""
    state = with_steps(oracle.state, oracle.state.steps[:3], status="running", final_answer=None)
    ledger = tuple(e for e in perfect_ledger(scenario, oracle) if e.step <= 3)
    evidence = evidence_for(scenario, oracle, state=state, ledger=ledger, committed=frozenset({2}))
    verdict = check_run(evidence)["no_orphan_effect"]
    assert verdict.valid is False
    assert verdict.detail["orphans"] == sum(1 for s, _ in oracle.effects if s == 3)
    assert verdict.detail["examples"][0]["step"] == 3


def test_applied_effect_for_a_later_attempt_is_an_orphan(
    scenario: Scenario, oracle: OracleRun
) -> None:
    step = oracle.state.steps[0]
    stray = entry(scenario, step.index, step.attempts + 1, seq=999)
    ledger = (*perfect_ledger(scenario, oracle), stray)
    verdict = check_run(evidence_for(scenario, oracle, ledger=ledger))["no_orphan_effect"]
    assert verdict.valid is False
    assert verdict.detail["examples"] == [
        {"step": 0, "attempt": step.attempts + 1, "key": stray.idempotency_key}
    ]


# --- ledger_agrees -------------------------------------------------------------------


def test_stored_output_differing_from_ledger_fails(scenario: Scenario, oracle: OracleRun) -> None:
    """The ledger answered one thing, the store kept another (here both the oracle and
    the persisted output agree on a forged ref, so only the ledger can tell)."""
    ledger = list(perfect_ledger(scenario, oracle))
    last = max(i for i, e in enumerate(ledger) if e.step == 4)
    ledger[last] = dataclasses.replace(ledger[last], response={**ledger[last].response, "ref": "x"})
    verdicts = check_run(evidence_for(scenario, oracle, ledger=tuple(ledger)))
    verdict = verdicts["ledger_agrees"]
    assert verdict.valid is False
    assert verdict.detail["mismatches"] == 1
    example = verdict.detail["examples"][0]
    assert example["step"] == 4
    assert example["stored"] == oracle.state.steps[4].output
    assert example["ledger"]["ref"] == "x"
    assert failing(verdicts) == {"ledger_agrees"}


def test_missing_ledger_entry_fails(scenario: Scenario, oracle: OracleRun) -> None:
    step = oracle.state.steps[1]
    ledger = tuple(
        e
        for e in perfect_ledger(scenario, oracle)
        if (e.step, e.attempt) != (step.index, step.attempts)
    )
    verdict = check_run(evidence_for(scenario, oracle, ledger=ledger))["ledger_agrees"]
    assert verdict.valid is False
    assert verdict.detail["examples"][0]["step"] == 1
    assert verdict.detail["examples"][0]["ledger"] is None


def test_non_applied_entry_does_not_count_as_ledger_agreement(
    scenario: Scenario, oracle: OracleRun
) -> None:
    ledger = tuple(
        dataclasses.replace(e, applied=False) if e.step == 0 else e
        for e in perfect_ledger(scenario, oracle)
    )
    verdict = check_run(evidence_for(scenario, oracle, ledger=ledger))["ledger_agrees"]
    assert verdict.valid is False


# --- a crashing check ----------------------------------------------------------------


def test_crashing_check_is_unknown_never_a_pass(scenario: Scenario, oracle: OracleRun) -> None:
    """A malformed persisted step (arguments None) makes state_match crash: that check
    is unknown, the others still run, and the run does not pass."""
    steps = list(oracle.state.steps)
    steps[0] = dataclasses.replace(steps[0], arguments=None)  # type: ignore[arg-type]
    state = with_steps(oracle.state, tuple(steps))
    verdicts = check_run(evidence_for(scenario, oracle, state=state))
    assert verdicts["state_match"].valid is None
    assert "error" in verdicts["state_match"].detail
    assert list(verdicts) == list(VERDICTS)
    others = [name for name in VERDICTS if name not in ("state_match", "decisions_agree")]
    assert all(verdicts[name].valid is True for name in others)
    assert verdicts["decisions_agree"].valid is False  # None is not the applied arguments
    assert not run_passed(verdicts)


def test_a_kept_decision_that_is_not_the_applied_one_disagrees(
    scenario: Scenario, oracle: OracleRun
) -> None:
    """A re-run reason call answered differently: history keeps the new decision while
    the ledger holds the effect of the old one."""
    steps = list(oracle.state.steps)
    changed = {**steps[2].arguments, "quantity": steps[2].arguments["quantity"] + 1}
    steps[2] = dataclasses.replace(steps[2], arguments=changed)
    verdicts = check_run(
        evidence_for(scenario, oracle, state=with_steps(oracle.state, tuple(steps)))
    )
    assert verdicts["decisions_agree"].valid is False
    (example,) = verdicts["decisions_agree"].detail["examples"]
    assert example["step"] == 2 and example["kept"]["arguments"] == changed


# --- composition ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], True),
        ([True, True], True),
        ([True, None], None),
        ([None, True, None], None),
        ([True, False], False),
        ([None, False], False),
        ([False, None, True], False),
    ],
)
def test_combine_false_beats_unknown_beats_true(
    values: list[bool | None], expected: bool | None
) -> None:
    assert combine(values) is expected


def test_run_passed_needs_every_verdict_true() -> None:
    ok = Verdict("a", True, {})
    assert run_passed({"a": ok, "b": Verdict("b", True, {})})
    assert not run_passed({"a": ok, "b": Verdict("b", None, {})})
    assert not run_passed({"a": ok, "b": Verdict("b", False, {})})
    assert not run_passed({})


def test_a_committed_steps_effect_never_applied_is_a_missing_effect(
    scenario: Scenario, oracle: OracleRun
) -> None:
    """Exactly once is also at least once: the history says step 1 happened, the world
    never saw its effect."""
    step = oracle.state.steps[1]
    ledger = tuple(
        e
        for e in perfect_ledger(scenario, oracle)
        if (e.step, e.attempt) != (step.index, step.attempts)
    )
    verdict = check_run(evidence_for(scenario, oracle, ledger=ledger))["effects_exactly_once"]
    assert verdict.valid is False
    assert verdict.detail["missing_effects"] == 1
    assert verdict.detail["missing"] == [[step.index, step.attempts]]
    assert verdict.detail["duplicated_effects"] == 0


def test_a_running_run_owes_only_the_effects_of_the_steps_it_committed(
    scenario: Scenario, oracle: OracleRun
) -> None:
    running = with_steps(oracle.state, oracle.state.steps[:2], status="running")
    ledger = tuple(e for e in perfect_ledger(scenario, oracle) if e.step < 2)
    evidence = evidence_for(
        scenario, oracle, state=running, ledger=ledger, committed=frozenset({0, 1})
    )
    assert check_run(evidence)["effects_exactly_once"].valid is True


def test_non_determinism_fails_a_run_that_completed(scenario: Scenario, oracle: OracleRun) -> None:
    evidence = dataclasses.replace(
        evidence_for(scenario, oracle), nondeterminism=("[TMPRL1100] Nondeterminism error",)
    )
    verdicts = check_run(evidence)
    assert failing(verdicts) == {"no_nondeterminism"}
    assert verdicts["no_nondeterminism"].detail["examples"] == ["[TMPRL1100] Nondeterminism error"]
    assert not run_passed(verdicts)
