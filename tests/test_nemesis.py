"""Every fault class against real processes: it happened, it was healed, it was recorded.

The baseline backend is the target here (it has workers, an LLM link and a tools
link, and no server or store): the faults that need a server or a store are
recorded as skipped for it. Backends with servers test restart and outage in
their own suites.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.healing import process_start_time
from harness.results import ResultsDir
from harness.runner import BenchmarkRun
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent

# ~60 steps of 15 ms each: runs last long enough for faults to land mid-run
SLOW = {
    "runs": 4,
    "steps": 60,
    "load": {"concurrency": 4},
    "verify": {"failure_probability": 0.0},
    "llm": {"latency": {"distribution": "constant", "ms": 10}},
    "tool_latency": {"distribution": "constant", "ms": 5},
}


async def run_with(
    write_scenario: ScenarioFactory, tmp_path: Path, *faults: dict[str, Any], **overrides: Any
) -> tuple[BenchmarkRun, ResultsDir]:
    bench = BenchmarkRun(
        write_scenario(**{**SLOW, **overrides, "faults": list(faults)}),
        ["baseline"],
        tmp_path / "results",
    )
    return bench, await bench.execute()


def fault_rows(results: ResultsDir) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pd.read_parquet(results.path / "faults.parquet").to_dict("records")
    return rows


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


async def test_kill_sigkills_a_worker_and_the_supervisor_restarts_it(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario, tmp_path, {"kind": "kill", "at_s": 0.3, "restart_delay_s": 0.1}
    )
    (row,) = fault_rows(results)
    assert row["outcome"] == "ok" and row["kind"] == "kill"
    assert row["actual_start"] >= row["intended_start"]
    name, pid = row["selected"][0].split(":")
    assert name == "baseline-worker-0"
    log = (results.path / "baseline" / "logs" / f"{name}.log").read_text()
    assert "restarts=1" in log, "the supervisor started a new worker"
    assert process_start_time(int(pid)) is None, "the killed worker is gone"
    summary = results.read_json("summary.json")["baseline"]
    assert summary["integrity"] < 1.0, "the baseline loses what the dead worker held"


async def test_pause_stops_the_worker_for_its_duration_then_continues_it(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    seen: list[str | None] = []

    async def watch(bench: BenchmarkRun) -> None:
        while bench.platform is None or not bench.platform.components("worker"):
            await asyncio.sleep(0.01)
        pid = bench.platform.components("worker")[0].pid
        for _ in range(300):
            seen.append(proc_state(pid))
            await asyncio.sleep(0.01)

    bench = BenchmarkRun(
        write_scenario(**SLOW, faults=[{"kind": "pause", "at_s": 0.3, "duration_s": 0.8}]),
        ["baseline"],
        tmp_path / "results",
    )
    watcher = asyncio.create_task(watch(bench))
    results = await bench.execute()
    watcher.cancel()

    (row,) = fault_rows(results)
    assert row["outcome"] == "ok"
    assert row["actual_end"] - row["actual_start"] >= 0.8
    assert "T" in seen, "the worker was really stopped"
    assert seen[-1] != "T", "and continued afterwards"
    summary = results.read_json("summary.json")["baseline"]
    assert summary["integrity"] == 1.0
    pause = summary["faults"]["pause"]
    assert pause["injected"] == 1 and pause["affected_runs"] > 0
    assert pause["unrecovered_runs"] == 0
    # recovery is measured from the fault's start: the pause itself is a lower bound
    assert pause["recovery_ms"]["p50"] >= 800 * 0.9


async def test_a_partition_holds_tool_calls_until_it_heals(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {
            "kind": "network",
            "target": "worker->tools",
            "mode": "partition",
            "at_s": 0.3,
            "duration_s": 0.8,
        },
    )
    (row,) = fault_rows(results)
    assert row["outcome"] == "ok" and row["selected"] == ["worker->tools"]
    steps = pd.read_parquet(results.path / "steps.parquet")
    acts = steps[steps["phase"] == "act"]
    spanning = acts[(acts["start"] < row["actual_end"]) & (acts["end"] > row["actual_end"])]
    assert len(spanning) > 0, "act calls in flight were held by the partition"
    assert (spanning["start"] >= row["actual_start"] - 0.1).all()
    assert ((spanning["end"] - spanning["start"]) >= 0.5).any()
    # the link healed: the runs went on and finished
    assert results.read_json("summary.json")["baseline"]["integrity"] == 1.0


async def test_a_reset_link_makes_reason_calls_retry(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {
            "kind": "network",
            "target": "worker->llm",
            "mode": "reset",
            "at_s": 0.3,
            "duration_s": 0.4,
        },
    )
    (row,) = fault_rows(results)
    assert row["outcome"] == "ok"
    steps = pd.read_parquet(results.path / "steps.parquet")
    reasons = steps[steps["phase"] == "reason"]
    assert reasons["retries"].max() > 0
    # transport errors (aiohttp's Client*/Server* errors), not HTTP answers: the link was cut
    errors = reasons.loc[reasons["retries"] > 0, "error"]
    assert errors.notna().all()
    assert errors.str.contains("Client|Server|Connect|reset", regex=True).all()
    assert results.read_json("summary.json")["baseline"]["integrity"] == 1.0


async def test_llm_rate_limits_answer_429_with_retry_after_during_the_window(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {
            "kind": "llm",
            "mode": "rate_limit",
            "at_s": 0.2,
            "duration_s": 0.5,
            "retry_after_s": 0.05,
            "probability": 0.7,
        },
    )
    (row,) = fault_rows(results)
    calls = pd.read_parquet(results.path / "llm_calls.parquet")
    limited = calls[calls["status"] == 429]
    assert len(limited) > 0
    assert (limited["time"] >= row["actual_start"]).all()
    assert (limited["time"] <= row["actual_end"] + 0.05).all()
    summary = results.read_json("summary.json")["baseline"]
    assert summary["integrity"] == 1.0
    assert summary["wasted"]["llm_calls"] == len(limited), "every 429 is wasted work"


async def test_tool_errors_are_retried_and_never_reach_the_ledger(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {
            "kind": "tool",
            "mode": "error",
            "status": 503,
            "probability": 0.5,
            "at_s": 0.2,
            "duration_s": 0.4,
        },
    )
    steps = pd.read_parquet(results.path / "steps.parquet")
    assert steps[steps["phase"] == "act"]["retries"].max() > 0
    summary = results.read_json("summary.json")["baseline"]
    assert summary["integrity"] == 1.0
    assert summary["wasted"]["tool_executions"] == 0


async def test_a_crash_point_kills_exactly_at_its_boundary_once(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {"kind": "crash_point", "point": "after_act", "run": "run-000002", "step": 3},
    )
    markers = list((results.path / "baseline" / "failpoints").glob("*.fired"))
    assert len(markers) == 1
    steps = pd.read_parquet(results.path / "steps.parquet")
    at_point = steps[(steps["run_id"] == "run-000002") & (steps["step"] == 3)]
    assert set(at_point["phase"]) == {"reason", "act"}, "killed after the act, before verify"
    log = (results.path / "baseline" / "logs" / "baseline-worker-0.log").read_text()
    assert "restarts=1" in log and "restarts=2" not in log, "it fired once"
    runs = pd.read_parquet(results.path / "runs.parquet").set_index("run_id")
    assert runs.loc["run-000002", "status"] == "lost"
    (row,) = fault_rows(results)  # recorded with when, where and in which process it fired
    assert row["kind"] == "crash_point" and row["target"] == "after_act"
    assert row["outcome"] == "ok" and row["selected"][0].startswith("run-000002:3:")
    assert row["actual_start"] <= at_point["end"].max() + 1


async def test_after_steps_timing_waits_for_committed_steps(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario, tmp_path, {"kind": "pause", "after_steps": 40, "duration_s": 0.2}
    )
    (row,) = fault_rows(results)
    steps = pd.read_parquet(results.path / "steps.parquet")
    commits = steps[(steps["phase"] == "commit") & (steps["outcome"] == "ok")]
    assert (commits["end"] <= row["actual_start"]).sum() >= 40


async def test_periodic_faults_recur_and_faults_without_a_target_are_skipped(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {
            "kind": "llm",
            "mode": "slow",
            "extra_latency_ms": 20,
            "every_s": 0.2,
            "times": 2,
            "duration_s": 0.1,
        },
        {"kind": "restart", "target": "store", "at_s": 0.1},
        {"kind": "outage", "at_s": 0.1, "duration_s": 0.5},
        {"kind": "kill", "at_s": 3600},
    )
    rows = fault_rows(results)
    by_kind = {(r["kind"], r["occurrence"]): r for r in rows}
    assert by_kind[("llm", 0)]["outcome"] == by_kind[("llm", 1)]["outcome"] == "ok"
    assert by_kind[("restart", 0)]["outcome"] == "skipped"
    assert "no store" in by_kind[("restart", 0)]["detail"]
    assert by_kind[("outage", 0)]["outcome"] == "skipped"
    assert by_kind[("kill", 0)]["outcome"] == "not_reached"


async def test_deploys_the_platform_or_the_backend_cannot_make_are_skipped_with_the_reason(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {"kind": "deploy", "image": "reg/durabench:v2", "at_s": 0.1},
        {"kind": "deploy", "version": "v2", "at_s": 0.1},
    )
    by_image, by_version = sorted(fault_rows(results), key=lambda r: r["fault_index"])
    assert by_image["outcome"] == "skipped"
    assert "local platform runs no images" in by_image["detail"]
    assert "reg/durabench:v2" in by_image["detail"]
    assert by_version["outcome"] == "skipped"
    assert "no code versions" in by_version["detail"]
    assert results.read_json("summary.json")["baseline"]["integrity"] == 1.0


def test_heal_after_durabench_itself_is_killed_mid_partition_and_pause(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    env = {**os.environ, "DURABENCH_STATE_DIR": str(state_dir)}
    path = write_scenario(
        **SLOW,
        faults=[
            {"kind": "pause", "at_s": 0.2, "duration_s": 60},
            {
                "kind": "network",
                "target": "worker->tools",
                "mode": "partition",
                "at_s": 0.2,
                "duration_s": 60,
            },
        ],
    )
    out = tmp_path / "results"
    durabench = [sys.executable, "-m", "harness.cli"]
    process = subprocess.Popen(
        [*durabench, "run", str(path), "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    active: dict[str, Any] = {}
    for _ in range(600):  # liveness bound: both faults active within 60 s
        files = list(state_dir.glob("*.json"))
        if files:
            active = json.loads(files[0].read_text())["entries"]
            kinds = {e["type"] for e in active.values()}
            if {"stopped", "proxy"} <= kinds and any(k.startswith("1.") for k in active):
                break
        time.sleep(0.1)
    assert {"stopped", "proxy"} <= {e["type"] for e in active.values()}
    stopped = [e["pid"] for e in active.values() if e["type"] == "stopped"]

    process.kill()  # durabench dies without healing anything itself
    process.wait(timeout=30)
    healed = subprocess.run(
        [*durabench, "heal"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert healed.returncode == 0, healed.stderr
    assert list(state_dir.glob("*.json")) == []
    for pid in stopped:
        assert proc_state(pid) in (None, "Z", "R", "S"), "no process is left stopped"
    for pid in processes_mentioning(str(out)):
        assert proc_state(pid) in (None, "Z"), "no process durabench started survives"


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(
                "utf-8", "replace"
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


async def test_an_act_cut_off_by_a_kill_is_recorded_as_indeterminate(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """Jepsen's `info`: an act that was invoked and never completed may have happened."""
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {"kind": "tool", "mode": "slow", "extra_latency_ms": 3000, "at_s": 0.2, "duration_s": 2},
        {"kind": "kill", "at_s": 0.8},
    )
    steps = pd.read_parquet(results.path / "steps.parquet")
    invokes = steps[(steps["phase"] == "act") & (steps["outcome"] == "invoke")]
    assert len(invokes) > 0
    runs = pd.read_parquet(results.path / "runs.parquet")
    assert runs["acts_indeterminate"].sum() > 0
    assert results.read_json("summary.json")["baseline"]["acts_indeterminate"] > 0


