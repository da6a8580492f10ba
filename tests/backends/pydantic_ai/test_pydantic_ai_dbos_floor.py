"""`pydantic-ai:dbos`'s raw floor: the same agent with `DBOSDurability` as a plain program
(backends/pydantic_ai/dbos_floor.py), run on the session's Postgres, named before the
hand-written DBOS floor, so the summary shows the ratio to both."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backends.base import ExternalServices
from backends.baseline.floor import Samples
from harness.oracle import expected_run
from harness.runner import BenchmarkRun
from harness.scenario import load_scenario
from tests.conftest import ScenarioFactory

pytest.importorskip("pydantic_ai.durable_exec.dbos")

BACKEND = "pydantic-ai:dbos"
SCENARIO = {
    "runs": 3,
    "steps": 3,
    "load": {"concurrency": 2},
    "verify": {"failure_probability": 0.3, "on_failure": "retry_act", "max_attempts": 3},
}


def _model_step(function_id: int, started_ms: int, step: int | None) -> dict[str, object]:
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

    part = (
        ToolCallPart("get_quotes", {"step": step, "attempt": 1}, f"call-{step}")
        if step is not None
        else TextPart("done")
    )
    return {
        "function_id": function_id,
        "function_name": "durabench_rav__model.request",
        "output": ModelResponse(parts=[part]),
        "started_at_epoch_ms": started_ms,
        "completed_at_epoch_ms": started_ms + 1,
    }


def _tool_step(function_id: int, started_ms: int, step: int, move: str) -> dict[str, object]:
    from backends.pydantic_ai.dbos_floor import TOOL_STEP

    return {
        "function_id": function_id,
        "function_name": TOOL_STEP,
        "output": {"step": step, "attempt": 1, "move": move},
        "started_at_epoch_ms": started_ms,
        "completed_at_epoch_ms": started_ms + 2,
    }


def test_a_step_runs_from_its_model_request_to_the_model_request_after_its_commit() -> None:
    from backends.pydantic_ai.dbos_floor import Notes, step_samples

    recorded = [
        _tool_step(2, 1_010, 0, "commit"),  # listed out of order: DBOS's order is function_id
        _model_step(1, 1_000, 0),
        _model_step(3, 1_020, 1),
        _tool_step(4, 1_030, 1, "commit"),
        _model_step(5, 1_045, None),  # the closing answer
    ]
    notes = Notes(model_ms={("wf", 1): 2.0, ("wf", 3): 3.0}, tool_ms={("run", 1): 4.0})
    samples = Samples()
    first = step_samples("run", "wf", recorded, notes, samples)
    assert first == 1.0
    assert [(s["step"], s["step_ms"], s["service_ms"]) for s in samples.steps] == [
        (0, pytest.approx(20.0), 2.0),
        (1, pytest.approx(25.0), 7.0),
    ]


@pytest.mark.integration
@pytest.mark.slow
async def test_with_floor_measures_the_framework_floor_first_then_the_dbos_floor(
    write_scenario: ScenarioFactory, tmp_path: Path, pg_dsn: str
) -> None:
    scenario = write_scenario(**SCENARIO)
    bench = BenchmarkRun(
        scenario, [BACKEND], tmp_path / "r", external=ExternalServices(pg_dsn=pg_dsn)
    )
    bench.with_floor = True
    results = await bench.execute()
    floor = results.read_json("summary.json")[BACKEND]["floor"]
    assert floor["program"] == BACKEND
    assert set(floor["programs"]) == {BACKEND, "dbos"}
    assert floor["step_vs_floor"] > 0
    floors = pd.read_parquet(results.path / "floors.parquet")
    assert floors["program"].unique().tolist() == [BACKEND, "dbos"]  # run in this order
    assert set(floors.loc[floors["own"], "program"]) == {BACKEND}
    loaded = load_scenario(scenario)
    runs = [f"run-{i:06d}" for i in range(loaded.runs)]
    expected = sum(len(expected_run(loaded, r).state.steps) for r in runs)
    for program, rows in floors.groupby(["program", "floor_pass"]):  # each floor pass
        assert len(rows) == expected, program  # every step of every run, as the oracle has it
        assert (rows["step_ms"] > 0).all() and (rows["overhead_ms"] >= 0).all()
        assert rows["start_latency_ms"].notna().sum() == 3  # one per run
