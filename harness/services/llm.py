"""The simulated LLM provider: an OpenAI-compatible `POST /v1/chat/completions`.

Its answer is a pure function of the request's (run, step, attempt), so a retried or
resumed reason call gets the same answer, and the oracle knows it in advance. The
hand-written adapters say where they are with a JSON marker in the user message; an
agent framework's ordinary conversation is read instead (`harness.services.conversation`:
the run tag in the task prompt, the plan position of each tool call, the verdict in
each tool result), and answered with a tool call that carries its plan position, or
with the closing text once the last step committed. `stream: true` is answered as
server-sent events (chat-completion chunks). Every call is appended to a JSONL call
log (flushed per line) so wasted work survives a crash of anyone, including this
service.

Run as `python -m harness.services.llm --scenario F --port P --call-log F`.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from harness.scenario import Scenario, load_scenario
from harness.services.common import (
    SERVICE_TIME_HEADER,
    add_common_routes,
    run_app,
    service_parser,
    sleep_ms,
    switches,
)
from harness.services.conversation import Position, closing_text, infer_position
from harness.workload import decide, sample_latency_ms, seeded_rng, task_of

__all__ = ["MARKER", "Ask", "build_app", "parse_marker", "parse_request"]

MARKER = "durabench"
SCENARIO_KEY: web.AppKey[Scenario] = web.AppKey("scenario", Scenario)
LOG_KEY: web.AppKey[IO[str]] = web.AppKey("call_log")
RNG_KEY: web.AppKey[random.Random] = web.AppKey("rng", random.Random)
SEEN_KEY: web.AppKey[dict[tuple[str, int, int], int]] = web.AppKey("seen", dict)


def parse_marker(body: dict[str, Any]) -> tuple[str, int, int]:
    """(run_id, step, attempt) from the last user message, which carries a JSON object
    with a `durabench` key; raises ValueError when the request has none."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = json.loads(message["content"])
        marker = content[MARKER]
        return str(marker["run_id"]), int(marker["step"]), int(marker["attempt"])
    raise ValueError("no user message")


@dataclass(frozen=True)
class Ask:
    """What one request asks for: the (run, step, attempt) it is logged under, and for a
    framework's conversation where it stands (None: the marker path)."""

    run_id: str
    step: int
    attempt: int
    position: Position | None = None
    declared_tools: tuple[str, ...] | None = None  # the request's `tools`, if any
    stream: bool = False
    include_usage: bool = False

    @property
    def kind(self) -> str:
        return self.position.kind if self.position is not None else "reason"


def _declared_tools(body: dict[str, Any]) -> tuple[str, ...] | None:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    names = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        name = (function or {}).get("name") if isinstance(function, dict) else None
        if name is None and isinstance(tool, dict):
            name = tool.get("name")
        if name:
            names.append(str(name))
    return tuple(names)


def parse_request(scenario: Scenario, body: dict[str, Any]) -> Ask:
    """The marker when the request has one, else the position its conversation is in;
    ValueError (naming what is missing) when it has neither."""
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    tools = _declared_tools(body)
    try:
        run_id, step, attempt = parse_marker(body)
        return Ask(run_id, step, attempt, None, tools, stream, include_usage)
    except (ValueError, KeyError, TypeError):
        pass
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("the request has no messages")
    position = infer_position(scenario, messages)
    return Ask(
        position.run_id, position.step, position.attempt, position, tools, stream, include_usage
    )


def _reason_attempt(ask: Ask) -> int:
    """The reason attempt whose decision answers: a retried act repeats the step's."""
    if ask.position is not None and ask.position.kind == "retry_act":
        return ask.position.reason_attempt
    return ask.attempt


def _answer(scenario: Scenario, ask: Ask, replay: int) -> tuple[str, dict[str, Any] | None]:
    """(content, tool call or None) for a request: the pure function the oracle relies on."""
    position = ask.position
    if position is not None and position.kind in ("final", "aborted"):
        return closing_text(position), None
    decision = decide(scenario, ask.run_id, ask.step, _reason_attempt(ask), replay)
    arguments: dict[str, Any] = dict(decision.arguments)
    if position is not None:  # a framework's tool call states the plan position it is for
        arguments.update(step=ask.step, attempt=ask.attempt)
    call_rng = seeded_rng(scenario.seed, "call", task_of(ask.run_id), ask.step, ask.attempt)
    call = {
        "id": f"call_{call_rng.getrandbits(48):012x}",
        "type": "function",
        "function": {
            "name": decision.tool,
            "arguments": json.dumps(arguments, sort_keys=True),
        },
    }
    return decision.thought, call


