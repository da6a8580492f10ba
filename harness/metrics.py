"""Live Prometheus metrics while a run, suite or load is in progress (`--metrics-port`).

Read at scrape time from the same evidence the results are made of, never from a second
bookkeeping: the workers' measurement rows (harness/measure.py; committed steps, step
and overhead latency per backend, computed the way `steps.parquet` computes them), the
nemesis (faults applied and not yet healed), the session's finished runs, and each
results directory's summary.json once it is written (anomalies found so far). The
runner announces each backend session it opens (`runner.SESSION_OBSERVERS`); nothing
else in the harness knows this module exists. Served on 127.0.0.1 only by default.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["BUCKETS_S", "LiveMetrics", "serve_metrics"]

# step and overhead latency buckets (seconds): 1 ms to 2 min
BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0,
)  # fmt: skip
DEFAULT_HOST = "127.0.0.1"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_S, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*BUCKETS_S, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


@dataclass
class _Backend:
    """What was read so far of one backend's sessions."""

    committed: int = 0
    step: _Histogram = field(default_factory=_Histogram)
    overhead: _Histogram = field(default_factory=_Histogram)
    anomalies: dict[str, int] = field(default_factory=dict)


@dataclass
class _Watched:
    """One backend session: its measurement files read up to `offsets`."""

    session: Any  # harness.runner.BackendSession
    offsets: dict[Path, int] = field(default_factory=dict)
    open_steps: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # start, svc
    committed: set[tuple[str, int]] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    judged: bool = False


class LiveMetrics(Collector):
    """A prometheus collector over the sessions it was shown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: list[_Watched] = []
        self._backends: dict[str, _Backend] = {}

    def observe(self, session: Any) -> None:
        """runner.SESSION_OBSERVERS hook: a backend session just opened."""
        with self._lock:
            self._watched.append(_Watched(session))
            self._backends.setdefault(session.name, _Backend())

    def _read_rows(self, watched: _Watched) -> None:
        backend = self._backends[watched.session.name]
        directory = Path(watched.session.env.measurements_dir)
        for path in sorted(directory.glob("*.jsonl")) if directory.is_dir() else []:
            offset = watched.offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            end = data.rfind(b"\n") + 1  # a line still being written waits for the next scrape
            watched.offsets[path] = offset + end
            for line in data[:end].splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                self._take(watched, backend, row)

    def _take(self, watched: _Watched, backend: _Backend, row: dict[str, Any]) -> None:
        """As evaluate.step_table: a step's time runs from its first phase's start to its
        ok commit; overhead is that minus the time spent inside the services."""
        key = (str(row.get("run_id")), int(row.get("step", -1)))
        watched.started.add(key[0])
        if key in watched.committed:
            return
        entry = watched.open_steps.setdefault(key, [float(row.get("start") or 0.0), 0.0])
        entry[0] = min(entry[0], float(row.get("start") or entry[0]))
        entry[1] += float(row.get("service_ms") or 0.0)
        if row.get("phase") == "commit" and row.get("outcome") == "ok":
            watched.committed.add(key)
            start, service_ms = watched.open_steps.pop(key)
            step_s = float(row.get("end") or start) - start
            backend.committed += 1
            backend.step.observe(step_s)
            backend.overhead.observe(max(0.0, step_s - service_ms / 1000.0))

    def _read_summary(self, watched: _Watched) -> None:
        path = Path(watched.session.results.path) / "summary.json"
        if watched.judged or not path.is_file():
            return
        try:
            summary = json.loads(path.read_text()).get(watched.session.name)
        except (OSError, ValueError):
            return
        if not isinstance(summary, dict):
            return
        watched.judged = True
        counts = self._backends[watched.session.name].anomalies
        for verdict, n in (summary.get("anomalies") or {}).items():
            counts[verdict] = counts.get(verdict, 0) + int(n or 0)
        stray = int((summary.get("stray_effects") or {}).get("run_ids") or 0)
        counts["stray_effects"] = counts.get("stray_effects", 0) + stray

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            for watched in self._watched:
                self._read_rows(watched)
                self._read_summary(watched)
            yield from self._families()

    def _families(self) -> Iterator[Metric]:
        committed = CounterMetricFamily(
            "durabench_committed_steps", "Steps acknowledged as committed", labels=["backend"]
        )
        step = HistogramMetricFamily(
            "durabench_step_latency_seconds",
            "Committed step time: first phase start to the commit",
            labels=["backend"],
        )
        overhead = HistogramMetricFamily(
            "durabench_overhead_latency_seconds",
            "Orchestration overhead per committed step: step time minus LLM and tool time",
            labels=["backend"],
        )
        for name, b in self._backends.items():
            committed.add_metric([name], b.committed)
            step.add_metric([name], b.step.buckets(), b.step.total)
            overhead.add_metric([name], b.overhead.buckets(), b.overhead.total)
        faults = GaugeMetricFamily(
            "durabench_active_faults",
            "Faults applied and not yet healed",
            labels=["backend", "kind"],
        )
        in_flight = GaugeMetricFamily(
            "durabench_runs_in_flight", "Runs started and not finished", labels=["backend"]
        )
        finished = CounterMetricFamily(
            "durabench_runs_finished", "Runs finished (judged afterwards)", labels=["backend"]
        )
        active: dict[tuple[str, str], int] = {}
        flying: dict[str, int] = {}
        done: dict[str, int] = {}
        for watched in self._watched:
            session, name = watched.session, watched.session.name
            for fault in session.nemesis.in_progress():
                kind = fault.split(" ", 1)[0]
                active[(name, kind)] = active.get((name, kind), 0) + 1
            ended = len(session.timings)
            done[name] = done.get(name, 0) + ended
            live = 0 if watched.judged else max(0, len(watched.started) - ended)
            flying[name] = flying.get(name, 0) + live
        for name in self._backends:
            in_flight.add_metric([name], flying.get(name, 0))
            finished.add_metric([name], done.get(name, 0))
        for (name, kind), count in sorted(active.items()):
            faults.add_metric([name, kind], count)
        anomalies = CounterMetricFamily(
            "durabench_anomalies",
            "Runs whose verdict failed, per backend and verdict, as each results are judged",
            labels=["backend", "verdict"],
        )
        for name, b in self._backends.items():
            for verdict, count in sorted(b.anomalies.items()):
                anomalies.add_metric([name, verdict], count)
        yield from (committed, step, overhead, faults, in_flight, finished, anomalies)


class serve_metrics:
    """`with serve_metrics(port):` serve /metrics on 127.0.0.1:port while the block runs,
    watching every backend session the runner opens meanwhile."""

    def __init__(self, port: int, host: str = DEFAULT_HOST) -> None:
        self.port, self.host = port, host
        self.metrics = LiveMetrics()
        self._server: Any = None

    def __enter__(self) -> LiveMetrics:
        from harness.errors import DurabenchError
        from harness.runner import SESSION_OBSERVERS

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.metrics)
        try:
            self._server, _ = start_http_server(self.port, self.host, registry)
        except OSError as exc:
            raise DurabenchError(
                f"--metrics-port {self.port}: cannot listen on {self.host}: {exc}"
            ) from None
        SESSION_OBSERVERS.append(self.metrics.observe)
        return self.metrics

    def __exit__(self, *exc: object) -> None:
        from harness.runner import SESSION_OBSERVERS

        if self.metrics.observe in SESSION_OBSERVERS:
            SESSION_OBSERVERS.remove(self.metrics.observe)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
