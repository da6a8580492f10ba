"""Explore: search random fault schedules for durability anomalies (Jepsen's random
nemesis, run as many short trials).

Each trial is the scenario with a drawn fault list: one to `max_faults` faults of the
kinds this backend and platform support (the injector registry refuses the rest), with
random targets, parameters and crash points, timed by `schedule.draw_schedule`. A trial
runs as an ordinary `BenchmarkRun` of a scenario file written into the explore
directory, so every trial is re-runnable with `durabench run` and judged by the usual
verdicts. A trial shows an anomaly when a safety verdict fails: a duplicated or orphan
effect, a duplicated step, a ledger or decision disagreement in any run, a lost step or
a wrong final state in a run that completed (a run that did not finish in time under
faults is slow, not wrong). Every anomaly is shrunk (harness/shrink.py) and explained
(harness/witness.py).

What the seed fixes is the draw: the same seed gives the same trials' fault lists on
every machine. What a real process does under them can still differ from one run to the
next, which is why every finding reports its reproduction rate.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import pandas as pd
import yaml

from harness.errors import DurabenchError
from harness.faults import CrashPointFault, TimedFault
from harness.oracle import run_ids
from harness.scenario import Scenario, load_scenario
from harness.schedule import draw_schedule
from harness.workload import seeded_rng

__all__ = [
    "ALWAYS_SAFETY",
    "COMPLETED_SAFETY",
    "Case",
    "Exploration",
    "TrialResult",
    "broken_verdicts",
    "draw_case",
    "run_case",
]

log = logging.getLogger("durabench.explore")

# Verdicts a fault may never break: any run that breaks one shows an anomaly.
ALWAYS_SAFETY = (
    "effects_exactly_once",
    "no_duplicate_step",
    "no_orphan_effect",
    "ledger_agrees",
    "decisions_agree",
    "no_nondeterminism",
)
# Verdicts that only mean something for a run that reached its end.
COMPLETED_SAFETY = ("no_lost_step", "state_match")
SIZES = ("runs", "steps", "workers", "concurrency")


@dataclass(frozen=True)
class Case:
    """What one trial runs: the scenario's sizes and an exact fault list (plain data,
    exactly as written to the trial's scenario file)."""

    faults: tuple[dict[str, Any], ...]
    runs: int
    steps: int
    workers: int
    concurrency: int

    def scenario_data(self, base: dict[str, Any], name: str) -> dict[str, Any]:
        """The scenario file of this case: the base scenario with its sizes and faults."""
        data = {k: v for k, v in base.items() if k != "expect"}
        data["name"] = name[:64]
        data["runs"], data["steps"], data["workers"] = self.runs, self.steps, self.workers
        data["load"] = {**data.get("load", {}), "concurrency": self.concurrency}
        data["faults"] = [dict(f) for f in self.faults]
        return data

    def describe(self) -> str:
        kinds = ", ".join(_fault_label(f) for f in self.faults) or "no faults"
        return (
            f"{kinds}; runs={self.runs} steps={self.steps} workers={self.workers} "
            f"concurrency={self.concurrency}"
        )


def _fault_label(fault: dict[str, Any]) -> str:
    if fault["kind"] == "crash_point":
        return f"crash_point {fault['point']} {fault.get('run', '*')}@{fault.get('step')}"
    where = fault.get("target", "")
    mode = fault.get("mode", "")
    return " ".join(str(p) for p in (fault["kind"], where, mode, f"at {fault.get('at_s')}s") if p)


def base_case(scenario: Scenario) -> Case:
    return Case(
        faults=(),
        runs=scenario.runs,
        steps=scenario.steps,
        workers=scenario.workers,
        concurrency=scenario.load.concurrency or scenario.runs,
    )


# -- drawing -------------------------------------------------------------------------


def backend_roles(backend: str) -> set[str]:
    """The roles besides workers a backend runs (which servers a fault can restart)."""
    name = backend.split("?", 1)[0]
    if name.startswith("temporal"):
        return {"server"}
    if name.startswith("pgstore") or name == "langgraph:postgres":
        return {"store"}
    return set()


