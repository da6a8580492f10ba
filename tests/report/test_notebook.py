"""notebooks/analysis.ipynb runs from top to bottom against results made in this session
(nbclient, a real ipykernel), and its key numbers are the results' own."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.report.conftest import Runs

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"


def test_the_analysis_notebook_reproduces_the_key_numbers(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("DURABENCH_RESULTS", str(runs.faulty))
    NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent.parent)}},
    ).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6, "integrity, latency CDF, breakdown, timeline, wasted, bloat"
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert str(runs.faulty.name) in printed

    key_line = [line for line in printed.splitlines() if line.startswith('[{"fault_class"')]
    (numbers,) = json.loads(key_line[-1])
    summary = json.loads((runs.faulty / "summary.json").read_text())["baseline"]
    assert numbers["backend"] == "baseline"
    assert round(numbers["integrity"], 6) == summary["integrity"]
    assert round(numbers["p99_ms"], 4) == summary["step_latency_ms"]["p99"]
