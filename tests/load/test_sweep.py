"""`durabench sweep` over a small grid: every cell runs and is recorded, with figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ScenarioFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GRID_C, GRID_S = (1, 4), (5, 20)


@pytest.mark.slow  # eight cells of real runs: about 15 s
def test_a_small_sweep_records_every_cell(write_scenario: ScenarioFactory, tmp_path: Path) -> None:
    path = write_scenario(verify={"failure_probability": 0.0}, runs=2)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "sweep",
            str(path),
            "--backend",
            "baseline",
            "--concurrency",
            "4,1",
            "--steps",
            "5,20",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = tmp_path.glob("sweep-*")
    cells = json.loads((sweep / "sweep.json").read_text())["cells"]
    assert pd.read_parquet(sweep / "sweep.parquet").to_dict("records") == cells
    assert sorted((c["concurrency"], c["steps"]) for c in cells) == [
        (c, s) for c in GRID_C for s in GRID_S
    ]
    for cell in cells:
        assert cell["status"] == "ok", cell["error"]
        assert cell["runs"] == max(2, 2 * cell["concurrency"]), "default: two runs per slot"
        assert cell["completed"] == cell["runs"] and cell["integrity"] == 1.0
        assert cell["steps_per_s"] > 0 and cell["runs_per_s"] > 0
        assert cell["step_p50_ms"] <= cell["step_p95_ms"] <= cell["step_p99_ms"]
        assert cell["overhead_p50_ms"] is not None
        assert cell["history_length_mean"] == cell["steps"], "every run kept its whole history"
        assert cell["persisted_bytes_mean"] == 0, "the baseline persists nothing"
        assert (sweep / cell["results"] / "summary.json").is_file()
    # each cell ran a derived scenario with its own load and size, kept beside the cells
    derived = yaml.safe_load((sweep / "scenarios" / "tiny-c4-s20.yaml").read_text())
    assert derived["load"] == {"concurrency": 4} and derived["steps"] == 20
    assert derived["runs"] == 8 and derived["seed"] == 11
    for figure in ("sweep-throughput.png", "sweep-cost.png"):
        assert (sweep / figure).stat().st_size > 1000, figure

    # the report's scaling section shows the sweep's own numbers
    from harness.report import build_report

    paths = build_report([sweep / cells[0]["results"], sweep], tmp_path / "report")
    scaling = json.loads(paths.data.read_text())["sections"]["scaling"]
    shown = {(r["concurrency"], r["steps"]): r["steps_per_s"] for r in scaling["tables"]["scaling"]}
    assert shown == {(c["concurrency"], c["steps"]): c["steps_per_s"] for c in cells}
    assert "baseline" in scaling["reading"]
    assert {"scaling_throughput.png", "scaling_cost.png"} <= {p.name for p in paths.figures}


def test_a_bad_grid_is_one_clear_error(write_scenario: ScenarioFactory, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "sweep",
            str(write_scenario()),
            "-b",
            "baseline",
            "--concurrency",
            "1,many",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "--concurrency must be comma-separated integers" in out.stderr
    assert not list(tmp_path.glob("sweep-*")), "nothing started"
