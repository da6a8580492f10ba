"""The persisted run state: every field of a step survives the round trip through dicts."""

from __future__ import annotations

import dataclasses

from harness.state import RunState, StepRecord

RECORD = StepRecord(
    index=2,
    tool="get_quotes",
    arguments={"item": "sku-1", "quantity": 6},
    thought="compare two suppliers",
    output={"quotes": [{"supplier": "s1", "cents": 100}], "status": "ok"},
    verdicts=(False, True),
    attempts=2,
)


def test_a_step_record_to_dict_has_every_field_asdict_would_give() -> None:
    expected = {**dataclasses.asdict(RECORD), "verdicts": [False, True]}
    assert RECORD.to_dict() == expected
    assert set(RECORD.to_dict()) == {f.name for f in dataclasses.fields(StepRecord)}


def test_a_changed_dict_leaves_the_record_as_it_was() -> None:
    data = RECORD.to_dict()
    data["arguments"]["quantity"] = 7
    data["output"]["status"] = "changed"
    assert RECORD.arguments["quantity"] == 6 and RECORD.output["status"] == "ok"


def test_a_run_state_round_trips_through_its_dict() -> None:
    state = RunState("run-000001", "completed", (RECORD,), "done")
    assert RunState.from_dict(state.to_dict()) == state
