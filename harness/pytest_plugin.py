"""The durabench pytest plugin: assert durability in your own test suite.

    def test_pgstore_survives_kills(durabench):
        result = durabench.run("scenarios/chaos/quick/kill.yaml", backend="pgstore")
        assert result.integrity_lower_bound >= 0.5, result.headline

    @pytest.mark.durabench(scenario="scenarios/chaos/quick/kill.yaml", backend="pgstore")
    def test_with_the_marker(durabench):
        assert durabench.run().passed

Registered through the `pytest11` entry point (`durabench = "harness.pytest_plugin"`),
so installing durabench is enough. Importing it costs nothing: this module imports only
pytest and the standard library, and the harness is imported on the first `run()`. A
session in which no test calls `durabench.run()` prints nothing and writes nothing.

Each run's results directory goes under `--durabench-out DIR` (default: pytest's
temporary directory), in a directory per test; each test keeps its results
(`durabench.results`, and `user_properties` for `--junitxml`), and pytest's terminal
report ends with one line over every run of the session.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["MARKER", "Durabench", "DurabilityResult"]

MARKER = "durabench"


@dataclass(frozen=True)
class DurabilityResult:
    """One backend's outcome of one `durabench.run()`: summary.json's figures with the
    evidence a test asserts on."""

    backend: str
    scenario: str
    results: Path  # the results directory
    summary: dict[str, Any] = field(repr=False)
    headline: str = ""  # the three-line headline, joined with newlines

    @property
    def runs(self) -> int:
        return int(self.summary.get("runs") or 0)

    @property
    def integrity(self) -> float:
        """Runs passing every verdict / runs (all runs, exposed or not)."""
        return float(self.summary.get("integrity") or 0.0)

    @property
    def _evidence(self) -> dict[str, Any]:
        evidence: dict[str, Any] = self.summary.get("evidence") or {}
        return evidence

    @property
    def exposed_runs(self) -> int | None:
        exposure = self.summary.get("exposure")
        return None if exposure is None else int(exposure.get("exposed_runs") or 0)

    @property
    def n(self) -> int:
        """The runs the evidence counts: the exposed ones (every run without faults)."""
        return int(self._evidence.get("n") or 0)

    @property
    def integrity_lower_bound(self) -> float:
        """The exact one-sided 95% lower bound of integrity among the exposed runs (every
        run without faults): what `--until-integrity` holds a backend to. 0 with no run."""
        from harness.stats import lower_bound

        return lower_bound(int(self._evidence.get("passed") or 0), self.n)

    @property
    def interval(self) -> tuple[float, float]:
        """The exact two-sided 95% interval the report and the console show."""
        return float(self._evidence.get("lower", 0.0)), float(self._evidence.get("upper", 1.0))

    @property
    def anomalies(self) -> dict[str, int]:
        """Runs per verdict that failed (only the failing verdicts)."""
        return {k: int(v) for k, v in (self.summary.get("anomalies") or {}).items() if v}

    @property
    def result(self) -> str:
        """pass | fail | unknown | inconclusive | not applicable."""
        return str(self.summary.get("result") or "unknown")

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    def line(self) -> str:
        low = self.integrity_lower_bound
        return (
            f"{self.backend} {Path(self.scenario).stem}: {self.result}, integrity "
            f"{self.integrity:.3f} (lower bound {low:.3f}, n={self.n})"
        )


_RESULTS = pytest.StashKey[list[tuple[str, DurabilityResult]]]()  # (test id, result)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "test"


class Durabench:
    """The `durabench` fixture: `run()` a scenario on one backend, keep its result."""

    def __init__(self, out: Path, defaults: dict[str, Any], keep: list[DurabilityResult]) -> None:
        self.out = out
        self.defaults = defaults
        self.results = keep

    def _arguments(self, scenario: str | Path | None, backend: str | None) -> tuple[str, str]:
        chosen = scenario if scenario is not None else self.defaults.get("scenario")
        name = backend if backend is not None else self.defaults.get("backend")
        if chosen is None or name is None:
            raise pytest.UsageError(
                "durabench.run() needs a scenario and a backend (as arguments or in "
                "@pytest.mark.durabench(scenario=..., backend=...))"
            )
        return str(chosen), str(name)

    async def arun(
        self,
        scenario: str | Path | None = None,
        backend: str | None = None,
        *,
        trials: int | None = None,
    ) -> DurabilityResult:
        """`run()` for async tests."""
        from harness.headline import headline_lines, outcomes_from_results
        from harness.runner import BenchmarkRun

        path, name = self._arguments(scenario, backend)
        bench = BenchmarkRun(
            Path(path), [name], self.out, trials=trials or int(self.defaults.get("trials", 1))
        )
        results = await bench.execute()
        summary = json.loads((results.path / "summary.json").read_text())
        if name not in summary:
            raise RuntimeError(f"{results.path}: no summary for {name}")
        lines = headline_lines(outcomes_from_results(results.path))
        result = DurabilityResult(name, path, results.path, summary[name], "\n".join(lines))
        self.results.append(result)
        return result

    def run(
        self,
        scenario: str | Path | None = None,
        backend: str | None = None,
        *,
        trials: int | None = None,
    ) -> DurabilityResult:
        """Run `scenario` (a path or a shipped scenario's name) on `backend`, judge it,
        and return the result; the arguments default to the test's durabench marker."""
        coroutine = self.arun(scenario, backend, trials=trials)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine)
        # an async test: its loop is running, so the run gets a loop of its own
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("durabench", "durabench: durability assertions")
    group.addoption(
        "--durabench-out",
        metavar="DIR",
        default=None,
        help="Where the durabench fixture writes results directories (one directory per "
        "test). Default: pytest's temporary directory.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scenario=None, backend=None, trials=1): defaults for durabench.run() "
        "in this test",
    )
    config.stash[_RESULTS] = []


@pytest.fixture
def durabench(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Durabench]:
    """Run durabench scenarios from a test: `durabench.run(scenario, backend=...)`."""
    marker = request.node.get_closest_marker(MARKER)
    defaults = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        defaults.setdefault("scenario", marker.args[0])
    chosen = request.config.getoption("--durabench-out")
    root = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "durabench"
    out = root / _slug(request.node.nodeid)
    keep: list[DurabilityResult] = []
    yield Durabench(out, defaults, keep)
    session = request.config.stash.get(_RESULTS, [])
    for result in keep:
        session.append((request.node.nodeid, result))
        request.node.user_properties.append(
            (
                f"durabench:{result.backend}",
                f"{result.result} integrity={result.integrity:.3f} "
                f"lower_bound={result.integrity_lower_bound:.3f} n={result.n} "
                f"results={result.results}",
            )
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line over every durabench run of the session (nothing when there was none)."""
    results = terminalreporter.config.stash.get(_RESULTS, [])
    if not results:
        return
    tests = len({nodeid for nodeid, _ in results})
    held = sum(r.passed for _, r in results)
    worst = min((r for _, r in results), key=lambda r: r.integrity_lower_bound)
    terminalreporter.write_line(
        f"durabench: {len(results)} run(s) in {tests} test(s), {held} passed every verdict; "
        f"weakest: {worst.line()}"
    )
