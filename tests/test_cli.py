"""The `durabench` command as a user runs it: a real subprocess of the installed entry point."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ScenarioFactory

REPO = Path(__file__).resolve().parent.parent
DURABENCH = shutil.which("durabench", path=str(Path(sys.executable).parent)) or "durabench"


def durabench(
    *args: str, cwd: Path = REPO, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [DURABENCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["list"],
        ["check"],
        ["doctor"],
        ["suite"],
        ["heal"],
        ["report"],
        ["compare"],
        ["load"],
        ["sweep"],
        ["k8s", "render"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = durabench(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: durabench" in result.stdout


def test_list_shows_shipped_scenarios_and_backends() -> None:
    result = durabench("list")
    assert result.returncode == 0, result.stderr
    for name in ("smoke", "procurement", "baseline", "ready"):
        assert name in result.stdout


def test_doctor_reports_each_check_with_a_fix() -> None:
    result = durabench("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("loopback ports", "postgres binaries", "temporal binary", "docker engine"):
        assert name in result.stdout


@pytest.mark.integration
@pytest.mark.slow  # the README's default benchmark as written: about 100 s
def test_readme_run_then_check(tmp_path: Path) -> None:
    """The README's default benchmark, then `check` on its results directory."""
    result = durabench("run", "scenarios/smoke.yaml", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "baseline" in result.stdout and "1.000" in result.stdout
    results = tmp_path / "latest"
    summary = json.loads((results / "summary.json").read_text())
    assert "baseline" in summary  # and every other backend that is installed
    assert {name: s["integrity"] for name, s in summary.items()} == dict.fromkeys(summary, 1.0)

    check = durabench("check", str(results))
    assert check.returncode == 0, check.stderr
    assert f"verdicts reproduced: {20 * len(summary)} runs" in check.stdout


@pytest.mark.integration
def test_backend_options_reach_the_backend(tmp_path: Path) -> None:
    result = durabench("run", "smoke", "--backend", "baseline?workers=2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "latest" / "manifest.json").read_text())
    assert manifest["backend_details"]["baseline?workers=2"]["workers"] == 2


def test_invalid_scenario_names_file_field_and_reason(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    path = write_scenario(runs=-3)
    result = durabench("run", str(path), "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert str(path) in result.stderr and "runs" in result.stderr
    assert "greater than or equal to 1" in result.stderr
    assert not (tmp_path / "r").exists(), "nothing may start for an invalid scenario"


def test_unknown_backend_lists_the_known_ones(tmp_path: Path) -> None:
    result = durabench("run", "smoke", "--backend", "cassandra", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "unknown backend 'cassandra'" in result.stderr and "baseline" in result.stderr


def test_check_on_a_directory_that_is_not_results(tmp_path: Path) -> None:
    result = durabench("check", str(tmp_path))
    assert result.returncode == 2
    assert "not a durabench results directory" in result.stderr


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does for `cmd &`


@pytest.mark.integration
@pytest.mark.parametrize(
    ("signum", "started_in_background"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigint", "sigterm", "sigint-background-job"],
)
def test_an_interrupted_run_keeps_its_measurements_and_stops_everything(
    write_scenario: ScenarioFactory, tmp_path: Path, signum: int, started_in_background: bool
) -> None:
    """A background job inherits SIGINT ignored (`durabench run ... &`): `kill -INT` must
    still interrupt it."""
    path = write_scenario(
        runs=50, steps=20, llm={"latency": {"distribution": "constant", "ms": 20}}
    )
    out = tmp_path / "results"
    process = subprocess.Popen(
        [DURABENCH, "run", str(path), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if started_in_background else None,
    )
    measurements = None
    for _ in range(600):  # liveness bound: up to 60 s for the first measured steps
        found = list(out.glob("*/baseline/measurements/*.jsonl"))
        if found and found[0].stat().st_size > 2000:
            measurements = found[0]
            break
        time.sleep(0.1)
    assert measurements is not None, "the run never started measuring"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    results = next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    steps = pd.read_parquet(results / "steps.parquet")
    assert len(steps) > 0
    assert _processes_mentioning(str(results)) == []


def _results_of(out: Path) -> Path:
    return next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())


@pytest.mark.integration
def test_one_sigint_heals_every_active_fault_judges_what_finished_and_stops_promptly(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    """Two 600 s faults are active when a single SIGINT comes: both are healed at once
    (not waited out), durabench says what it is doing, the runs that finished are judged,
    the others are named as not judged, and `check` and `report` work on the result."""
    path = write_scenario(
        runs=60,
        steps=8,
        load={"concurrency": 4},
        verify={"failure_probability": 0.0},
        llm={"latency": {"distribution": "constant", "ms": 10}},
        tool_latency={"distribution": "constant", "ms": 5},
        deadline_s=900,
        faults=[
            {"kind": "pause", "after_steps": 120, "duration_s": 600},
            {
                "kind": "network",
                "target": "worker->tools",
                "mode": "partition",
                "after_steps": 120,
                "duration_s": 600,
            },
        ],
    )
    out, state_dir = tmp_path / "results", tmp_path / "state"
    env = {**os.environ, "DURABENCH_STATE_DIR": str(state_dir), "COLUMNS": "300"}
    process = subprocess.Popen(
        [DURABENCH, "run", str(path), "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped: list[int] = []
    for _ in range(600):  # liveness bound: both faults active within 60 s
        entries = [
            e
            for f in state_dir.glob("*.json")
            for e in json.loads(f.read_text() or "{}").get("entries", {}).values()
        ]
        if {"stopped", "proxy_link"} <= {e["type"] for e in entries}:
            stopped = [pid for e in entries if e["type"] == "stopped" for pid, _ in e["processes"]]
            break
        time.sleep(0.1)
    assert stopped, "the faults never became active"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)  # liveness bound: the faults last 600 s

    assert process.returncode == 130, stderr
    assert "interrupted: baseline: healing 2 active fault(s): pause (baseline-worker-0:" in stderr
    assert "network (worker->tools)" in stderr
    assert "judging the" in stderr and "then stopping its components" in stderr
    results = _results_of(out)
    faults = pd.read_parquet(results / "faults.parquet")
    assert set(faults["detail"]) == {"healed before its end: interrupted"}
    assert (faults["actual_end"] - faults["actual_start"] < 600).all()
    assert list(state_dir.glob("*.json")) == [], "everything was healed and stopped"
    assert _processes_mentioning(str(results)) == []

    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    runs = pd.read_parquet(results / "runs.parquet")
    assert 0 < len(runs) < 60 and runs["passed"].all(), "the finished runs are judged"
    not_judged = manifest["backend_details"]["baseline"]["not_judged"]
    assert not_judged["runs"] == 60 - len(runs)
    assert set(not_judged["run_ids"]).isdisjoint(runs["run_id"])
    summary = json.loads((results / "summary.json").read_text())["baseline"]
    assert summary["not_judged"] == not_judged["runs"]

    check = durabench("check", str(results))
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"verdicts reproduced: {len(runs)} runs" in check.stdout
    report = durabench("report", str(results))
    assert report.returncode == 0, report.stdout + report.stderr
    assert (results / "report" / "report.html").is_file()
