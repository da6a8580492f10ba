"""Live metrics scraped over HTTP during a real run: while it runs the endpoint shows
the fault in progress and the runs in flight, and at the end its numbers are the
results' numbers (committed steps and the step-time sum from steps.parquet, anomalies and
finished runs from summary.json)."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.evaluate import step_table
from harness.metrics import serve_metrics
from harness.platform.base import free_port
from harness.runner import BenchmarkRun
from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

SLOW: dict[str, Any] = {
    "runs": 6,
    "steps": 30,
    "load": {"concurrency": 3},
    "verify": {"failure_probability": 0.0},
    "llm": {"latency": {"distribution": "constant", "ms": 10}},
    "tool_latency": {"distribution": "constant", "ms": 5},
    "faults": [{"kind": "pause", "at_s": 0.3, "duration_s": 0.8}],
}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_the_endpoint_during_a_run_shows_what_the_results_then_say(
    write_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    port = free_port()
    seen: list[dict[Any, float]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.1):
            seen.append(scrape(port))

    with serve_metrics(port):
        poller = threading.Thread(target=poll)
        poller.start()
        try:
            bench = BenchmarkRun(write_scenario(**SLOW), ["baseline"], tmp_path)
            results = await bench.execute()
        finally:
            stop.set()
            poller.join()
        final = scrape(port)
    summary = json.loads((results.path / "summary.json").read_text())["baseline"]
    steps = step_table(pd.read_parquet(results.path / "steps.parquet"))

    paused = [value(s, "durabench_active_faults", backend="baseline", kind="pause") for s in seen]
    assert 1 in paused, "the pause, while it lasted"
    assert any(value(s, "durabench_runs_in_flight", backend="baseline") > 0 for s in seen)
    counts = [value(s, "durabench_committed_steps_total", backend="baseline") for s in seen]
    assert counts == sorted(counts) and 0 < counts[len(counts) // 2] < summary["committed_steps"]

    assert (
        value(final, "durabench_committed_steps_total", backend="baseline")
        == (summary["committed_steps"])
        == len(steps)
    )
    assert value(final, "durabench_step_latency_seconds_count", backend="baseline") == len(steps)
    assert value(final, "durabench_step_latency_seconds_sum", backend="baseline") == pytest.approx(
        steps["step_ms"].sum() / 1000, rel=1e-6
    )
    assert value(
        final, "durabench_overhead_latency_seconds_sum", backend="baseline"
    ) == pytest.approx(steps["overhead_ms"].clip(lower=0).sum() / 1000, rel=1e-6)
    inf = value(final, "durabench_step_latency_seconds_bucket", backend="baseline", le="+Inf")
    assert inf == len(steps)
    assert value(final, "durabench_runs_finished_total", backend="baseline") == summary["runs"]
    assert value(final, "durabench_runs_in_flight", backend="baseline") == 0
    assert value(final, "durabench_active_faults", backend="baseline", kind="pause") == 0
    for verdict, count in summary["anomalies"].items():
        got = value(final, "durabench_anomalies_total", backend="baseline", verdict=verdict)
        assert got == count, verdict


def test_a_port_in_use_is_one_clear_error() -> None:
    from harness.errors import DurabenchError

    port = free_port()
    with serve_metrics(port), pytest.raises(DurabenchError, match=f"--metrics-port {port}"):
        serve_metrics(port).__enter__()


def test_the_dashboard_and_scrape_config_name_only_what_the_endpoint_serves() -> None:
    import re

    import yaml

    from harness.metrics import LiveMetrics

    deploy = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
    served: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in LiveMetrics().collect():
        served |= {family.name + s for s in suffixes[family.type]}
    dashboard = json.loads((deploy / "dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    annotations = [a for a in dashboard["annotations"]["list"] if "expr" in a]
    assert annotations and "durabench_active_faults" in annotations[0]["expr"], "fault windows"
    named = {
        n
        for q in queries + [a["expr"] for a in annotations]
        for n in re.findall(r"durabench_\w+", q)
    }
    assert named and named <= served, named - served
    assert {"durabench_committed_steps_total", "durabench_step_latency_seconds_bucket"} <= named
    scrape = yaml.safe_load((deploy / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
