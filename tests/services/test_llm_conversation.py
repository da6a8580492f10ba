"""The simulated LLM driven the way an agent framework drives it: ordinary chat
conversations (task prompt, tool calls, tool results) with no per-request marker,
answered from where the conversation stands, as plain JSON and as server-sent events.

A conversation played to its end here (each tool result computed by the workload's
pure functions, as the tool service and the verify check would) folds to exactly the
oracle's state, on every verify policy; a replayed request gets the same answer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from harness.oracle import expected_run
from harness.scenario import Scenario
from harness.services.conversation import (
    Verdict,
    business_arguments,
    fold_conversation,
    infer_position,
    task_prompt,
    tool_parameters,
    verdict_text,
)
from harness.steppolicy import settle
from harness.workload import Decision, tool_output, verify_output

if TYPE_CHECKING:
    from conftest import ScenarioFactory, Services

RUN_ID = "run-000002"


def tools_of(scenario: Scenario) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": n, "parameters": tool_parameters()}}
        for n in scenario.tools
    ]


def opening(scenario: Scenario, run_id: str = RUN_ID) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a procurement agent."},
        {"role": "user", "content": task_prompt(scenario.name, scenario.steps, run_id)},
    ]


def tool_result(scenario: Scenario, run_id: str, call: dict[str, Any], thought: str) -> str:
    """What a framework-side tool returns: the act's output judged by verify."""
    args = json.loads(call["function"]["arguments"])
    step, attempt = int(args["step"]), int(args["attempt"])
    decision = Decision(call["function"]["name"], business_arguments(args), thought)
    output = tool_output(scenario, run_id, step, attempt, decision.tool, decision.arguments)
    verified = verify_output(decision, output)
    move = settle(scenario.verify, step, attempt, decision, output, (), verified).move
    return verdict_text(Verdict(step, attempt, verified, move, output))


async def complete(
    http: aiohttp.ClientSession, services: Services, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    body = {"model": "m", "messages": messages, "tools": tools_of(services.scenario)}
    async with http.post(f"{services.llm_url}/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        message: dict[str, Any] = (await response.json())["choices"][0]["message"]
        return message


async def play(
    http: aiohttp.ClientSession, services: Services, run_id: str = RUN_ID
) -> list[dict[str, Any]]:
    """A framework's loop: ask, run the tool the answer calls, append, until it stops."""
    messages = opening(services.scenario, run_id)
    for _ in range(200):
        message = await complete(http, services, messages)
        messages.append(message)
        if not message.get("tool_calls"):
            return messages
        call = message["tool_calls"][0]
        content = tool_result(services.scenario, run_id, call, message["content"])
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    raise AssertionError("the conversation never ended")


@pytest.fixture
def write_scenario(
    write_scenario: ScenarioFactory, request: pytest.FixtureRequest
) -> ScenarioFactory:
    """The shared factory, with the verify policy a test is parametrised with."""
    verify = getattr(request, "param", None)

    def write(name: str = "scenario.yaml", **overrides: Any) -> Any:
        return write_scenario(name, **({"verify": verify} if verify else {}), **overrides)

    return write


@pytest.mark.parametrize(
    "write_scenario",
    [
        {"failure_probability": 0.4, "on_failure": "retry_act", "max_attempts": 3},
        {"failure_probability": 0.4, "on_failure": "replan", "max_attempts": 4},
        {"failure_probability": 0.9, "on_failure": "replan", "max_attempts": 2},
    ],
    ids=["retry_act", "replan", "aborts"],
    indirect=True,
)
async def test_a_played_conversation_folds_to_the_oracle_state(services: Services) -> None:
    async with aiohttp.ClientSession() as http:
        for index in range(4):
            run_id = f"run-{index:06d}"
            messages = await play(http, services, run_id)
            state = fold_conversation(services.scenario.verify, messages, finished=True)
            assert state == expected_run(services.scenario, run_id).state, run_id


async def test_a_replayed_request_gets_the_same_answer_and_the_call_log_names_its_position(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as http:
        messages = await play(http, services)
        half = [i for i, m in enumerate(messages) if m["role"] == "tool"]
        middle = messages[: half[len(half) // 2] + 1]  # ends on a tool result
        first = await complete(http, services, middle)
        again = await complete(http, services, middle)
        base = services.llm_url.removesuffix("/v1")
        async with http.get(f"{base}/_durabench/calls") as response:
            log = [json.loads(line) for line in (await response.text()).splitlines()]
    assert first == again
    position = infer_position(services.scenario, middle)
    assert (log[-1]["run_id"], log[-1]["step"], log[-1]["attempt"]) == (
        RUN_ID,
        position.step,
        position.attempt,
    )
    assert log[-1]["repeat"] == log[-2]["repeat"] + 1
    assert {c["kind"] for c in log} >= {"reason", "final"}


async def test_the_first_answer_calls_step_0_and_the_last_is_the_final_answer(
    services: Services,
) -> None:
    async with aiohttp.ClientSession() as http:
        messages = await play(http, services)
    first_call = json.loads(messages[2]["tool_calls"][0]["function"]["arguments"])
    assert (first_call["step"], first_call["attempt"]) == (0, 1)
    assert messages[-1]["content"] == expected_run(services.scenario, RUN_ID).state.final_answer


async def test_stream_true_is_answered_as_server_sent_chunks_of_the_same_answer(
    services: Services,
) -> None:
    messages = opening(services.scenario)
    body = {
        "model": "m",
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with aiohttp.ClientSession() as http:
        plain = await complete(http, services, messages)
        async with http.post(f"{services.llm_url}/chat/completions", json=body) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            text = await response.text()
    events = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [call for delta in deltas for call in delta.get("tool_calls", [])]
    assert content == plain["content"]
    assert calls[0]["function"] == plain["tool_calls"][0]["function"]
    assert calls[0]["id"] == plain["tool_calls"][0]["id"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert "usage" in chunks[-1]


async def test_the_real_openai_client_drives_it_streaming_and_not(services: Services) -> None:
    openai = pytest.importorskip("openai")
    client = openai.AsyncOpenAI(base_url=services.llm_url, api_key="unused", max_retries=0)
    messages: Any = opening(services.scenario)
    tools: Any = tools_of(services.scenario)
    plain = await client.chat.completions.create(model="m", messages=messages, tools=tools)
    stream = await client.chat.completions.create(
        model="m", messages=messages, tools=tools, stream=True
    )
    names = [
        call.function.name
        async for chunk in stream
        for call in (chunk.choices[0].delta.tool_calls or [] if chunk.choices else [])
    ]
    await client.close()
    call = plain.choices[0].message.tool_calls[0]
    assert names == [call.function.name]
    assert json.loads(call.function.arguments)["step"] == 0


async def test_a_tool_the_request_does_not_declare_is_refused_naming_it(
    services: Services,
) -> None:
    body = {
        "model": "m",
        "messages": opening(services.scenario),
        "tools": [{"type": "function", "function": {"name": "other", "parameters": {}}}],
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{services.llm_url}/chat/completions", json=body) as response,
    ):
        assert response.status == 400
        assert "do not declare" in (await response.json())["error"]["message"]


async def test_a_conversation_without_the_run_tag_is_refused_saying_so(
    services: Services,
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{services.llm_url}/chat/completions", json=body) as response,
    ):
        assert response.status == 400
        assert "durabench-run" in (await response.json())["error"]["message"]
