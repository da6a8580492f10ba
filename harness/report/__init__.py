"""Reports from results directories: load them into pandas, compute the report's
tables, draw its figures, and write report.html, report.md and report.json.

`build_report(results_dirs, out_dir)` is the entry point of `durabench report`;
`load_results` and the table functions are the starting point for a notebook.
"""

from __future__ import annotations

from harness.report.build import ReportPaths, build_document, build_report
from harness.report.load import Loaded, ResultSet, fault_class_of, load_one, load_results

__all__ = [
    "Loaded",
    "ReportPaths",
    "ResultSet",
    "build_document",
    "build_report",
    "fault_class_of",
    "load_one",
    "load_results",
]
