"""The simulated LLM provider: an OpenAI-compatible `POST /v1/chat/completions`.

Its answer is a pure function of the request's (run, step, attempt) marker, so a
retried or resumed reason call gets the same answer, and the oracle knows it in
advance. Every call is appended to a JSONL call log (flushed per line) so wasted
work survives a crash of anyone, including this service.

Run as `python -m harness.services.llm --scenario F --port P --call-log F`.
"""

from __future__ import annotations

import json
import random
import time
import uuid
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
from harness.workload import decide, sample_latency_ms, seeded_rng, task_of

__all__ = ["MARKER", "build_app", "parse_marker"]

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


def _completion(
    scenario: Scenario, run_id: str, step: int, attempt: int, replay: int
) -> dict[str, Any]:
    decision = decide(scenario, run_id, step, attempt, replay)
    call_rng = seeded_rng(scenario.seed, "call", task_of(run_id), step, attempt)
    call_id = f"call_{call_rng.getrandbits(48):012x}"
    usage = {
        "prompt_tokens": scenario.llm.tokens_in,
        "completion_tokens": scenario.llm.tokens_out,
        "total_tokens": scenario.llm.tokens_in + scenario.llm.tokens_out,
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": scenario.llm.model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": decision.thought,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": decision.tool,
                                "arguments": json.dumps(decision.arguments, sort_keys=True),
                            },
                        }
                    ],
                },
            }
        ],
        "usage": usage,
    }


async def _chat_completions(request: web.Request) -> web.Response:
    began = time.perf_counter()
    app = request.app
    scenario = app[SCENARIO_KEY]
    try:
        run_id, step, attempt = parse_marker(await request.json())
    except (ValueError, KeyError, TypeError) as exc:
        return web.json_response(
            {"error": {"message": f"request carries no durabench marker: {exc!r}"}}, status=400
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
        repeat = seen.get((run_id, step, attempt), -1) + 1
        seen[(run_id, step, attempt)] = repeat
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
                "tokens_in": scenario.llm.tokens_in if status == 200 else 0,
                "tokens_out": scenario.llm.tokens_out if status == 200 else 0,
            }
        )
        + "\n"
    )
    log.flush()
    response = error or web.json_response(_completion(scenario, run_id, step, attempt, replay))
    response.headers[SERVICE_TIME_HEADER] = f"{(time.perf_counter() - began) * 1000:.3f}"
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