def _usage(scenario: Scenario) -> dict[str, int]:
    return {
        "prompt_tokens": scenario.llm.tokens_in,
        "completion_tokens": scenario.llm.tokens_out,
        "total_tokens": scenario.llm.tokens_in + scenario.llm.tokens_out,
    }


def _completion(scenario: Scenario, ask: Ask, replay: int) -> dict[str, Any]:
    content, call = _answer(scenario, ask, replay)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if call is not None:
        message["tool_calls"] = [call]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": scenario.llm.model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls" if call is not None else "stop",
                "message": message,
            }
        ],
        "usage": _usage(scenario),
    }


def _chunks(scenario: Scenario, ask: Ask, replay: int) -> list[dict[str, Any]]:
    """The same answer as chat-completion chunks: role and content, the tool call whole,
    the finish reason, and the usage when `stream_options.include_usage` asks for it."""
    content, call = _answer(scenario, ask, replay)
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": scenario.llm.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": content})]
    if call is not None:
        chunks.append(chunk({"tool_calls": [{"index": 0, **call}]}))
    chunks.append(chunk({}, "tool_calls" if call is not None else "stop"))
    if ask.include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(scenario)})
    return chunks


async def _stream(
    request: web.Request, scenario: Scenario, ask: Ask, replay: int, service_ms: float
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            SERVICE_TIME_HEADER: f"{service_ms:.3f}",
        }
    )
    await response.prepare(request)
    for data in _chunks(scenario, ask, replay):
        await response.write(f"data: {json.dumps(data)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _bad_request(message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error"}}, status=400
    )


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    began = time.perf_counter()
    app = request.app
    scenario = app[SCENARIO_KEY]
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise TypeError("the body is not a JSON object")
        ask = parse_request(scenario, body)
    except (ValueError, KeyError, TypeError) as exc:
        return _bad_request(
            f"request carries no durabench marker and no tagged conversation: {exc}"
        )
    run_id, step, attempt = ask.run_id, ask.step, ask.attempt
    if ask.kind in ("reason", "retry_act") and ask.declared_tools is not None:
        tool = decide(scenario, run_id, step, _reason_attempt(ask)).tool
        if tool not in ask.declared_tools:
            return _bad_request(
                f"the answer for {run_id} step {step} calls {tool!r}, which the request's "
                f"tools do not declare ({list(ask.declared_tools)})"
            )
    sw = switches(app)
    latency = sample_latency_ms(
        scenario.llm.latency,
        seeded_rng(scenario.seed, "llm-latency", task_of(run_id), step, attempt),
    )
    await sleep_ms(latency + sw.extra_latency_ms)
    error = sw.error_response(app[RNG_KEY])
    status = error.status if error is not None else 200
    repeat = 0  # how often this exact reason call was answered before
    if error is None:
        seen = app[SEEN_KEY]
        key = (run_id, step if ask.kind != "final" else -1, attempt)
        repeat = seen.get(key, -1) + 1
        seen[key] = repeat
    replay = repeat if scenario.llm.divergent_replays else 0
    log = app[LOG_KEY]
    log.write(
        json.dumps(
            {
                "time": time.time(),
                "run_id": run_id,
                "step": step,
                "attempt": attempt,
                "status": status,
                "repeat": repeat,
                "kind": ask.kind,
                "stream": ask.stream,
                "tokens_in": scenario.llm.tokens_in if status == 200 else 0,
                "tokens_out": scenario.llm.tokens_out if status == 200 else 0,
            }
        )
        + "\n"
    )
    log.flush()
    service_ms = (time.perf_counter() - began) * 1000
    if error is None and ask.stream:
        return await _stream(request, scenario, ask, replay, service_ms)
    response = error or web.json_response(_completion(scenario, ask, replay))
    response.headers[SERVICE_TIME_HEADER] = f"{service_ms:.3f}"
    return response


async def _calls(request: web.Request) -> web.StreamResponse:
    """The whole call log, as JSON lines."""
    path = Path(request.app[LOG_KEY].name)
    return web.FileResponse(path, headers={"Content-Type": "application/x-ndjson"})


def build_app(scenario: Scenario, call_log: Path) -> web.Application:
    app = web.Application()
    add_common_routes(app)
    app[SCENARIO_KEY] = scenario
    app[LOG_KEY] = call_log.open("a", encoding="utf-8")
    app[RNG_KEY] = random.Random(scenario.seed)
    app[SEEN_KEY] = {}
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/_durabench/calls", _calls)
    return app


def main() -> None:
    parser = service_parser("durabench simulated LLM provider")
    parser.add_argument("--call-log", required=True, type=Path)
    args = parser.parse_args()
    run_app(build_app(load_scenario(args.scenario), args.call_log), args.host, args.port)


if __name__ == "__main__":
    main()
