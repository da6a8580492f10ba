"""The workload and the oracle as a specification: pure, seeded, and statistically
what the scenario asks for."""

from __future__ import annotations

import random
from typing import Any

import pytest

from harness.oracle import expected_run, run_ids
from harness.scenario import (
    ConstantLatency,
    ExponentialLatency,
    LognormalLatency,
    Scenario,
    UniformLatency,
    VerifyPolicy,
    parse_scenario,
)
from harness.workload import (
    decide,
    digest,
    final_answer,
    idempotency_key,
    next_move,
    sample_latency_ms,
    seeded_rng,
    tool_output,
    verify_output,
)

RUN_ID = "run-000001"
CHAIN = ["search_supplier", "get_quotes", "compare_quotes", "check_budget"]


def make_scenario(**overrides: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "w",
        "seed": 5,
        "runs": 40,
        "steps": 6,
        "load": {"concurrency": 1},
        "thought_bytes": 100,
        "tool_mix": {"search_supplier": 1, "reserve_budget": 2, "get_quotes": 1},
        "verify": {"failure_probability": 0.3, "on_failure": "retry_act", "max_attempts": 3},
    }
    data.update(overrides)
    return parse_scenario(data)


# -- decide ---------------------------------------------------------------------------


def test_decide_is_identical_across_calls() -> None:
    scenario = make_scenario()
    for step in range(scenario.steps):
        assert decide(scenario, RUN_ID, step, 1) == decide(scenario, RUN_ID, step, 1)
    assert decide(scenario, RUN_ID, 2, 1) == decide(make_scenario(), RUN_ID, 2, 1)


def test_decide_differs_with_the_seed() -> None:
    one, other = make_scenario(seed=5), make_scenario(seed=6)
    assert decide(one, RUN_ID, 0, 1) != decide(other, RUN_ID, 0, 1)
    assert decide(one, RUN_ID, 0, 1).arguments != decide(other, RUN_ID, 0, 1).arguments


def test_decide_differs_with_run_step_and_attempt() -> None:
    scenario = make_scenario()
    base = decide(scenario, RUN_ID, 1, 1)
    assert decide(scenario, "run-000002", 1, 1).arguments != base.arguments
    assert decide(scenario, RUN_ID, 2, 1).arguments != base.arguments
    assert decide(scenario, RUN_ID, 1, 2).arguments != base.arguments


def test_a_tool_chain_scenario_picks_the_chain_tool_for_each_step() -> None:
    scenario = make_scenario(tool_mix=None, tool_chain=CHAIN, steps=len(CHAIN))
    for step, tool in enumerate(CHAIN):
        for attempt in (1, 2, 3):
            assert decide(scenario, RUN_ID, step, attempt).tool == tool


def test_a_tool_mix_scenario_picks_only_mix_tools_roughly_by_weight() -> None:
    scenario = make_scenario()
    picks = [decide(scenario, f"run-{i:06d}", 0, 1).tool for i in range(2000)]
    assert set(picks) == {"search_supplier", "reserve_budget", "get_quotes"}
    share = picks.count("reserve_budget") / len(picks)  # weight 2 of 4
    assert 0.45 < share < 0.55


def test_a_zero_weight_tool_is_never_picked() -> None:
    scenario = make_scenario(tool_mix={"search_supplier": 1, "get_quotes": 0})
    assert {decide(scenario, f"run-{i:06d}", 0, 1).tool for i in range(300)} == {"search_supplier"}


@pytest.mark.parametrize("size", [0, 1, 10, 100, 4096])
def test_thought_has_exactly_thought_bytes_characters(size: int) -> None:
    scenario = make_scenario(thought_bytes=size)
    for step in range(3):
        assert len(decide(scenario, RUN_ID, step, 1).thought) == size


def test_decision_arguments_are_json_shaped() -> None:
    arguments = decide(make_scenario(), RUN_ID, 0, 1).arguments
    assert set(arguments) == {"item", "quantity", "amount_cents", "counterparty"}
    assert 1 <= arguments["quantity"] <= 50
    assert 100 <= arguments["amount_cents"] < 1_000_000


# -- tool_output and verify -----------------------------------------------------------


def test_tool_output_is_a_pure_function() -> None:
    scenario = make_scenario()
    decision = decide(scenario, RUN_ID, 0, 1)
    first = tool_output(scenario, RUN_ID, 0, 1, decision.tool, decision.arguments)
    assert first == tool_output(scenario, RUN_ID, 0, 1, decision.tool, decision.arguments)
    assert first["request_digest"] == digest(decision.arguments)
    assert first["amount_cents"] == decision.arguments["amount_cents"]


def test_tool_output_rejects_with_roughly_the_failure_probability() -> None:
    scenario = make_scenario(verify={"failure_probability": 0.2})
    statuses = [
        tool_output(scenario, f"run-{i:06d}", i % 7, 1 + i % 3, "get_quotes", {})["status"]
        for i in range(2000)
    ]
    assert set(statuses) == {"ok", "rejected"}
    assert 0.15 <= statuses.count("rejected") / len(statuses) <= 0.25