async def test_evict_sends_sigterm_waits_the_grace_then_the_worker_is_replaced(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """The baseline worker drains on SIGTERM (it keeps serving its in-flight runs), so a
    grace period shorter than its runs ends in the SIGKILL, and the pod comes back."""
    _, results = await run_with(
        write_scenario, tmp_path, {"kind": "evict", "at_s": 0.3, "grace_s": 0.3}
    )
    (row,) = fault_rows(results)
    assert row["outcome"] == "ok" and row["kind"] == "evict"
    assert row["actual_end"] - row["actual_start"] >= 0.3, "the grace period was granted"
    name, pid = row["selected"][0].split(":")
    assert process_start_time(int(pid)) is None, "the evicted worker is gone"
    log = (results.path / "baseline" / "logs" / f"{name}.log").read_text()
    assert "restarts=1" in log


async def test_link_latency_slows_every_call_on_that_link_during_the_window(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {
            "kind": "network",
            "target": "worker->llm",
            "mode": "latency",
            "latency_ms": 100,
            "at_s": 0.3,
            "duration_s": 0.6,
        },
    )
    (row,) = fault_rows(results)
    assert row["outcome"] == "ok"
    steps = pd.read_parquet(results.path / "steps.parquet")
    reasons = steps[(steps["phase"] == "reason") & (steps["outcome"] == "ok")]
    # calls that began once the proxy had the fault: its PUT may take a while under load
    inside = reasons[
        (reasons["start"] > row["actual_start"] + 0.15) & (reasons["end"] < row["actual_end"])
    ]
    after = reasons[reasons["start"] > row["actual_end"] + 0.05]
    assert len(inside) > 0 and len(after) > 0
    # a lower bound (a delay never ends early): 100 ms each way on the link
    assert ((inside["end"] - inside["start"]) >= 0.2).all()
    assert ((after["end"] - after["start"]) < 0.2).mean() > 0.5, "healed afterwards"


async def test_a_rolling_restart_evicts_every_worker_in_turn_and_each_comes_back(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    _, results = await run_with(
        write_scenario,
        tmp_path,
        {"kind": "rolling_restart", "at_s": 0.3, "grace_s": 0.1, "interval_s": 0.3},
        workers=2,
    )
    (row,) = fault_rows(results)
    assert row["outcome"] == "ok" and row["kind"] == "rolling_restart"
    assert row["actual_end"] - row["actual_start"] >= 0.3, "one interval between the two"
    names = sorted(selected.split(":")[0] for selected in row["selected"])
    assert names == ["baseline-worker-0", "baseline-worker-1"]
    for selected in row["selected"]:
        name, pid = selected.split(":")
        assert process_start_time(int(pid)) is None, f"{name} was evicted"
        log = (results.path / "baseline" / "logs" / f"{name}.log").read_text()
        assert "restarts=1" in log, f"{name} came back"
