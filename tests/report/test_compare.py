"""`compare` on real runs: two runs of the same code pass the gate, a run whose LLM is
100 ms slower per call fails it, and a bad expression is refused with exit code 2.

The LLM latency is a constant 50 ms in the baseline runs so that a step's time is
dominated by it: same-code noise on a loaded machine (a few ms of orchestration) stays
far below the 50% gate, while +100 ms per step (about +150%) is far above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.compare import (
    METRICS,
    ThresholdError,
    bootstrap_ci,
    compare,
    compare_sets,
    parse_threshold,
)
from harness.errors import DurabenchError
from harness.report import load_results
from tests.report.conftest import Runs, run, write_scenario

pytestmark = pytest.mark.integration

GATE = {
    "runs": 8,
    "steps": 5,
    "load": {"concurrency": 4},
    "tool_latency": {"distribution": "constant", "ms": 2},
}


@dataclass(frozen=True)
class GateRuns:
    first: Path
    second: Path  # the same code again
    slower: Path  # the LLM answers 100 ms later


@pytest.fixture(scope="session")
async def gate_runs(tmp_path_factory: pytest.TempPathFactory) -> GateRuns:
    root = tmp_path_factory.mktemp("gate")

    def scenario(file: str, llm_ms: float) -> Path:
        llm = {"latency": {"distribution": "constant", "ms": llm_ms}}
        return write_scenario(root, "gate", **GATE, llm=llm).rename(root / f"{file}.yaml")

    same = scenario("same", 50)
    slower = scenario("slower", 150)
    return GateRuns(
        await run(same, ["baseline"], root / "results"),
        await run(same, ["baseline"], root / "results"),
        await run(slower, ["baseline"], root / "results"),
    )


def test_two_runs_of_the_same_code_pass(gate_runs: GateRuns) -> None:
    result = compare(
        gate_runs.first, gate_runs.second, ["p50:50%", "integrity:0", "wasted_llm_calls:0"]
    )
    assert result.failures == []
    assert result.exit_code == 0
    table = result.table.set_index("metric")
    assert set(METRICS) == set(table.index)
    assert table.loc["p50", "status"] == "ok" and table.loc["integrity", "status"] == "ok"
    assert table.loc["integrity", "baseline"] == table.loc["integrity", "candidate"] == 1.0


def test_an_injected_regression_fails_the_gate(gate_runs: GateRuns) -> None:
    result = compare(gate_runs.first, gate_runs.slower, ["p50:50%", "integrity:0"])
    assert result.exit_code == 1
    (failure,) = result.failures
    assert failure.startswith("p50:50%: baseline") and "step latency p50" in failure
    p50 = result.table.set_index("metric").loc["p50"]
    assert p50["status"] == "REGRESSION"
    assert p50["change"] > 0.5
    assert p50["ci_low"] > 0, "the interval of the difference excludes no change"
    assert p50["significant"]
    assert "REGRESSION" in result.to_text()
    # the same regression, told in absolute terms and scoped to the backend
    assert compare(gate_runs.first, gate_runs.slower, ["p50@baseline:20ms"]).exit_code == 1
    # a gate on a metric that did not get worse still passes
    assert compare(gate_runs.first, gate_runs.slower, ["integrity:0"]).exit_code == 0


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("p99", "expected METRIC[@BACKEND]:LIMIT"),
        ("latency:10%", "unknown metric 'latency'"),
        ("p99:ten%", "expected METRIC[@BACKEND]:LIMIT"),
        ("p99:-10%", "write p99:10%"),
        ("steps_per_s:+10%", "write steps_per_s:10%"),
        ("integrity:1ms", "integrity is in fraction, not ms"),
        ("p99@temporl:10%", "no backend 'temporl'"),
    ],
)
def test_a_bad_expression_exits_2_naming_it(
    gate_runs: GateRuns, expression: str, says: str
) -> None:
    result = compare(gate_runs.first, gate_runs.second, ["p50:50%", expression])
    assert result.exit_code == 2
    (message,) = result.failures
    assert repr(expression) in message and says in message
    if "unknown metric" in says or "expected" in says:
        assert all(name in message for name in METRICS), "the valid metrics are listed"


def test_the_threshold_grammar() -> None:
    relative = parse_threshold("p99:10%")
    assert (relative.metric, relative.limit, relative.relative) == ("p99", 0.10, True)
    absolute = parse_threshold("integrity:0")
    assert (absolute.limit, absolute.relative) == (0.0, False)
    assert parse_threshold("steps_per_s:-10%").limit == pytest.approx(0.10)
    scoped = parse_threshold("overhead@langgraph:sqlite:5ms")
    assert (scoped.backend, scoped.limit, scoped.relative) == ("langgraph:sqlite", 5.0, False)
    assert relative.crossed(worsening=11.0, baseline=100.0)
    assert not relative.crossed(worsening=10.0, baseline=100.0)
    assert absolute.crossed(worsening=0.01, baseline=1.0)
    assert not absolute.crossed(worsening=0.0, baseline=1.0)
    with pytest.raises(ThresholdError):
        parse_threshold("p99:")


def test_results_with_nothing_in_common_cannot_be_compared(runs: Runs, gate_runs: GateRuns) -> None:
    with pytest.raises(DurabenchError, match="nothing to compare"):
        compare_sets(load_results([runs.steady, runs.faulty]), load_results([gate_runs.first]), [])


def test_the_bootstrap_interval_is_reproducible_and_covers_a_known_shift() -> None:
    base = np.random.default_rng(3).exponential(10.0, 400)
    median = lambda a: np.quantile(a, 0.5, axis=1)  # noqa: E731
    interval = bootstrap_ci(base, base + 5.0, median)
    assert interval == bootstrap_ci(base, base + 5.0, median), "fixed seed"
    assert interval[0] < 5.0 < interval[1]
    assert bootstrap_ci(base, base, median)[0] < 0 < bootstrap_ci(base, base, median)[1]


@pytest.mark.parametrize(
    "expression", ["integrity:-1", "integrity:1", "pass_k:2", "steps_per_s:-100%"]
)
def test_a_gate_that_could_never_fail_is_rejected(expression: str) -> None:
    with pytest.raises(ThresholdError, match="could never fail"):
        parse_threshold(expression)


def test_the_largest_meaningful_gates_are_accepted() -> None:
    assert parse_threshold("integrity:-0.5").limit == pytest.approx(0.5)
    assert parse_threshold("steps_per_s:-99%").limit == pytest.approx(0.99)
