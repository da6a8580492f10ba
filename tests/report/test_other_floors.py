"""The report's second floor table: each floor a backend lists after its own, against the
backend's step p50 (a framework backend's substrate floor says what the framework costs
over hand-written code on the same engine)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from harness.report.load import ResultSet
from harness.report.metrics import other_floors_table


def _program(step_p50: float, own: bool) -> dict[str, Any]:
    return {"own": own, "step_ms": {"p50": step_p50}}


def test_each_floor_after_the_backends_own_gets_a_row_with_its_ratio() -> None:
    summary = {
        "pydantic-ai:temporal": {
            "step_latency_ms": {"p50": 42.0},
            "floor": {
                "program": "pydantic-ai:temporal",
                "programs": {
                    "pydantic-ai:temporal": _program(40.0, own=True),
                    "temporal": _program(30.0, own=False),
                },
            },
        },
        "baseline": {"step_latency_ms": {"p50": 1.0}, "floor": {"program": "baseline"}},
    }
    item = SimpleNamespace(fault_class="fidelity (no faults)", summary=summary)
    table = other_floors_table(cast(ResultSet, SimpleNamespace(items=[item])))
    assert table.to_dict("records") == [
        {
            "fault_class": "fidelity (no faults)",
            "backend": "pydantic-ai:temporal",
            "floor": "temporal",
            "floor_step_p50": 30.0,
            "step_vs_this_floor": 1.4,
        }
    ]
