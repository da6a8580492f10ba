"""Exposure as a specification, on small hand-built tables: a fault exposes exactly the
runs it could have harmed, and a fault that touched nothing exposes nothing."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.exposure import (
    exposed_runs_by_fault,
    fault_label,
    with_fault_exposure,
    with_run_exposure,
)

B = "pgstore"


def phase(
    run: str, start: float, end: float, worker: str = "worker-0", **kw: Any
) -> dict[str, Any]:
    return {
        "backend": B,
        "run_id": run,
        "step": kw.get("step", 0),
        "attempt": 1,
        "phase": kw.get("phase", "reason"),
        "worker": worker,
        "start": start,
        "end": end,
        "outcome": kw.get("outcome", "ok"),
    }


def fault(kind: str, start: float | None, end: float | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "backend": B,
        "fault_index": kw.get("index", 0),
        "occurrence": kw.get("occurrence", 0),
        "kind": kind,
        "target": kw.get("target", "worker"),
        "actual_start": start,
        "actual_end": start if end is None else end,
        "selected": kw.get("selected", []),
        "outcome": kw.get("outcome", "ok"),
    }


def runs(*ids: str, unfinished: tuple[str, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame(
        [{"backend": B, "run_id": r, "finished_at": None if r in unfinished else 99.0} for r in ids]
    )


# run-a: worker-0 from 1 to 3; run-b: worker-1 from 2 to 4; run-c: worker-0 from 5 to 6
STEPS = pd.DataFrame(
    [
        phase("run-a", 1.0, 2.0),
        phase("run-a", 2.0, 3.0, phase="act"),
        phase("run-b", 2.0, 3.0, worker="worker-1"),
        phase("run-b", 3.5, 4.0, worker="worker-1", phase="commit"),
        phase("run-c", 5.0, 6.0),
    ]
)
RUNS = runs("run-a", "run-b", "run-c")


def exposed(
    *faults: dict[str, Any], steps: pd.DataFrame = STEPS, table: pd.DataFrame = RUNS
) -> list[set[str]]:
    found = exposed_runs_by_fault(pd.DataFrame(list(faults)), steps, table)
    return [set(found[(B, f["fault_index"], f["occurrence"])]) for f in faults]


def test_a_kill_exposes_only_the_runs_its_worker_held() -> None:
    kill = fault("kill", 2.5, selected=["pgstore-worker-0:4242"])
    assert exposed(kill) == [{"run-a"}]


def test_a_kill_of_a_worker_whose_backend_name_has_a_variant_exposes_what_it_held() -> None:
    # `pydantic-ai:dbos-worker-0:4242`: the component name itself has a colon
    kill = fault("kill", 2.5, selected=["pydantic-ai:dbos-worker-0:4242"])
    assert exposed(kill) == [{"run-a"}]


def test_a_kill_of_an_idle_worker_exposes_nothing() -> None:
    kill = fault("kill", 4.5, selected=["pgstore-worker-0:4242"])
    assert exposed(kill) == [set()]


def test_a_run_between_phases_is_still_held_by_its_worker() -> None:
    # run-b's phases on worker-1 end at 3.0 and resume at 3.5: at 3.2 worker-1 holds it
    kill = fault("kill", 3.2, selected=["pgstore-worker-1:7"])
    assert exposed(kill) == [{"run-b"}]


def test_a_killed_run_whose_row_was_lost_is_held_until_it_ends() -> None:
    # run-d's phase in flight at the kill was never written; the run did not finish
    steps = pd.concat([STEPS, pd.DataFrame([phase("run-d", 7.0, 7.5)])], ignore_index=True)
    table = runs("run-a", "run-b", "run-c", "run-d", unfinished=("run-d",))
    kill = fault("kill", 8.0, selected=["pgstore-worker-0:1"])
    assert exposed(kill, steps=steps, table=table) == [{"run-d"}]


def test_a_pause_exposes_what_its_worker_held_during_the_window() -> None:
    pause = fault("pause", 0.0, 1.5, selected=["pgstore-worker-0:1"])
    early = fault("pause", 0.0, 0.5, selected=["pgstore-worker-0:1"], index=1)
    assert exposed(pause, early) == [{"run-a"}, set()]


def test_a_store_restart_exposes_every_run_in_flight() -> None:
    restart = fault("restart", 2.5, 2.7, target="store", selected=["store:9"])
    assert exposed(restart) == [{"run-a", "run-b"}]


def test_a_link_fault_exposes_the_runs_with_a_phase_in_flight() -> None:
    # at 3.2 run-b sits between phases: no traffic of its own on any link
    cut = fault("network", 3.1, 3.3, target="worker->store")
    wide = fault("network", 2.5, 3.6, target="worker->store", index=1)
    assert exposed(cut, wide) == [set(), {"run-a", "run-b"}]


def test_service_faults_expose_the_phases_that_use_the_service() -> None:
    tool = fault("tool", 1.0, 1.9, target="tools")
    llm = fault("llm", 1.0, 1.9, target="llm", index=1)
    assert exposed(tool, llm) == [set(), {"run-a"}]


def test_a_crash_point_exposes_the_run_it_fired_in_and_what_its_worker_held() -> None:
    # it fired in run-b on worker-1 at 3.2; worker-1 held nothing else
    alone = fault("crash_point", 3.2, selected=["run-b:1:4242"])
    # it fired in run-a on worker-0 at 2.5: worker-0 died with nothing else either;
    # add run-e on worker-0 from 2.0 to 4.0 and the crash takes it too
    steps = pd.concat([STEPS, pd.DataFrame([phase("run-e", 2.0, 4.0)])], ignore_index=True)
    shared = fault("crash_point", 2.5, selected=["run-a:1:4242"], index=1)
    table = runs("run-a", "run-b", "run-c", "run-e")
    assert exposed(alone, shared, steps=steps, table=table) == [{"run-b"}, {"run-a", "run-e"}]


def test_faults_that_did_not_take_effect_expose_nothing() -> None:
    skipped = fault("kill", 2.5, selected=["pgstore-worker-0:1"], outcome="skipped")
    late = fault("kill", None, selected=[], outcome="not_reached", index=1)
    unfired = fault("crash_point", None, outcome="not_reached", index=2)
    assert exposed(skipped, late, unfired) == [set(), set(), set()]


def test_worker_names_match_whole_suffixes() -> None:
    steps = pd.DataFrame([phase("run-x", 1.0, 2.0, worker="worker-11")])
    kill = fault("kill", 1.5, selected=["pgstore-worker-1:1"])
    assert exposed(kill, steps=steps, table=runs("run-x")) == [set()]


def test_tables_get_per_run_and_per_fault_exposure() -> None:
    faults = pd.DataFrame(
        [
            fault("kill", 2.5, selected=["pgstore-worker-0:1"]),
            fault("kill", 4.5, selected=["pgstore-worker-0:1"], occurrence=1),
            fault("restart", 2.5, 2.7, target="store", index=1),
        ]
    )
    found = exposed_runs_by_fault(faults, STEPS, RUNS)
    assert list(with_fault_exposure(faults, found)["exposed_runs"]) == [1, 0, 2]
    table = with_run_exposure(RUNS, faults, found).set_index("run_id")
    assert table.loc["run-a", "exposed_by"] == [fault_label("kill", 0, 0), "restart#1.0"]
    assert table.loc["run-b", "exposed_by"] == ["restart#1.0"]
    assert list(table["exposed"]) == [True, True, False]
