"""Latency percentiles of a distributed Locust test, merged exactly: HDR histograms.

Percentiles cannot be averaged: the p99 of two workers is not the mean of their p99s.
So every Locust process that runs users records each request's response time into an
HDR histogram per (request type, name) (microseconds, 3 significant digits); a worker
attaches its histograms, encoded, to each stats report it sends its master (Locust's
`report_to_master` event) and starts afresh, and the master adds each report's
histograms into its own (`worker_report`). HDR addition is exact (bucket counts add),
so the master's histogram is the one a single process would have recorded from every
sample, and its percentiles are those of all samples. The reports ride in the same
messages as Locust's own stats, so the counts agree with Locust's. At exit, the master
(or the one local process) writes the merged histograms to `--durabench-hdr-file`.

This module imports no Locust: the locustfile wires `attach` to Locust's events, and
the driver reads the file back with `read_hdr_file`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from harness.errors import DurabenchError

__all__ = [
    "HDR_KEY",
    "PERCENTILES",
    "LatencyHistograms",
    "new_histogram",
    "percentiles_ms",
    "read_hdr_file",
]

LOWEST_US = 1
HIGHEST_US = 24 * 3600 * 1_000_000  # a day: no agent run is timed longer
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 95.0, 99.0, 99.9)
HDR_KEY = "durabench_hdr"  # the field of a worker's stats report that holds them


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def _label(q: float) -> str:
    return f"p{q:g}".replace(".", "_") if q % 1 else f"p{int(q)}"


def percentiles_ms(histogram: HdrHistogram) -> dict[str, float | None]:
    """p50, p95, p99 and p99.9 in ms (None without samples): HDR's value at percentile,
    the highest value equivalent to the sample at that rank."""
    count = histogram.get_total_count()
    return {
        f"{_label(q)}_ms": (histogram.get_value_at_percentile(q) / 1000.0 if count else None)
        for q in PERCENTILES
    }


class LatencyHistograms:
    """The histograms of one Locust process, keyed `<request type>\\t<name>`."""

    def __init__(self) -> None:
        self.histograms: dict[str, HdrHistogram] = {}

    def _of(self, key: str) -> HdrHistogram:
        if key not in self.histograms:
            self.histograms[key] = new_histogram()
        return self.histograms[key]

    def record(self, request_type: str, name: str, response_time_ms: float) -> None:
        micros = min(max(round(response_time_ms * 1000.0), LOWEST_US), HIGHEST_US)
        self._of(f"{request_type}\t{name}").record_value(micros)

    def take_encoded(self) -> dict[str, str]:
        """Every histogram with samples, encoded, and a fresh start (a worker's report
        carries what it recorded since its last one)."""
        encoded = {
            key: h.encode().decode("ascii")
            for key, h in self.histograms.items()
            if h.get_total_count()
        }
        self.histograms = {}
        return encoded

    def add_encoded(self, encoded: dict[str, str]) -> None:
        for key, text in encoded.items():
            self._of(key).decode_and_add(text.encode("ascii"))

    def write(self, path: Path) -> None:
        """`{name: {type, count, p50_ms, ..., encoded}}`, the histograms as HDR's
        base64 encoding so a reader can merge or re-query them."""
        data: dict[str, Any] = {}
        for key, histogram in sorted(self.histograms.items()):
            request_type, name = key.split("\t", 1)
            data[name] = {
                "type": request_type,
                "count": histogram.get_total_count(),
                **percentiles_ms(histogram),
                "encoded": histogram.encode().decode("ascii"),
            }
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)

    def attach(self, events: Any, path_of: Any, role_of: Any) -> None:
        """Wire to Locust's events: record every request; a worker (`role_of()` is
        "worker") ships and resets at each report; the master merges each report; the
        process that is not a worker writes `path_of()` (when set) as it quits."""

        def on_request(request_type: str, name: str, response_time: float, **_: Any) -> None:
            self.record(str(request_type), str(name), float(response_time))

        def on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            data[HDR_KEY] = self.take_encoded()

        def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            self.add_encoded(data.get(HDR_KEY) or {})

        def on_quit(**_: Any) -> None:
            path = path_of()
            if path and role_of() != "worker":
                self.write(Path(path))

        events.request.add_listener(on_request)
        events.report_to_master.add_listener(on_report)
        events.worker_report.add_listener(on_worker_report)
        events.quit.add_listener(on_quit)


def read_hdr_file(path: Path) -> dict[str, dict[str, Any]]:
    """The merged histograms a Locust master wrote, with each one's percentiles
    recomputed from its encoding (so the file's figures are checked, not trusted)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DurabenchError(f"{path}: Locust wrote no latency histograms") from None
    except (OSError, ValueError) as exc:
        raise DurabenchError(f"{path}: unreadable latency histograms: {exc}") from None
    if not isinstance(data, dict):
        raise DurabenchError(f"{path}: latency histograms must be an object per request name")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in data.items():
        try:
            histogram = HdrHistogram.decode(str(entry["encoded"]).encode("ascii"))
        except (KeyError, TypeError, ValueError) as exc:
            raise DurabenchError(f"{path}: `{name}`: not an HDR histogram ({exc})") from None
        out[str(name)] = {
            "type": entry.get("type"),
            "count": histogram.get_total_count(),
            **percentiles_ms(histogram),
            "histogram": histogram,
        }
    return out
