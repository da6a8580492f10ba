"""The report as data: sections of tables, figures, notes and code, in order.

Builders fill it; the writers (`render.py`) turn the same document into HTML, Markdown
and JSON, so the three never disagree about a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MISSING",
    "Block",
    "Code",
    "Document",
    "Note",
    "Plot",
    "Section",
    "Table",
    "format_value",
    "label",
]

# display headers (with units) for the data columns; others show as they are
LABELS = {
    "fault_class": "fault class",
    "pass_k": "pass^k",
    "p50": "p50 ms",
    "p95": "p95 ms",
    "p99": "p99 ms",
    "p99.9": "p99.9 ms",
    "max": "max ms",
    "mean": "mean ms",
    "overhead_p50": "overhead p50 ms",
    "overhead_p99": "overhead p99 ms",
    "baseline_p50": "baseline overhead p50 ms",
    "baseline_p99": "baseline overhead p99 ms",
    "ratio_p50": "ratio p50 (x baseline)",
    "ratio_p99": "ratio p99 (x baseline)",
    "extra_ms_p50": "extra ms/step (p50)",
    "step_ratio_p50": "step p50 (x baseline)",
    "floor_ratio_p50": "ratio p50 (x raw floor)",
    "step_vs_this_floor": "step p50 (x this floor)",
    "bytes_per_step": "bytes/step",
    "history_per_step": "history entries/step",
    "max_bytes_run": "max bytes in one run",
    "start_s": "start s",
    "end_s": "end s",
    "duration_s": "duration s",
    "llm_calls_expected": "llm calls (oracle)",
    "wasted_llm_calls": "extra llm calls",
    "wasted_tokens": "extra tokens (approx.)",
    "tool_expected": "tool executions (oracle)",
    "wasted_tool_executions": "extra tool executions",
    "acts_indeterminate": "acts indeterminate",
    "worst_severity": "worst count",
}
FRACTIONS = frozenset({"integrity", "pass_k"})
MISSING = "\u2013"  # an en dash: no value


def label(column: str) -> str:
    return LABELS.get(column, column.replace("_", " "))


def format_value(value: Any, column: str = "") -> str:
    """One cell as text: fractions to 3 decimals, other floats to 4 significant digits
    (whole numbers from 1000 up), None/NaN as an en dash."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if column in FRACTIONS:
            return f"{number:.3f}"
        if abs(number) >= 1000:
            return f"{number:.0f}"
        return f"{number:.4g}"
    if value is pd.NA:
        return MISSING
    return str(value)


@dataclass(frozen=True)
class Table:
    """A frame to show; `columns` picks what HTML and Markdown show (report.json keeps all)."""

    name: str  # key in report.json
    frame: pd.DataFrame
    title: str = ""
    columns: tuple[str, ...] | None = None

    def shown(self) -> pd.DataFrame:
        if self.columns is None:
            return self.frame
        return self.frame[[c for c in self.columns if c in self.frame.columns]]


@dataclass(frozen=True)
class Plot:
    name: str  # file stem of the PNG
    png: bytes
    alt: str  # what the figure shows, with its key numbers, for readers who cannot see it


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Table | Plot | Note | Code


@dataclass
class Section:
    key: str  # anchor and report.json key
    title: str
    reading: str  # one plain sentence: what this section shows, with its headline number
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]
    inputs: list[str]
