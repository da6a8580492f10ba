"""The tool service and its ledger as a specification, against the real process on
loopback: one recorded execution per request, effects applied once per idempotency
key, and a ledger that survives the service being killed."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from harness.agent import AgentContext, act, drive_step
from harness.measure import Recorder, read_rows
from harness.oracle import expected_run
from harness.services.common import SERVICE_TIME_HEADER
from harness.services.tools import open_ledger, read_ledger
from harness.workload import decide, idempotency_key, tool_output

if TYPE_CHECKING:
    from conftest import Services

RUN_ID = "run-000003"
TOOL = "search_supplier"
ARGUMENTS = {"item": "sku-0042", "quantity": 3, "amount_cents": 12_345, "counterparty": "party-07"}


def tool_body(
    run_id: str = RUN_ID, step: int = 1, attempt: int = 1, key: str | None = None
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step": step,
        "attempt": attempt,
        "idempotency_key": key if key is not None else idempotency_key(run_id, step, attempt),
        "arguments": ARGUMENTS,
    }


async def execute(
    http: aiohttp.ClientSession, services: Services, body: Any, tool: str = TOOL
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{services.tools_url}/tools/{tool}", json=body) as response:
        return response.status, await response.json()


async def ledger(
    http: aiohttp.ClientSession, services: Services, run_id: str | None = None
) -> list[dict[str, Any]]:
    params = {"run_id": run_id} if run_id is not None else {}
    async with http.get(f"{services.tools_url}/ledger", params=params) as response:
        assert response.status == 200
        entries: list[dict[str, Any]] = await response.json()
        return entries


async def test_an_execution_answers_the_workload_output_and_is_applied(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{services.tools_url}/tools/{TOOL}", json=tool_body()) as r:
            assert r.status == 200
            assert float(r.headers[SERVICE_TIME_HEADER]) >= 0
            answer = await r.json()
        entries = await ledger(http, services)
    expected = tool_output(services.scenario, RUN_ID, 1, 1, TOOL, ARGUMENTS)
    assert answer == {"output": expected, "applied": True}
    [entry] = entries
    assert (entry["run_id"], entry["step"], entry["attempt"], entry["tool"]) == (RUN_ID, 1, 1, TOOL)
    assert entry["idempotency_key"] == idempotency_key(RUN_ID, 1, 1)
    assert entry["applied"] is True
    assert entry["request"] == tool_body()
    assert entry["response"] == expected
    assert entry["finished_at"] >= entry["started_at"]


async def test_a_repeated_idempotency_key_is_recorded_but_not_applied_again(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as http:
        first = await execute(http, services, tool_body())
        # Same key, different attempt: the service answers the ORIGINAL output.
        second = await execute(
            http, services, tool_body(attempt=2, key=tool_body()["idempotency_key"])
        )
        entries = await ledger(http, services)
    assert first == (200, {"output": first[1]["output"], "applied": True})
    assert second == (200, {"output": first[1]["output"], "applied": False})
    assert [e["applied"] for e in entries] == [True, False]
    assert [e["attempt"] for e in entries] == [1, 2]
    assert entries[0]["seq"] < entries[1]["seq"]
    assert entries[1]["response"] == first[1]["output"]


async def test_the_same_request_twice_is_one_effect_and_two_ledger_entries(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as http:
        first = await execute(http, services, tool_body())
        second = await execute(http, services, tool_body())
        entries = await ledger(http, services)
    assert first[1]["applied"] is True
    assert second[1] == {"output": first[1]["output"], "applied": False}
    assert len(entries) == 2
    assert sum(e["applied"] for e in entries) == 1


async def test_a_different_key_for_the_same_attempt_is_applied_again(services: Services) -> None:
    async with aiohttp.ClientSession() as http:
        first = await execute(http, services, tool_body(key="unstable-1"))
        second = await execute(http, services, tool_body(key="unstable-2"))
        entries = await ledger(http, services)
    assert first[1]["applied"] is True
    assert second[1]["applied"] is True
    assert first[1]["output"] == second[1]["output"]
    assert [(e["step"], e["attempt"], e["applied"]) for e in entries] == [
        (1, 1, True),
        (1, 1, True),
    ]


async def test_an_unknown_tool_is_a_404_naming_the_known_tools(services: Services) -> None:
    async with aiohttp.ClientSession() as http:
        status, answer = await execute(http, services, tool_body(), tool="launch_missiles")
        assert await ledger(http, services) == []
    assert status == 404
    assert "launch_missiles" in answer["error"]
    for tool in services.scenario.tools:
        assert tool in answer["error"]


async def test_a_malformed_body_is_a_400_and_is_not_recorded(services: Services) -> None:
    good = tool_body()
    malformed: dict[str, Any] = {
        "missing run_id": {k: v for k, v in good.items() if k != "run_id"},
        "missing idempotency_key": {k: v for k, v in good.items() if k != "idempotency_key"},
        "missing arguments": {k: v for k, v in good.items() if k != "arguments"},
        "step not a number": {**good, "step": "second"},
        "arguments not a mapping": {**good, "arguments": 7},
        "a list": [good],
        "null": None,
    }
    async with aiohttp.ClientSession() as http:
        for case, body in malformed.items():
            status, answer = await execute(http, services, body)
            assert status == 400, case
            assert "bad tool request" in answer["error"], case
        async with http.post(
            f"{services.tools_url}/tools/{TOOL}",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 400
        assert await ledger(http, services) == []


async def test_an_injected_error_is_answered_before_anything_is_recorded(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(
            f"{services.tools_url}/_durabench/faults",
            json={"error_status": 503, "tools": ["reserve_budget"]},
        ) as response:
            assert response.status == 200
        failed = await execute(http, services, tool_body(), tool="reserve_budget")
        passed = await execute(http, services, tool_body(step=2), tool=TOOL)
        entries = await ledger(http, services)
    assert failed[0] == 503
    assert passed[0] == 200
    assert [(e["tool"], e["step"]) for e in entries] == [(TOOL, 2)]


async def test_the_ledger_filters_by_run_id(services: Services) -> None:
    async with aiohttp.ClientSession() as http:
        for run_id in ("run-000001", "run-000002", "run-000001"):
            await execute(http, services, tool_body(run_id=run_id, step=len(run_id) % 3))
        everything = await ledger(http, services)
        one = await ledger(http, services, "run-000001")
        two = await ledger(http, services, "run-000002")
        none = await ledger(http, services, "run-999999")
    assert len(everything) == 3
    assert [e["run_id"] for e in one] == ["run-000001", "run-000001"]
    assert [e["run_id"] for e in two] == ["run-000002"]
    assert none == []
    assert [e["seq"] for e in everything] == sorted(e["seq"] for e in one + two)


async def test_every_acknowledged_execution_survives_a_sigkill_of_the_tool_service(
    services: Services,
) -> None:
    acknowledged: list[tuple[str, int, int, bool]] = []
    async with aiohttp.ClientSession() as http:
        for step in range(5):
            for attempt in (1, 2):
                status, answer = await execute(
                    http, services, tool_body(step=step, attempt=attempt)
                )
                assert status == 200
                acknowledged.append((RUN_ID, step, attempt, answer["applied"]))
        status, answer = await execute(http, services, tool_body(step=0, attempt=1))
        acknowledged.append((RUN_ID, 0, 1, answer["applied"]))
    pid = services.platform.signal("tools", signal.SIGKILL)
    assert services.platform.component("tools").process.wait() == -signal.SIGKILL
    assert pid == services.platform.component("tools").pid

    db = open_ledger(services.workdir / "ledger.sqlite")
    try:
        entries = read_ledger(db)
        only_run = read_ledger(db, RUN_ID)
    finally:
        db.close()
    assert [(e["run_id"], e["step"], e["attempt"], e["applied"]) for e in entries] == acknowledged
    assert acknowledged[-1][3] is False
    assert only_run == entries
    for entry in entries:
        assert entry["response"] == tool_output(
            services.scenario, RUN_ID, entry["step"], entry["attempt"], TOOL, ARGUMENTS
        )


async def test_a_null_idempotency_key_is_rejected_as_malformed(services: Services) -> None:
    """Without this, every request with a null key shares the key "None" and an
    unrelated run gets another run's output back with applied=false."""
    async with aiohttp.ClientSession() as http:
        for run_id in ("run-000001", "run-000002"):
            body = {**tool_body(run_id=run_id), "idempotency_key": None}
            status, answer = await execute(http, services, body)
            assert status == 400, (run_id, answer)