@functools.cache
def crash_points(backend: str) -> tuple[tuple[str, bool], ...]:
    """The crash points a worker of this backend can reach, with whether it reaches
    each at every step: the RAV phase boundaries, then the backend's own durability
    boundaries (harness/crashpoints.py, `durabench crashpoints --backend X`)."""
    from backends.base import load_backend
    from harness.crashpoints import points_of

    return tuple((p.name, p.per_step) for p in points_of(load_backend(backend)))


def _draw_timed(rng: Random, roles: set[str], duration_s: float) -> dict[str, Any]:
    """One timed fault of a random kind and parameters (timing drawn later)."""
    short = round(rng.uniform(0.2, max(0.3, duration_s / 4)), 2)
    choices: list[Callable[[], dict[str, Any]]] = [
        lambda: {"kind": "kill", "restart_delay_s": rng.choice([0.0, 0.2, 0.5])},
        lambda: {"kind": "evict", "grace_s": rng.choice([0.0, 0.3, 1.0])},
        lambda: {"kind": "pause", "target": "worker", "duration_s": short},
        lambda: {
            "kind": "network",
            "target": "worker->tools",
            "mode": rng.choice(["partition", "reset"]),
            "duration_s": short,
        },
    ]
    for role in sorted(roles):
        link = "worker->server" if role == "server" else "worker->store"
        choices.append(
            lambda role=role: {  # type: ignore[misc]
                "kind": "restart",
                "target": role,
                "down_s": rng.choice([0.0, 0.3]),
            }
        )
        choices.append(
            lambda link=link: {  # type: ignore[misc]
                "kind": "network",
                "target": link,
                "mode": rng.choice(["partition", "reset"]),
                "duration_s": short,
            }
        )
    return rng.choice(choices)()


def _draw_crash(
    rng: Random, points: tuple[tuple[str, bool], ...], scenario: Scenario
) -> dict[str, Any]:
    point, per_step = rng.choice(points)
    step = rng.randrange(scenario.steps)
    fault = {"kind": "crash_point", "point": point, "run": rng.choice(run_ids(scenario))}
    return {**fault, "step": step} if per_step else fault


def _typical_ms(model: Any) -> float:
    for name in ("ms", "mean_ms", "median_ms"):
        if isinstance(getattr(model, name, None), int | float):
            return float(getattr(model, name))
    return (float(getattr(model, "low_ms", 0.0)) + float(getattr(model, "high_ms", 0.0))) / 2


