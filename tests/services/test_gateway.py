"""The recording gateway as a specification, against real processes on loopback: in
front of a model whose answers are no function of the judged seed (the simulator on a
seed of its own, answering replays differently), every call is forwarded and recorded
with its (run, step, attempt); injected faults are answered by the gateway; a restart
keeps the log; and the key from the environment reaches no file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from harness.platform.local import LocalPlatform
from harness.recorded import RecordedDecisions, decision_of
from harness.runner import service_specs
from harness.scenario import Scenario, load_scenario
from harness.services.llm import MARKER
from harness.workload import decide
from tests.conftest import TINY
from tests.services.gateway_support import start_upstream_model

RUN_ID = "run-000002"
KEY_ENV = "DURABENCH_TEST_MODEL_KEY"


@dataclass(frozen=True)
class Gateway:
    scenario: Scenario  # the judged scenario, llm.base_url -> the model
    model: Scenario  # the model's own (another seed, divergent replays)
    url: str  # the gateway's OpenAI base URL (…/v1)
    model_url: str
    key: str
    workdir: Path
    platform: LocalPlatform

    @property
    def admin(self) -> str:
        return self.url.removesuffix("/v1")


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    key = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, key)
    workdir = tmp_path / "gateway"
    workdir.mkdir()
    with LocalPlatform(workdir) as platform:
        model_url = start_upstream_model(platform, TINY, tmp_path / "model")
        data = {**TINY, "llm": {"base_url": model_url, "api_key_env": KEY_ENV}}
        path = tmp_path / "judged.yaml"
        path.write_text(yaml.safe_dump(data))
        scenario = load_scenario(path)
        [spec] = [s for s in service_specs(scenario, path, workdir) if s.role == "llm"]
        handle = platform.start(spec)
        yield Gateway(
            scenario,
            load_scenario(tmp_path / "model" / "model.yaml"),
            f"http://127.0.0.1:{handle.spec.port}/v1",
            model_url,
            key,
            tmp_path,
            platform,
        )


def chat(step: int = 1, attempt: int = 1) -> dict[str, Any]:
    marker = {MARKER: {"run_id": RUN_ID, "step": step, "attempt": attempt}}
    return {
        "model": "any",
        "messages": [{"role": "user", "content": json.dumps(marker)}],
        "tool_choice": "required",
    }


async def post(url: str, body: dict[str, Any], **headers: str) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/chat/completions", json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json(content_type=None), answer.headers


async def calls(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/_durabench/calls") as answer:
        text = await answer.text()
    return [json.loads(line) for line in text.splitlines() if line]


async def test_a_call_is_forwarded_and_recorded_with_its_run_step_and_attempt(
    gateway: Gateway,
) -> None:
    status, answer, _ = await post(gateway.url, chat(step=1))
    assert status == 200
    assert decision_of(gateway.scenario, answer) == decide(gateway.model, RUN_ID, 1, 1)
    assert decision_of(gateway.scenario, answer) != decide(gateway.scenario, RUN_ID, 1, 1)
    [entry] = await calls(gateway.admin)
    assert (entry["run_id"], entry["step"], entry["attempt"]) == (RUN_ID, 1, 1)
    assert (entry["status"], entry["repeat"], entry["source"]) == (200, 0, "gateway")
    assert json.loads(entry["request"]) == chat(step=1)
    assert json.loads(entry["response"]) == answer
    assert entry["tokens_in"] == gateway.model.llm.tokens_in
    assert len(await calls(gateway.model_url.removesuffix("/v1"))) == 1  # it reached the model


async def test_a_replayed_call_is_recorded_again_and_the_first_answer_is_the_decision(
    gateway: Gateway,
) -> None:
    first = (await post(gateway.url, chat()))[1]
    second = (await post(gateway.url, chat()))[1]
    entries = await calls(gateway.admin)
    assert [e["repeat"] for e in entries] == [0, 1]
    assert decision_of(gateway.scenario, first) != decision_of(gateway.scenario, second)
    recorded = RecordedDecisions.from_calls(gateway.scenario, entries)
    assert recorded.decision(RUN_ID, 1, 1) == decision_of(gateway.scenario, first)
    assert recorded.differing_replays == {RUN_ID: 1}


async def test_an_injected_rate_limit_is_answered_by_the_gateway_and_never_reaches_the_model(
    gateway: Gateway,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{gateway.admin}/_durabench/faults", json={"error_status": 429, "retry_after_s": 2}
        ) as r,
    ):
        assert r.status == 200
    status, _, headers = await post(gateway.url, chat())
    assert (status, headers["Retry-After"]) == (429, "2")
    [entry] = await calls(gateway.admin)
    assert (entry["status"], entry["injected"]) == (429, True)
    assert await calls(gateway.model_url.removesuffix("/v1")) == []


async def test_a_restarted_gateway_keeps_its_log_and_counts_replays_on(gateway: Gateway) -> None:
    await post(gateway.url, chat())
    gateway.platform.restart("llm")
    await post(gateway.url, chat())
    assert [e["repeat"] for e in await calls(gateway.admin)] == [0, 1]


async def test_the_key_is_sent_only_upstream_and_written_nowhere(gateway: Gateway) -> None:
    await post(gateway.url, chat(), Authorization="Bearer sk-client-key-ignored")
    gateway.platform.stop("model")  # an unreachable model: the error text is recorded
    status, answer, _ = await post(gateway.url, chat(step=2))
    assert status == 502
    assert "unreachable" in answer["error"]["message"]
    assert [e["status"] for e in await calls(gateway.admin)] == [200, 502]
    for path in gateway.workdir.rglob("*"):
        if path.is_file():
            assert gateway.key not in path.read_text(errors="replace"), path