# -- the agent's act phase and drive_step end to end ----------------------------------


def context(services: Services, http: aiohttp.ClientSession, rows: Path) -> AgentContext:
    return AgentContext(
        scenario=services.scenario,
        http=http,
        llm_url=services.llm_url,
        tools_url=services.tools_url,
        recorder=Recorder(rows, backend="test", worker="w0"),
    )


async def test_act_returns_the_tool_output_and_records_whether_it_applied(
    services: Services, tmp_path: Path
) -> None:
    rows_dir = tmp_path / "rows"
    decision = decide(services.scenario, RUN_ID, 0, 1)
    key = idempotency_key(RUN_ID, 0, 1)
    async with aiohttp.ClientSession() as http:
        ctx = context(services, http, rows_dir)
        first = await act(ctx, RUN_ID, 0, 1, decision, key)
        again = await act(ctx, RUN_ID, 0, 1, decision, key)
        ctx.recorder.close()
    expected = tool_output(services.scenario, RUN_ID, 0, 1, decision.tool, decision.arguments)
    assert first == again == expected
    rows = read_rows(rows_dir)
    assert [(r["phase"], r["outcome"], r.get("extra")) for r in rows] == [
        ("act", "invoke", None),  # on record before the side effect can happen
        ("act", "ok", {"applied": True}),
        ("act", "invoke", None),
        ("act", "ok", {"applied": False}),
    ]


