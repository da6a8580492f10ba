"""The simulated LLM provider as a specification, against the real process on loopback:
an OpenAI-compatible chat completion that is a pure function of the request marker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from harness.agent import AgentContext, PhaseError, reason
from harness.measure import Recorder, read_rows
from harness.platform.local import LocalPlatform
from harness.runner import service_specs
from harness.scenario import load_scenario
from harness.services.common import SERVICE_TIME_HEADER
from harness.workload import decide

if TYPE_CHECKING:
    from conftest import Services

RUN_ID = "run-000001"


def chat_body(run_id: str = RUN_ID, step: int = 2, attempt: int = 1) -> dict[str, Any]:
    marker = {"durabench": {"run_id": run_id, "step": step, "attempt": attempt}}
    return {
        "model": "durabench-sim-1",
        "messages": [
            {"role": "system", "content": "You are a procurement agent."},
            {"role": "user", "content": "an earlier turn without a marker"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": json.dumps(marker)},
        ],
    }


async def set_faults(http: aiohttp.ClientSession, llm_url: str, faults: dict[str, Any]) -> None:
    base = llm_url.removesuffix("/v1")
    async with http.put(f"{base}/_durabench/faults", json=faults) as response:
        assert response.status == 200, await response.text()


async def calls(http: aiohttp.ClientSession, llm_url: str) -> list[dict[str, Any]]:
    base = llm_url.removesuffix("/v1")
    async with http.get(f"{base}/_durabench/calls") as response:
        assert response.status == 200
        text = await response.text()
    return [json.loads(line) for line in text.splitlines() if line]


async def test_a_marked_request_gets_the_workload_decision_as_a_tool_call(
    services: Services,
) -> None:
    expected = decide(services.scenario, RUN_ID, 2, 1)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{services.llm_url}/chat/completions", json=chat_body()) as response,
    ):
        assert response.status == 200
        data = await response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == services.scenario.llm.model
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["content"] == expected.thought
    call = message["tool_calls"][0]
    assert call["type"] == "function"
    assert call["function"]["name"] == expected.tool
    assert json.loads(call["function"]["arguments"]) == expected.arguments
    assert data["usage"] == {
        "prompt_tokens": services.scenario.llm.tokens_in,
        "completion_tokens": services.scenario.llm.tokens_out,
        "total_tokens": services.scenario.llm.tokens_in + services.scenario.llm.tokens_out,
    }


async def test_the_same_request_twice_gets_the_same_answer(services: Services) -> None:
    answers = []
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(f"{services.llm_url}/chat/completions", json=chat_body()) as r:
                assert r.status == 200
                message = (await r.json())["choices"][0]["message"]
                answers.append(
                    (
                        message["tool_calls"][0]["id"],
                        message["tool_calls"][0]["function"]["name"],
                        message["tool_calls"][0]["function"]["arguments"],
                        message["content"],
                    )
                )
    assert answers[0] == answers[1]


async def test_another_attempt_gets_the_other_decision(services: Services) -> None:
    url = f"{services.llm_url}/chat/completions"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=chat_body(attempt=2)) as response,
    ):
        data = await response.json()
    call = data["choices"][0]["message"]["tool_calls"][0]["function"]
    assert json.loads(call["arguments"]) == decide(services.scenario, RUN_ID, 2, 2).arguments


UNMARKED_BODIES: dict[str, dict[str, Any]] = {
    "plain text": {"model": "x", "messages": [{"role": "user", "content": "hello, no marker"}]},
    "json without marker": {
        "model": "x",
        "messages": [{"role": "user", "content": json.dumps({"other": 1})}],
    },
    "no user message": {"model": "x", "messages": [{"role": "system", "content": "hi"}]},
    "no messages": {"model": "x"},
    "partial marker": {
        "model": "x",
        "messages": [{"role": "user", "content": '{"durabench": {"step": 1}}'}],
    },
    "marker only in an earlier turn": {
        "model": "x",
        "messages": [*chat_body()["messages"], {"role": "user", "content": "and now?"}],
    },
}


async def test_a_request_without_the_marker_is_a_400_naming_the_marker(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as http:
        for case, body in UNMARKED_BODIES.items():
            async with http.post(f"{services.llm_url}/chat/completions", json=body) as response:
                assert response.status == 400, case
                data = await response.json()
            assert "durabench marker" in data["error"]["message"], case
        assert await calls(http, services.llm_url) == []


async def test_every_answer_carries_the_service_time_header(services: Services) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{services.llm_url}/chat/completions", json=chat_body()) as r:
            assert r.status == 200
            assert float(r.headers[SERVICE_TIME_HEADER]) >= 0
        await set_faults(http, services.llm_url, {"error_status": 503})
        async with http.post(f"{services.llm_url}/chat/completions", json=chat_body()) as r:
            assert r.status == 503
            assert float(r.headers[SERVICE_TIME_HEADER]) >= 0


async def test_an_injected_429_carries_retry_after_until_the_faults_are_cleared(
    services: Services,
) -> None:
    url = f"{services.llm_url}/chat/completions"
    async with aiohttp.ClientSession() as http:
        await set_faults(http, services.llm_url, {"error_status": 429, "retry_after_s": 2})
        async with http.post(url, json=chat_body()) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "2"
            assert (await response.json())["error"]["code"] == 429
        await set_faults(http, services.llm_url, {})
        async with http.post(url, json=chat_body()) as response:
            assert response.status == 200
            assert "Retry-After" not in response.headers


async def test_the_fault_switches_read_back_what_was_set(services: Services) -> None:
    base = services.llm_url.removesuffix("/v1")
    async with aiohttp.ClientSession() as http:
        await set_faults(http, services.llm_url, {"error_status": 500, "error_probability": 0.25})
        async with http.get(f"{base}/_durabench/faults") as response:
            current = await response.json()
        assert current["error_status"] == 500
        assert current["error_probability"] == 0.25
        async with http.put(f"{base}/_durabench/faults", json={"no_such_switch": 1}) as r:
            assert r.status == 400


async def test_the_call_log_has_one_json_line_per_call(services: Services) -> None:
    url = f"{services.llm_url}/chat/completions"
    async with aiohttp.ClientSession() as http:
        assert await calls(http, services.llm_url) == []
        async with http.post(url, json=chat_body(step=0)) as response:
            assert response.status == 200
        await set_faults(http, services.llm_url, {"error_status": 429, "retry_after_s": 0})
        async with http.post(url, json=chat_body(step=1, attempt=2)) as response:
            assert response.status == 429
        await set_faults(http, services.llm_url, {})
        async with http.post(url, json={"messages": []}) as response:
            assert response.status == 400
        logged = await calls(http, services.llm_url)
    assert [(c["run_id"], c["step"], c["attempt"], c["status"]) for c in logged] == [
        (RUN_ID, 0, 1, 200),
        (RUN_ID, 1, 2, 429),
    ]
    assert logged[0]["tokens_in"] == services.scenario.llm.tokens_in
    assert logged[0]["tokens_out"] == services.scenario.llm.tokens_out
    assert logged[1]["tokens_in"] == logged[1]["tokens_out"] == 0


# -- through the agent's reason phase -------------------------------------------------


def context(services: Services, http: aiohttp.ClientSession, rows: Path) -> AgentContext:
    return AgentContext(
        scenario=services.scenario,
        http=http,
        llm_url=services.llm_url,
        tools_url=services.tools_url,
        recorder=Recorder(rows, backend="test", worker="w0"),
    )


async def test_reason_returns_the_workload_decision_and_records_one_row(
    services: Services, tmp_path: Path
) -> None:
    rows_dir = tmp_path / "rows"
    async with aiohttp.ClientSession() as http:
        ctx = context(services, http, rows_dir)
        decision = await reason(ctx, RUN_ID, 2, 1)
        ctx.recorder.close()
    assert decision == decide(services.scenario, RUN_ID, 2, 1)
    [row] = read_rows(rows_dir)
    assert row["phase"] == "reason"
    assert (row["run_id"], row["step"], row["attempt"]) == (RUN_ID, 2, 1)
    assert row["outcome"] == "ok"
    assert row["retries"] == 0
    assert row["backend"] == "test" and row["worker"] == "w0"
    assert row["end"] >= row["start"]
    assert row["service_ms"] >= 0
    assert row["extra"] == {
        "tokens_in": services.scenario.llm.tokens_in,
        "tokens_out": services.scenario.llm.tokens_out,
    }


async def test_reason_retries_through_429s(services: Services, tmp_path: Path) -> None:
    rows_dir = tmp_path / "rows"
    async with aiohttp.ClientSession() as http:
        await set_faults(
            http,
            services.llm_url,
            {"error_status": 429, "error_probability": 0.5, "retry_after_s": 0.01},
        )
        ctx = context(services, http, rows_dir)
        decisions = [await reason(ctx, RUN_ID, step, 1) for step in range(4)]
        ctx.recorder.close()
        logged = await calls(http, services.llm_url)
    assert decisions == [decide(services.scenario, RUN_ID, step, 1) for step in range(4)]
    rows = read_rows(rows_dir)
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert all(r["outcome"] == "ok" and r["retries"] >= 0 for r in rows)
    # The row's retry count is exactly the 429s the provider logged for that call.
    for row in rows:
        statuses = [c["status"] for c in logged if c["step"] == row["step"]]
        assert statuses == [429] * row["retries"] + [200]
    assert sum(r["retries"] for r in rows) > 0


async def test_reason_gives_up_on_a_non_retryable_status_and_records_a_failure(
    services: Services, tmp_path: Path
) -> None:
    rows_dir = tmp_path / "rows"
    async with aiohttp.ClientSession() as http:
        await set_faults(http, services.llm_url, {"error_status": 401})
        ctx = context(services, http, rows_dir)
        with pytest.raises(PhaseError, match="401"):
            await reason(ctx, RUN_ID, 0, 1)
        ctx.recorder.close()
    [row] = read_rows(rows_dir)
    assert row["outcome"] == "fail"
    assert row["retries"] == 0
    assert "401" in row["error"]


async def test_divergent_replays_answer_a_repeated_call_differently(
    write_scenario: Any, tmp_path: Path
) -> None:
    """With `divergent_replays`, the second identical reason call gets another decision
    (as a real model at temperature > 0 would); the first answer is the oracle's."""
    path = write_scenario("divergent.yaml", llm={"divergent_replays": True})
    scenario = load_scenario(path)
    workdir = tmp_path / "divergent"
    workdir.mkdir()
    with LocalPlatform(workdir) as platform:
        started = {s.role: platform.start(s) for s in service_specs(scenario, path, workdir)}
        url = f"http://127.0.0.1:{started['llm'].spec.port}/v1/chat/completions"
        async with aiohttp.ClientSession() as http:
            answers = []
            for _ in range(2):
                async with http.post(url, json=chat_body()) as response:
                    answers.append((await response.json())["choices"][0]["message"])
    first, second = (json.loads(a["tool_calls"][0]["function"]["arguments"]) for a in answers)
    assert first == decide(scenario, "run-000001", 2, 1).arguments
    assert second != first