def expected_duration_s(scenario: Scenario) -> float:
    """A rough length of the load without faults: what fault start times are drawn in."""
    step_ms = _typical_ms(scenario.llm.latency) + _typical_ms(scenario.tool_latency) + 30.0
    waves = -(-scenario.runs // (scenario.load.concurrency or scenario.runs))
    return max(0.5, waves * scenario.steps * step_ms / 1000.0)


def draw_case(
    scenario: Scenario,
    backend: str,
    seed: int,
    trial: int,
    max_faults: int,
    refuse: Callable[[list[dict[str, Any]]], list[int]] | None = None,
) -> Case:
    """The fault list of trial `trial` under `seed` (a pure function of its arguments,
    and of what `refuse` says cannot apply)."""
    rng = seeded_rng(seed, "explore", trial)
    roles = backend_roles(backend)
    points = crash_points(backend)
    within = expected_duration_s(scenario)
    count = rng.randint(1, max_faults)
    drawn: list[dict[str, Any]] = []
    for _ in range(count * 4):
        if len(drawn) == count:
            break
        candidate = (
            _draw_crash(rng, points, scenario)
            if rng.random() < 0.4
            else {**_draw_timed(rng, roles, within), "at_s": 0.0}
        )
        if refuse is not None and refuse([candidate]):
            continue
        drawn.append(candidate)
    timed = [_validated_timed(f) for f in drawn if f["kind"] != "crash_point"]
    retimed = iter(draw_schedule(timed, seed * 1_000_003 + trial, within))
    faults = tuple(
        f
        if f["kind"] == "crash_point"
        else next(retimed).model_dump(mode="json", exclude_none=True)
        for f in drawn
    )
    return Case(faults, **{s: getattr(base_case(scenario), s) for s in SIZES})


def _validated_timed(data: dict[str, Any]) -> TimedFault:
    from pydantic import TypeAdapter

    from harness.faults import Fault

    fault = TypeAdapter(Fault).validate_python(data)
    assert not isinstance(fault, CrashPointFault)
    return fault


def refuser(
    backend: str, platform_name: str, workdir: Path
) -> Callable[[list[dict[str, Any]]], list[int]]:
    """Which faults of a list the injectors refuse for this backend on this platform."""
    from pydantic import TypeAdapter

    from backends.base import load_backend
    from harness.faults import Fault
    from harness.injectors import refuse_faults
    from harness.platform import make_platform

    loaded = load_backend(backend)
    platform = make_platform(platform_name, workdir, "explore")
    adapter = TypeAdapter(Fault)

    def refuse(faults: list[dict[str, Any]]) -> list[int]:
        try:
            models = [adapter.validate_python(f) for f in faults]
            return sorted(refuse_faults(models, platform, loaded))
        except (DurabenchError, ValueError):
            return list(range(len(faults)))

    return refuse


# -- running and judging -------------------------------------------------------------


@dataclass
class TrialResult:
    """What one run of a case showed."""

    case: Case
    results: str  # the trial's results directory
    runs: int = 0
    exposed: int | None = None  # runs exposed to a fault (None: not measured)
    anomalous_runs: list[str] = field(default_factory=list)
    broken: dict[str, int] = field(default_factory=dict)  # verdict -> runs that broke it
    error: str | None = None
    seconds: float = 0.0

    @property
    def anomaly(self) -> bool:
        return bool(self.broken)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["case"] = asdict(self.case)
        return data


def broken_verdicts(runs: pd.DataFrame) -> tuple[dict[str, int], list[str]]:
    """Safety verdict -> how many runs broke it, and the runs that broke any."""
    broken: dict[str, int] = {}
    bad: set[str] = set()
    completed = runs["complete"].eq(True) if "complete" in runs else pd.Series(False, runs.index)
    for verdict in (*ALWAYS_SAFETY, *COMPLETED_SAFETY):
        if verdict not in runs:
            continue
        failed = runs[verdict].eq(False)
        if verdict in COMPLETED_SAFETY:
            failed &= completed
        if failed.any():
            broken[verdict] = int(failed.sum())
            bad.update(runs.loc[failed, "run_id"].astype(str))
    return broken, sorted(bad)


@contextmanager
def _silenced() -> Iterator[None]:
    """Trials log to their own results; keep the console for explore's progress."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def run_case(
    case: Case,
    base: dict[str, Any],
    name: str,
    backend: str,
    directory: Path,
    platform_name: str = "local",
) -> TrialResult:
    """Write the case as `directory/scenario.yaml`, run it, and judge it."""
    from harness.runner import BenchmarkRun

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "scenario.yaml"
    path.write_text(yaml.safe_dump(case.scenario_data(base, name), sort_keys=False))
    began = time.monotonic()
    result = TrialResult(case=case, results="")
    try:
        bench = BenchmarkRun(path, [backend], directory, None, platform_name=platform_name)
        with _silenced():
            results = asyncio.run(bench.execute())
        result.results = str(results.path)
        runs = results.read_table("runs")
    except DurabenchError as exc:
        result.error = str(exc)
        result.seconds = time.monotonic() - began
        return result
    result.seconds = round(time.monotonic() - began, 3)
    result.runs = len(runs)
    if "exposed" in runs:
        result.exposed = int(runs["exposed"].eq(True).sum())
    result.broken, result.anomalous_runs = broken_verdicts(runs)
    return result


# -- the exploration -----------------------------------------------------------------


ProgressFn = Callable[[str], None]


@dataclass
class Exploration:
    """One `durabench explore`: trials until the budget or the trial count is spent,
    every anomaly shrunk and explained, everything in `explore.json`."""

    scenario_path: Path
    backend: str
    out_root: Path
    budget_s: float = 1200.0
    seed: int = 0
    trials: int | None = None
    max_faults: int = 2
    reruns: int = 5  # k: a reproducer's reproduction rate is measured over k re-runs
    shrink_trials: int = 24  # at most this many candidate runs per shrink
    max_findings: int | None = None
    platform_name: str = "local"
    progress: ProgressFn = field(default=lambda line: None)

    def __post_init__(self) -> None:
        self.scenario = load_scenario(self.scenario_path)
        self.base = self.scenario.model_dump(mode="json")
        self.directory: Path | None = None
        self._scratch = tempfile.TemporaryDirectory(prefix="durabench-explore-")
        self.refuse = refuser(self.backend, self.platform_name, Path(self._scratch.name))

    def _write(self, record: dict[str, Any]) -> None:
        assert self.directory is not None
        tmp = self.directory / "explore.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str))
        tmp.replace(self.directory / "explore.json")

    def run(self) -> dict[str, Any]:
        """Explore until the budget, the trial count or the findings are spent; an
        interrupted exploration keeps explore.json with what it found, marked so."""
        record: dict[str, Any] = {}
        try:
            return self._run(record)
        except BaseException as exc:
            if record:
                record.update(status="interrupted", error=repr(exc), finished_at=time.time())
                self._write(record)
            raise

    def _run(self, record: dict[str, Any]) -> dict[str, Any]:
        from harness.results import ResultsDir
        from harness.shrink import shrink_and_explain

        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for suffix in ("", *(f"-{n}" for n in range(2, 100))):
            try:
                created = ResultsDir.create(self.out_root, f"explore-{stamp}{suffix}")
                break
            except FileExistsError:
                continue
        else:
            raise DurabenchError(f"{self.out_root}: too many explore-{stamp}* directories")
        self.directory = created.path.absolute()
        refuse = self.refuse
        began = time.monotonic()
        record.update(
            {
                "kind": "explore",
                "scenario": str(self.scenario_path),
                "scenario_name": self.scenario.name,
                "backend": self.backend,
                "platform": self.platform_name,
                "seed": self.seed,
                "budget_s": self.budget_s,
                "max_faults": self.max_faults,
                "reruns": self.reruns,
                "started_at": time.time(),
                "status": "running",
                "trials": [],
                "findings": [],
            }
        )
        self._write(record)
        signatures: set[frozenset[str]] = set()
        exposed = anomalies = 0
        index = 0
        while self._more(index, began, record):
            case = draw_case(self.scenario, self.backend, self.seed, index, self.max_faults, refuse)
            trial_dir = self.directory / "trials" / f"{index:04d}"
            result = run_case(
                case,
                self.base,
                f"{self.scenario.name}-t{index}",
                self.backend,
                trial_dir,
                self.platform_name,
            )
            exposed += result.exposed or 0
            anomalies += int(result.anomaly)
            entry = {"trial": index, "at_s": round(time.monotonic() - began, 2), **result.to_json()}
            record["trials"].append(entry)
            self.progress(
                f"trial {index + 1}: {case.describe()} -> "
                + (", ".join(f"{v} x{n}" for v, n in result.broken.items()) or result.error or "ok")
                + f"  [trials {index + 1}, exposed runs {exposed}, anomalies {anomalies},"
                f" findings {len(record['findings'])}]"
            )
            self._write(record)
            signature = frozenset(result.broken)
            if result.anomaly and signature not in signatures:
                signatures.add(signature)
                number = len(record["findings"]) + 1
                self.progress(f"finding {number}: shrinking trial {index + 1}")
                finding = shrink_and_explain(self, result, number, began)
                record["findings"].append(finding)
                self._write(record)
                self.progress(
                    f"finding {number}: {finding['faults_count']} fault(s), reproduced "
                    f"{finding['reproduced']}/{finding['reruns']} -> {finding['reproducer']}"
                )
            index += 1
        elapsed = time.monotonic() - began
        record.update(
            status="complete",
            finished_at=time.time(),
            elapsed_s=round(elapsed, 2),
            trials_run=index,
            exposed_runs=exposed,
            anomalous_trials=anomalies,
            trials_per_minute=round(index / max(elapsed, 1e-9) * 60, 2),
        )
        self._write(record)
        self._scratch.cleanup()
        return record

    def _more(self, index: int, began: float, record: dict[str, Any]) -> bool:
        if self.trials is not None and index >= self.trials:
            return False
        if self.max_findings is not None and len(record["findings"]) >= self.max_findings:
            return False
        return time.monotonic() - began < self.budget_s
