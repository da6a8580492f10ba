"""Run until confident: keep starting runs, with the scenario's faults recurring on a
cycle, until integrity among the exposed runs is established at a target, an anomaly
is found, or the budget is spent (`durabench run/suite --until-integrity P`).

A fixed number of runs either wastes time (the claim was clear long ago) or claims too
much (0 failures in 6 runs bounds integrity only at 0.61). Here the evidence decides:
every CHECK_EVERY_S the runs that finished are judged (provisionally: inspect, their
ledger entries, the phase rows so far, the faults applied so far, exposure), and the
load stops as soon as

- `confident`: the one-sided lower confidence bound (Clopper-Pearson) of integrity among
  the exposed runs is at least the target, with no failed run;
- `anomaly`: a run failed a verdict;
- `budget`: the time budget or the run budget is spent first.

The runs in flight when the load stops finish and everything is judged again from the
final evidence, as for any run: the result (`until_integrity` in summary.json) is
decided from that, so a late anomaly is never hidden by an early stop.

The schedule repeats: `cycled` turns the scenario's timeline (harness.schedule) into
as many cycles as the budget can use, each a copy of the first shifted by the cycle's
period, so the runs started later are exposed as the first ones were.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pandas as pd
import yaml

from harness.errors import DurabenchError
from harness.evaluate import judge_runs, with_exposure
from harness.faults import Fault, TimedFault
from harness.results import ResultsDir
from harness.runner import BackendSession, RunTiming, await_run, inspect_all, start_run
from harness.scenario import Scenario, load_scenario
from harness.schedule import plan
from harness.stats import DEFAULT_CONFIDENCE, lower_bound, runs_needed
from harness.workload import seeded_rng

__all__ = [
    "CHECK_EVERY_S",
    "EXIT_ANOMALY",
    "EXIT_BUDGET",
    "EXIT_CONFIDENT",
    "Goal",
    "Stop",
    "UntilConfident",
    "cycled",
    "parse_budget",
    "write_cycled",
    "write_outcome",
]

CHECK_EVERY_S = 2.0  # how often the finished runs are judged while the load runs
MAX_OCCURRENCES = 2000  # fault occurrences a cycled schedule may hold
MAX_CYCLES_WITHOUT_BUDGET = 200  # with only --max-runs, how many cycles are planned
MAX_RUNS_PER_S = 500  # with only --budget: no backend here starts more runs a second
EXIT_CONFIDENT, EXIT_ANOMALY, EXIT_BUDGET = 0, 6, 4

Stop = Literal["confident", "anomaly", "budget"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_budget(text: str) -> float:
    """`10m`, `90s`, `1.5h` or a bare number of seconds -> seconds."""
    match = _DURATION.match(text)
    if match is None or float(match[1]) <= 0:
        raise DurabenchError(
            f"bad --budget {text!r}: give a duration such as 90s, 10m or 1h (more than zero)"
        )
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "s"]


@dataclass(frozen=True)
class Goal:
    """Integrity at least `target` at `confidence`, within `budget_s` and/or `max_runs`."""

    target: float
    confidence: float = DEFAULT_CONFIDENCE
    budget_s: float | None = None
    max_runs: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise DurabenchError(
                f"--until-integrity must be a fraction strictly between 0 and 1, got "
                f"{self.target} (integrity 1 can never be established by a finite run)"
            )
        if not 0 < self.confidence < 1:
            raise DurabenchError(f"--confidence must be in (0, 1), got {self.confidence}")
        if self.budget_s is None and self.max_runs is None:
            raise DurabenchError(
                "--until-integrity needs a budget: --budget 10m and/or --max-runs N"
            )
        if self.max_runs is not None and self.max_runs < 1:
            raise DurabenchError(f"--max-runs must be at least 1, got {self.max_runs}")

    @property
    def run_bound(self) -> int:
        """The runs the cycled scenario declares (its run ids are `run-000000` up to
        this): --max-runs, else what the budget allows at MAX_RUNS_PER_S."""
        if self.max_runs is not None:
            return self.max_runs
        assert self.budget_s is not None
        return min(1_000_000, max(1, math.ceil(self.budget_s * MAX_RUNS_PER_S)))

    @property
    def runs_needed(self) -> int:
        """Exposed runs, all passing, that establish the target (the rule of three)."""
        return runs_needed(self.target, self.confidence)

    def describe(self) -> str:
        budget = [
            f"{self.budget_s:g} s" if self.budget_s else "",
            f"{self.max_runs} runs" if self.max_runs else "",
        ]
        return (
            f"integrity >= {self.target:g} at {self.confidence:.0%} "
            f"(at least {self.runs_needed} exposed runs, all passing), "
            f"budget {' and '.join(b for b in budget if b)}"
        )


# -- the schedule, on a cycle --------------------------------------------------------------


def _retimed(fault: TimedFault, **timing: Any) -> Fault:
    data = fault.model_dump(exclude={"at_s", "after_steps", "every_s", "times", "random"})
    return type(fault).model_validate({**data, **timing})  # type: ignore[return-value]


def _end(fault: TimedFault, start: float) -> float:
    return start + float(getattr(fault, "duration_s", 0.0) or 0.0)


def cycled(scenario: Scenario, goal: Goal) -> Scenario:
    """The scenario with its timeline repeated: cycle k is the first one shifted by k
    periods, in time (faults at an offset) and in committed steps (faults after N steps).
    A period is the cycle's span plus its lead-in (the time before its first fault), so
    consecutive cycles are as far apart as the first fault is from the start. Crash
    points fire once and stay as they are. Without timed faults, the scenario as is."""
    timeline = plan(scenario.faults, scenario.seed)
    timed = [p for p in timeline.planned if p.at_s is not None]
    stepped = [p for p in timeline.planned if p.after_steps is not None]
    if not timed and not stepped:
        return scenario
    occurrences = max(1, len(timed) + len(stepped))
    cap = max(1, MAX_OCCURRENCES // occurrences)
    faults: list[Fault] = [u.fault for u in timeline.untimed]
    if timed:
        first = min(p.at_s or 0.0 for p in timed)
        period = max(0.5, max(_end(p.fault, p.at_s or 0.0) for p in timed) + max(first, 0.5))
        cycles = (
            math.ceil(goal.budget_s / period) + 1 if goal.budget_s else MAX_CYCLES_WITHOUT_BUDGET
        )
        for k in range(min(cycles, cap)):
            faults += [
                _retimed(p.fault, at_s=round((p.at_s or 0.0) + k * period, 3)) for p in timed
            ]
    if stepped:
        first_steps = min(p.after_steps or 0 for p in stepped)
        span = max(p.after_steps or 0 for p in stepped) + max(first_steps, 1)
        per_run = max(1, scenario.steps)
        runs_bound = goal.max_runs or 1_000_000
        cycles = min(cap, math.ceil(runs_bound * per_run / span) + 1)
        for k in range(cycles):
            faults += [
                _retimed(p.fault, after_steps=(p.after_steps or 0) + k * span) for p in stepped
            ]
    return scenario.model_copy(update={"faults": tuple(faults)})


def write_cycled(path: Path, goal: Goal, directory: Path) -> Path:
    """The scenario file at `path` with its faults cycled (everything else as written),
    as a file the workers can read (they load the scenario by path)."""
    scenario = load_scenario(path)
    data = yaml.safe_load(path.read_text())
    faults = cycled(scenario, goal).faults
    data["faults"] = [f.model_dump(mode="json", exclude_defaults=True) for f in faults]
    data["runs"] = goal.run_bound  # every run id the driver may start is the scenario's
    directory.mkdir(parents=True, exist_ok=True)
    written = directory / f"{scenario.name}-until.yaml"
    written.write_text(yaml.safe_dump(data, sort_keys=False))
    load_scenario(written)  # the cycled schedule validates as any scenario does
    return written


# -- judging while the load runs ---------------------------------------------------------


@dataclass
class _Progress:
    """What the provisional checks saw last, for the progress line and the outcome."""

    finished: int = 0
    exposed: int = 0
    passed: int = 0
    failed: int = 0
    lower: float = 0.0
    first_failure: str | None = None


@dataclass
class UntilConfident:
    """A load driver (BenchmarkRun's `driver`): closed loop at the scenario's concurrency
    (or Poisson arrivals at its rate), fresh run ids, until a Stop. `stops` and
    `progress` hold, per backend, why its load stopped and what was seen then."""

    goal: Goal
    stops: dict[str, Stop] = field(default_factory=dict)
    progress: dict[str, _Progress] = field(default_factory=dict)
    elapsed: dict[str, float] = field(default_factory=dict)
    started: dict[str, int] = field(default_factory=dict)  # runs started, per backend

    async def __call__(self, session: BackendSession) -> list[RunTiming]:
        scenario, backend = session.scenario, session.backend
        session.begin_arrivals()
        began = time.time()
        timings: list[RunTiming] = []
        stop = asyncio.Event()
        reason: list[Stop] = []
        seen = _Progress()
        self.progress[session.name] = seen

        def halt(why: Stop) -> None:
            if not reason:
                reason.append(why)
            stop.set()

        async def one(run_id: str) -> None:
            started = time.time()
            refused = await start_run(scenario, backend, run_id)
            timings.append(refused or await await_run(scenario, backend, run_id, started))
            session.report(len(timings), self.goal.max_runs or len(timings) + 1)

        judge = _Judge(session, self.goal)

        async def check() -> None:
            while not stop.is_set():
                with_timeout = asyncio.create_task(stop.wait())
                await asyncio.wait({with_timeout}, timeout=CHECK_EVERY_S)
                with_timeout.cancel()
                if stop.is_set():
                    return
                why = await judge.check(list(timings), seen)
                if why is not None:
                    halt(why)

        checker = asyncio.create_task(check())
        limit = asyncio.Semaphore(scenario.load.concurrency or 10_000)
        arrivals = seeded_rng(scenario.seed, "arrivals")
        tasks: list[asyncio.Task[None]] = []
        index = 0
        try:
            while not stop.is_set():
                if index >= min(self.goal.max_runs or scenario.runs, scenario.runs):
                    halt("budget")
                    break
                if self.goal.budget_s is not None and time.time() - began >= self.goal.budget_s:
                    halt("budget")
                    break
                if scenario.load.arrival_rate is not None:
                    await asyncio.sleep(arrivals.expovariate(scenario.load.arrival_rate))
                else:
                    await limit.acquire()
                if stop.is_set():
                    break
                run_id = f"run-{index:06d}"
                index += 1
                task = asyncio.create_task(one(run_id))
                if scenario.load.arrival_rate is None:
                    task.add_done_callback(lambda _: limit.release())
                tasks.append(task)
            await asyncio.gather(*tasks)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            checker.cancel()
        self.stops[session.name] = reason[0] if reason else "budget"
        self.elapsed[session.name] = time.time() - began
        self.started[session.name] = index
        return timings


class _Rows:
    """The workers' phase rows, read as they are appended (only new complete lines)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[Path, int] = {}
        self.by_run: dict[str, list[dict[str, Any]]] = {}

    def refresh(self) -> None:
        if not self.directory.exists():
            return
        for path in sorted(self.directory.glob("*.jsonl")):
            offset = self.offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1
            for line in chunk[:complete].splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.by_run.setdefault(str(row.get("run_id")), []).append(row)
            self.offsets[path] = offset + complete


class _Judge:
    """Judges the runs of one session provisionally, each once, when first seen
    finished: inspect, its ledger entries, its phase rows, the faults applied so far and
    its exposure. A finished run's exposure cannot grow: later faults did not touch it."""

    def __init__(self, session: BackendSession, goal: Goal) -> None:
        self.session = session
        self.goal = goal
        self.judged: set[str] = set()
        self.exposed = 0
        self.passed = 0
        self.failed: list[str] = []
        self.rows = _Rows(session.env.measurements_dir)

    async def _ledger_of(self, run_id: str) -> list[dict[str, Any]]:
        url = f"{self.session.nemesis.context.tools_admin_url}/ledger"
        async with aiohttp.ClientSession() as http, http.get(url, params={"run_id": run_id}) as r:
            r.raise_for_status()
            rows: list[dict[str, Any]] = await r.json()
        return rows

    async def check(self, timings: Sequence[RunTiming], seen: _Progress) -> Stop | None:
        session, goal = self.session, self.goal
        new = [t for t in timings if t.run_id not in self.judged]
        if new:
            await asyncio.to_thread(self.rows.refresh)
            persisted = await inspect_all(session.backend, new)
            ledger: list[dict[str, Any]] = []
            try:
                for timing in new:
                    ledger += await self._ledger_of(timing.run_id)
            except (aiohttp.ClientError, OSError):
                return None  # a check that cannot read the ledger decides nothing
            ids = [t.run_id for t in new]
            steps = pd.DataFrame([row for i in ids for row in self.rows.by_run.get(i, [])])
            if not steps.empty:
                steps["backend"] = session.name
            rows = judge_runs(session.scenario, session.name, persisted, ledger, steps, [])
            runs = pd.DataFrame([r for r in rows if not r.get("stray")])
            records = [asdict(r) for r in session.nemesis.records]
            faults = pd.DataFrame(records) if records else pd.DataFrame()
            runs, _ = with_exposure(runs, steps, faults)
            basis = runs[runs["exposed"] == True] if session.scenario.faults else runs  # noqa: E712
            self.exposed += len(basis)
            self.passed += int(basis["passed"].sum())
            self.failed += [str(r) for r in runs.loc[~runs["passed"].astype(bool), "run_id"]]
            self.judged.update(ids)
        seen.finished, seen.exposed, seen.passed = len(self.judged), self.exposed, self.passed
        seen.failed = len(self.failed)
        seen.lower = lower_bound(self.passed, self.exposed, goal.confidence)
        if self.failed:
            seen.first_failure = self.failed[0]
            return "anomaly"
        if self.exposed and seen.lower >= goal.target:
            return "confident"
        return None


def outcome_of(
    goal: Goal, summary: dict[str, Any], provisional: Stop, elapsed_s: float
) -> dict[str, Any]:
    """The result for one backend, decided from its final summary: `anomaly` if any run
    failed (or a stray effect showed), `confident` if the exposed runs' lower bound
    clears the target, else `budget` (spent before either)."""
    evidence = summary.get("evidence") or {}
    passed, n = int(evidence.get("passed") or 0), int(evidence.get("n") or 0)
    bound = lower_bound(passed, n, goal.confidence)
    if summary.get("result") in ("fail", "unknown"):
        stopped: Stop = "anomaly"
    elif n and bound >= goal.target:
        stopped = "confident"
    else:
        stopped = "budget"
    return {
        "stopped": stopped,
        "stopped_load": provisional,
        "target": goal.target,
        "confidence": goal.confidence,
        "lower_bound": round(bound, 6),
        "exposed_runs": n,
        "passed": passed,
        "runs": summary.get("runs"),
        "runs_needed": goal.runs_needed,
        "elapsed_s": round(elapsed_s, 3),
        "budget_s": goal.budget_s,
        "max_runs": goal.max_runs,
        "reason": summary.get("result_reason") if stopped == "anomaly" else None,
    }


def write_outcome(
    results: ResultsDir, goal: Goal, driver: UntilConfident
) -> dict[str, dict[str, Any]]:
    """Add `until_integrity` to each backend's summary; returns backend -> outcome."""
    summary = results.read_json("summary.json")
    outcomes = {}
    for name, entry in summary.items():
        outcome = outcome_of(
            goal, entry, driver.stops.get(name, "budget"), driver.elapsed.get(name, 0.0)
        )
        entry["until_integrity"] = outcomes[name] = outcome
    results.write_json("summary.json", summary)
    # the scenario declared room for every run the budget allowed; the record says how
    # many each backend started (run-000000 on), so the stored results re-judge as any
    # run's: the scenario's `runs` is the most any started, `started` each one's own
    started = max(driver.started.values(), default=0)
    manifest = results.read_json("manifest.json")
    scenario = {**manifest.get("scenario", {}), "runs": max(1, started)}
    results.update_manifest(
        until_integrity={**asdict(goal), "started": dict(driver.started)}, scenario=scenario
    )
    stored = results.path / "scenario.yaml"
    if stored.exists():
        data = yaml.safe_load(stored.read_text())
        data["runs"] = scenario["runs"]
        stored.write_text(yaml.safe_dump(data, sort_keys=False))
    return outcomes


def exit_code(outcomes: dict[str, dict[str, Any]]) -> int:
    """6 an anomaly was found > 4 the budget was spent before confidence > 0 confident."""
    stops = {o["stopped"] for o in outcomes.values()}
    if "anomaly" in stops:
        return EXIT_ANOMALY
    if "budget" in stops or not stops:
        return EXIT_BUDGET
    return EXIT_CONFIDENT