def test_tool_output_never_rejects_at_failure_probability_zero() -> None:
    scenario = make_scenario(verify={"failure_probability": 0.0})
    assert all(
        tool_output(scenario, f"run-{i:06d}", 0, 1, "get_quotes", {})["status"] == "ok"
        for i in range(500)
    )


def _honest(scenario: Scenario) -> tuple[Any, dict[str, Any]]:
    for step in range(100):
        decision = decide(scenario, RUN_ID, step, 1)
        output = tool_output(scenario, RUN_ID, step, 1, decision.tool, decision.arguments)
        if output["status"] == "ok":
            return decision, output
    raise AssertionError("no accepted output in 100 steps")


def test_verify_accepts_the_honest_output() -> None:
    decision, output = _honest(make_scenario())
    assert verify_output(decision, output)


def test_verify_rejects_output_for_changed_arguments() -> None:
    decision, output = _honest(make_scenario())
    tampered = {**decision.arguments, "quantity": decision.arguments["quantity"] + 1}
    assert not verify_output(decision, {**output, "request_digest": digest(tampered)})


def test_verify_rejects_output_from_another_tool() -> None:
    decision, output = _honest(make_scenario())
    assert not verify_output(decision, {**output, "tool": "notify_requester"})


def test_verify_rejects_a_rejected_status() -> None:
    decision, output = _honest(make_scenario())
    assert not verify_output(decision, {**output, "status": "rejected"})


def test_verify_rejects_an_empty_output() -> None:
    decision, _ = _honest(make_scenario())
    assert not verify_output(decision, {})


def test_digest_ignores_key_order() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


# -- the step policy ------------------------------------------------------------------


@pytest.mark.parametrize("on_failure", ["retry_act", "replan"])
def test_next_move_commits_a_verified_attempt(on_failure: str) -> None:
    policy = VerifyPolicy(on_failure=on_failure, max_attempts=3)  # type: ignore[arg-type]
    for attempt in (1, 2, 3):
        assert next_move(policy, True, attempt) == "commit"


@pytest.mark.parametrize("on_failure", ["retry_act", "replan"])
def test_next_move_follows_on_failure_below_max_attempts(on_failure: str) -> None:
    policy = VerifyPolicy(on_failure=on_failure, max_attempts=3)  # type: ignore[arg-type]
    assert next_move(policy, False, 1) == on_failure
    assert next_move(policy, False, 2) == on_failure


def test_next_move_aborts_at_max_attempts() -> None:
    policy = VerifyPolicy(on_failure="replan", max_attempts=3)
    assert next_move(policy, False, 3) == "abort"
    assert next_move(VerifyPolicy(max_attempts=1), False, 1) == "abort"


def test_idempotency_key_is_stable_and_distinct_per_attempt() -> None:
    assert idempotency_key(RUN_ID, 2, 1) == idempotency_key(RUN_ID, 2, 1)
    keys = {idempotency_key(RUN_ID, s, a) for s in range(5) for a in range(1, 4)}
    assert len(keys) == 15


# -- latency models -------------------------------------------------------------------


def test_seeded_rng_depends_only_on_its_arguments() -> None:
    assert seeded_rng(1, "x", 2).random() == seeded_rng(1, "x", 2).random()
    assert seeded_rng(1, "x", 2).random() != seeded_rng(1, "x", 3).random()


def test_constant_latency_is_constant() -> None:
    rng = random.Random(1)
    assert {sample_latency_ms(ConstantLatency(ms=7.5), rng) for _ in range(50)} == {7.5}
    assert sample_latency_ms(ConstantLatency(), rng) == 0.0


def test_uniform_latency_stays_within_its_bounds() -> None:
    model = UniformLatency(distribution="uniform", low_ms=3, high_ms=9)
    rng = random.Random(2)
    draws = [sample_latency_ms(model, rng) for _ in range(1000)]
    assert all(3 <= d <= 9 for d in draws)
    assert min(draws) < 4 and max(draws) > 8


def test_exponential_latency_is_capped_by_max_ms() -> None:
    model = ExponentialLatency(distribution="exponential", mean_ms=50, max_ms=60)
    rng = random.Random(3)
    draws = [sample_latency_ms(model, rng) for _ in range(1000)]
    assert all(0 <= d <= 60 for d in draws)
    assert draws.count(60) > 0


def test_lognormal_latency_is_capped_by_max_ms_and_centred_on_the_median() -> None:
    model = LognormalLatency(distribution="lognormal", median_ms=40, sigma=1.0, max_ms=100)
    rng = random.Random(4)
    draws = sorted(sample_latency_ms(model, rng) for _ in range(2001))
    assert all(0 < d <= 100 for d in draws)
    assert draws.count(100) > 0
    assert 32 < draws[1000] < 48


def test_lognormal_latency_without_a_cap_can_exceed_ten_medians() -> None:
    model = LognormalLatency(distribution="lognormal", median_ms=10, sigma=2.0)
    rng = random.Random(5)
    assert max(sample_latency_ms(model, rng) for _ in range(2000)) > 100


# -- the oracle -----------------------------------------------------------------------


