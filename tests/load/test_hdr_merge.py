"""Distributed Locust merges latency exactly: a real master and two real worker
processes, each worker reporting known response times; the master's merged HDR
histogram has the percentiles of one histogram of every sample (not their average)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.load.hdr import LatencyHistograms, percentiles_ms, read_hdr_file
from harness.platform.base import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).resolve().parent / "hdr_locustfile.py"
TIMEOUT_S = 180


def one_histogram(values: list[float]) -> LatencyHistograms:
    histograms = LatencyHistograms()
    for value in values:
        histograms.record("sample", "latency", value)
    return histograms


def test_the_master_merges_worker_histograms_into_the_histogram_of_all_samples(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HDR_SAMPLES_DIR": str(tmp_path)}
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    master = subprocess.Popen(
        [
            *locust,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            "2",
            "--headless",
            "--only-summary",
            "-u",
            "2",
            "-r",
            "10",
            "-t",
            "7s",
            "--json-file",
            str(tmp_path / "stats"),
            "--durabench-hdr-file",
            str(tmp_path / "hdr.json"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "master.log").open("w"),
    )
    workers = [
        subprocess.Popen(
            [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"worker-{i}.log").open("w"),
        )
        for i in range(2)
    ]
    try:
        assert master.wait(timeout=TIMEOUT_S) == 0, (tmp_path / "master.log").read_text()
        for worker in workers:
            worker.wait(timeout=60)
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()

    per_worker = [json.loads((tmp_path / f"samples-{i}.json").read_text()) for i in (0, 1)]
    every_sample = per_worker[0] + per_worker[1]
    merged = read_hdr_file(tmp_path / "hdr.json")["latency"]
    single = one_histogram(every_sample).histograms["sample\tlatency"]

    assert merged["count"] == single.get_total_count() == len(every_sample) == 800
    assert merged["histogram"].equals(single), "bucket for bucket the same histogram"
    expected = percentiles_ms(single)
    assert {k: merged[k] for k in expected} == expected
    # Locust's own count of the requests agrees: the histograms rode in its reports
    (entry,) = json.loads((tmp_path / "stats.json").read_text())
    assert entry["num_requests"] == merged["count"]
    # what averaging the workers' percentiles would have said is far from the truth
    worker_p99 = [
        percentiles_ms(one_histogram(v).histograms["sample\tlatency"])["p99_ms"] for v in per_worker
    ]
    averaged = sum(p for p in worker_p99 if p is not None) / 2
    assert (
        merged["p99_ms"] is not None and abs(averaged - merged["p99_ms"]) > 0.2 * merged["p99_ms"]
    )
