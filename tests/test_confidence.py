"""Run until confident: the schedule on a cycle (pure), and on real runs each of the
three ways a run-until-confident stops (the target cleared, an anomaly, the budget),
with the exit code and summary.json saying which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.confidence import EXIT_ANOMALY, EXIT_BUDGET, EXIT_CONFIDENT, Goal, cycled, parse_budget
from harness.errors import DurabenchError
from harness.scenario import load_scenario
from harness.schedule import plan
from tests.conftest import ScenarioFactory
from tests.test_cli import durabench


def test_the_timeline_repeats_with_its_offsets(write_scenario: ScenarioFactory) -> None:
    path = write_scenario(
        faults=[
            {"kind": "pause", "at_s": 0.5, "duration_s": 0.5},
            {"kind": "kill", "at_s": 1.5},
            {"kind": "kill", "after_steps": 10},
            {"kind": "crash_point", "point": "after_act"},
        ]
    )
    scenario = cycled(load_scenario(path), Goal(0.9, budget_s=10.0))
    timeline = plan(scenario.faults, scenario.seed)
    starts = sorted((p.at_s, p.fault.kind) for p in timeline.planned if p.at_s is not None)
    # one cycle spans 0.5 .. 1.5 s; the next begins its lead-in (0.5 s) later: period 2 s
    assert starts[:6] == [
        (0.5, "pause"),
        (1.5, "kill"),
        (2.5, "pause"),
        (3.5, "kill"),
        (4.5, "pause"),
        (5.5, "kill"),
    ]
    assert max(t for t, _ in starts) >= 10.0, "cycles cover the budget"
    steps = sorted(p.after_steps for p in timeline.planned if p.after_steps is not None)
    assert steps[:3] == [10, 30, 50], "step-timed faults recur by committed steps"
    assert [u.fault.kind for u in timeline.untimed] == ["crash_point"], "fires once"


def test_goals_and_budgets_are_validated() -> None:
    assert parse_budget("10m") == 600 and parse_budget("90s") == 90 and parse_budget("2") == 2
    for bad in ("ten", "0", "-5m"):
        with pytest.raises(DurabenchError, match="bad --budget"):
            parse_budget(bad)
    with pytest.raises(DurabenchError, match="needs a budget"):
        Goal(0.99)
    with pytest.raises(DurabenchError, match="strictly between 0 and 1"):
        Goal(1.0, max_runs=10)
    assert Goal(0.999, budget_s=60).runs_needed == 2995


# one worker and runs of a few short steps: each pause freezes every run in flight
QUICK = {
    "steps": 3,
    "load": {"concurrency": 4},
    "workers": 1,
    "llm": {"latency": {"distribution": "constant", "ms": 5}},
    "tool_latency": {"distribution": "constant", "ms": 1},
    "verify": {"failure_probability": 0.0, "on_failure": "retry_act", "max_attempts": 3},
}
PAUSE = [{"kind": "pause", "at_s": 0.4, "duration_s": 0.2}]
KILL = [{"kind": "kill", "at_s": 0.4, "restart_delay_s": 0.1}]


def _until(path: Path, out: Path, *options: str) -> tuple[int, dict[str, object], str]:
    done = durabench("run", str(path), "-b", "baseline", "--out", str(out), *options)
    assert "Traceback" not in done.stderr, done.stderr
    summary = json.loads(((out / "latest").resolve() / "summary.json").read_text())
    return done.returncode, summary["baseline"]["until_integrity"], done.stdout


@pytest.mark.integration
def test_it_stops_when_the_lower_bound_clears_the_target(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(**QUICK, faults=PAUSE)
    code, until, stdout = _until(
        path, tmp_path, "--until-integrity", "0.5", "--budget", "60s", "--max-runs", "400"
    )
    assert code == EXIT_CONFIDENT, stdout
    assert until["stopped"] == "confident" and until["lower_bound"] >= 0.5
    assert until["exposed_runs"] >= 5 and until["runs"] < 400, "it stopped early"
    assert "established: integrity >= 0.5 at 95%" in stdout


@pytest.mark.integration
def test_it_stops_at_the_first_anomaly(write_scenario: ScenarioFactory, tmp_path: Path) -> None:
    path = write_scenario(**QUICK, faults=KILL)  # the baseline loses what a kill hits
    code, until, stdout = _until(path, tmp_path, "--until-integrity", "0.99", "--budget", "60s")
    assert code == EXIT_ANOMALY, stdout
    assert until["stopped"] == "anomaly" and until["stopped_load"] == "anomaly"
    assert "refuted: an anomaly was found" in stdout


@pytest.mark.integration
def test_it_stops_when_the_budget_is_spent(write_scenario: ScenarioFactory, tmp_path: Path) -> None:
    path = write_scenario(**QUICK, faults=PAUSE)
    code, until, stdout = _until(path, tmp_path, "--until-integrity", "0.999", "--max-runs", "12")
    assert code == EXIT_BUDGET, stdout
    assert until["stopped"] == "budget" and until["runs"] == 12
    assert until["lower_bound"] < 0.999 and until["runs_needed"] == 2995
    assert "not established: the budget was spent" in stdout


PGSTORE = "pgstore?lease_s=1"  # a killed worker's runs are taken over within a second


@pytest.mark.integration
@pytest.mark.slow  # a few hundred runs under recurring kills
def test_backends_that_stop_at_different_counts_re_judge_with_check(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """Each backend stops on its own goal: the results record the runs each one started,
    so `durabench check` re-judges them without calling the early stopper truncated."""
    # a kill early in each cycle stops the baseline at its first loss; a short pause late
    # in the cycle spaces the kills out, so pgstore's restarted worker moves its runs on
    faults = [{**KILL[0], "at_s": 0.1}, {**PAUSE[0], "at_s": 3.0, "duration_s": 0.1}]
    slower = {**QUICK, "llm": {"latency": {"distribution": "constant", "ms": 50}}}
    path = write_scenario(**slower, faults=faults)
    options = ("--until-integrity", "0.999", "--max-runs", "120", "--budget", "90s")
    done = durabench(
        "run", str(path), "-b", "baseline", "-b", PGSTORE, "--out", str(tmp_path), *options
    )
    assert "Traceback" not in done.stderr, done.stderr
    results = (tmp_path / "latest").resolve()
    started = json.loads((results / "manifest.json").read_text())["until_integrity"]["started"]
    assert started["baseline"] < started[PGSTORE], started  # its anomaly stopped it first
    checked = durabench("check", str(results))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "verdicts reproduced" in checked.stdout