def test_the_oracle_is_deterministic() -> None:
    scenario = make_scenario()
    assert expected_run(scenario, RUN_ID) == expected_run(make_scenario(), RUN_ID)


def test_run_ids_are_one_per_run() -> None:
    scenario = make_scenario(runs=3)
    assert run_ids(scenario) == ["run-000000", "run-000001", "run-000002"]


def test_without_failures_every_step_takes_one_attempt_and_the_run_completes() -> None:
    scenario = make_scenario(verify={"failure_probability": 0.0})
    for run_id in run_ids(scenario):
        oracle = expected_run(scenario, run_id)
        state = oracle.state
        assert state.status == "completed"
        assert len(state.steps) == scenario.steps
        assert all(s.attempts == 1 and s.verdicts == (True,) for s in state.steps)
        assert [s.index for s in state.steps] == list(range(scenario.steps))
        assert state.final_answer == final_answer(run_id, [s.output for s in state.steps])
        assert oracle.llm_calls == scenario.steps
        assert oracle.effects == tuple((step, 1) for step in range(scenario.steps))


def test_the_oracle_steps_are_what_the_workload_functions_produce() -> None:
    scenario = make_scenario()
    for step in expected_run(scenario, RUN_ID).state.steps:
        decision = decide(scenario, RUN_ID, step.index, 1)  # retry_act keeps the decision
        assert (step.tool, step.arguments, step.thought) == (
            decision.tool,
            decision.arguments,
            decision.thought,
        )
        assert step.output == tool_output(
            scenario, RUN_ID, step.index, step.attempts, step.tool, step.arguments
        )
        assert len(step.verdicts) == step.attempts
        assert all(not v for v in step.verdicts[:-1])


def test_retry_act_calls_the_llm_once_per_step_and_the_tool_once_per_attempt() -> None:
    scenario = make_scenario(verify={"failure_probability": 0.3, "on_failure": "retry_act"})
    retried = 0
    for run_id in run_ids(scenario):
        oracle = expected_run(scenario, run_id)
        assert oracle.llm_calls == len(oracle.state.steps)
        assert oracle.tool_calls == sum(s.attempts for s in oracle.state.steps)
        retried += sum(s.attempts > 1 for s in oracle.state.steps)
    assert retried > 0


def test_replan_counts_one_more_llm_call_per_failed_verify() -> None:
    scenario = make_scenario(
        verify={"failure_probability": 0.3, "on_failure": "replan", "max_attempts": 3}
    )
    runs_with_replans = 0
    for run_id in run_ids(scenario):
        oracle = expected_run(scenario, run_id)
        steps = oracle.state.steps
        assert oracle.llm_calls == sum(s.attempts for s in steps)
        if any(False in s.verdicts and s.attempts > 1 for s in steps):
            assert oracle.llm_calls > len(steps)
            runs_with_replans += 1
    assert runs_with_replans > 0


def test_replan_commits_the_last_decision() -> None:
    scenario = make_scenario(
        verify={"failure_probability": 0.3, "on_failure": "replan", "max_attempts": 3}
    )
    replanned = [
        (run_id, step)
        for run_id in run_ids(scenario)
        for step in expected_run(scenario, run_id).state.steps
        if step.attempts > 1
    ]
    assert replanned
    for run_id, step in replanned:
        last = decide(scenario, run_id, step.index, step.attempts)
        assert (step.tool, step.arguments, step.thought) == (
            last.tool,
            last.arguments,
            last.thought,
        )


def test_a_verify_that_always_fails_aborts_the_run() -> None:
    scenario = make_scenario(verify={"failure_probability": 0.99, "max_attempts": 1})
    oracle = expected_run(scenario, RUN_ID)
    assert oracle.state.status == "aborted"
    assert oracle.state.final_answer is None
    last = oracle.state.steps[-1]
    assert last.verdicts == (False,)
    assert last.output["status"] == "rejected"
    assert len(oracle.state.steps) < scenario.steps


def test_an_aborted_run_stops_at_the_failing_step() -> None:
    scenario = make_scenario(verify={"failure_probability": 0.5, "max_attempts": 2})
    aborted = [expected_run(scenario, r) for r in run_ids(scenario)]
    aborted = [o for o in aborted if o.state.status == "aborted"]
    assert aborted
    for oracle in aborted:
        *committed, last = oracle.state.steps
        assert all(s.verdicts[-1] for s in committed)
        assert last.verdicts == (False, False)
        assert last.attempts == 2


def test_an_approval_that_never_comes_expires_after_its_step() -> None:
    scenario = make_scenario(
        verify={"failure_probability": 0.0},
        approval={"after_step": 2, "delay_s": None, "ttl_s": 0.5},
    )
    for run_id in run_ids(scenario)[:5]:
        state = expected_run(scenario, run_id).state
        assert state.status == "expired"
        assert len(state.steps) == 3
        assert state.final_answer is None


def test_an_approval_that_comes_does_not_change_the_outcome() -> None:
    plain = make_scenario()
    approved = make_scenario(approval={"after_step": 2, "delay_s": 0.1, "ttl_s": 1})
    for run_id in run_ids(plain)[:5]:
        assert expected_run(approved, run_id) == expected_run(plain, run_id)