async def test_drive_step_reaches_the_oracle_steps_with_the_oracle_effects(
    services: Services, tmp_path: Path
) -> None:
    rows_dir = tmp_path / "rows"
    run_ids = ("run-000003", "run-000000")  # completes after a retry; aborts at its last step
    async with aiohttp.ClientSession() as http:
        ctx = context(services, http, rows_dir)
        for run_id in run_ids:
            oracle = expected_run(services.scenario, run_id)
            for expected_step in oracle.state.steps:
                outcome = await drive_step(ctx, run_id, expected_step.index)
                assert outcome.record == expected_step
                assert outcome.move == ("commit" if expected_step.verdicts[-1] else "abort")
            effects = [(e["step"], e["attempt"]) for e in await ledger(http, services, run_id)]
            assert tuple(effects) == oracle.effects
        ctx.recorder.close()
        entries = await ledger(http, services)
    assert all(e["applied"] for e in entries)

    rows = [r for r in read_rows(rows_dir) if r["outcome"] != "invoke"]
    assert {r["phase"] for r in rows} == {"reason", "act", "verify"}
    assert all(r["outcome"] == "ok" for r in rows)
    for run_id in run_ids:
        oracle = expected_run(services.scenario, run_id)
        mine = [r for r in rows if r["run_id"] == run_id]
        assert sum(r["phase"] == "reason" for r in mine) == oracle.llm_calls
        assert sum(r["phase"] == "act" for r in mine) == oracle.tool_calls
        verdicts = [r["extra"]["verified"] for r in mine if r["phase"] == "verify"]
        assert verdicts == [v for s in oracle.state.steps for v in s.verdicts]
    assert expected_run(services.scenario, "run-000000").state.status == "aborted"
