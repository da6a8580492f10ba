"""The recording gateway: durabench's own OpenAI-compatible proxy in front of a real model.

When a scenario's `llm.base_url` names an endpoint, durabench starts this process in
the simulator's place (role `llm`, on 127.0.0.1): workers reach the model only through
it. Every request under `/v1/` is forwarded to the endpoint and appended, with its
answer, to the call log (JSON lines, flushed and fsynced per line before the answer
leaves), with the `(run, step, attempt)` its durabench marker names. The first
answer recorded for each `(run, step, attempt)` is the expected decision of the oracle
built from recorded decisions (harness/recorded.py).

The API key is read from the environment variable the scenario names
(`llm.api_key_env`) and sent upstream only; the gateway ignores any key a client
sends. It is never written: not in the call log (requests are recorded without their
headers), not in this process's log (every error text has it masked), not on the
command line (the upstream URL is read from the scenario file).

The fault switches are the simulator's (`/_durabench/faults`): an injected 429 (with
Retry-After), 5xx or extra latency applies to real models too; an injected error is
answered by the gateway and recorded, and never reaches the model.

Run as `python -m harness.services.gateway --scenario F --port P --call-log F`.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiohttp import web

from harness.masking import MASK, mask_text
from harness.scenario import Scenario, load_scenario
from harness.services.common import (
    SERVICE_TIME_HEADER,
    add_common_routes,
    run_app,
    service_parser,
    sleep_ms,
    switches,
)
from harness.services.llm import parse_marker

__all__ = ["build_app", "read_call_log", "record_line", "upstream_url"]

UPSTREAM_TIMEOUT_S = 300.0
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Accept", "OpenAI-Organization", "OpenAI-Project")
FORWARDED_ANSWER_HEADERS = ("Content-Type", "Retry-After", "x-request-id")
SCENARIO_KEY: web.AppKey[Scenario] = web.AppKey("scenario", Scenario)
LOG_KEY: web.AppKey[IO[str]] = web.AppKey("call_log")
STATE_KEY: web.AppKey[GatewayState] = web.AppKey("state")


class GatewayState:
    """What the gateway keeps between calls: the upstream session, its key, and how
    often each (run, step, attempt) was answered (read back from the log at start)."""

    def __init__(self, scenario: Scenario, log_path: Path) -> None:
        self.upstream = upstream_url(scenario)
        self.key = os.environ.get(scenario.llm.api_key_env) or None
        self.rng = random.Random(scenario.seed)
        self.http: aiohttp.ClientSession | None = None
        self.answered: dict[tuple[str, int, int], int] = {}
        self.seq = 0
        for entry in read_call_log(log_path):
            self.seq = max(self.seq, int(entry.get("seq", 0)))
            if entry.get("status") == 200 and entry.get("run_id") is not None:
                marker = (str(entry["run_id"]), int(entry["step"]), int(entry["attempt"]))
                self.answered[marker] = self.answered.get(marker, 0) + 1

    def scrub(self, text: str) -> str:
        """Text as it may be written: the key masked wherever it appears."""
        if self.key:
            text = text.replace(self.key, MASK)
        return mask_text(text)


def upstream_url(scenario: Scenario) -> str:
    if scenario.llm.base_url is None:
        raise ValueError("llm.base_url is null: there is no endpoint to put a gateway in front of")
    return scenario.llm.base_url.rstrip("/")


def read_call_log(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a call log (a line cut short by a crash is left out)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def record_line(log: IO[str], entry: dict[str, Any]) -> None:
    """Append one call, durably: flushed and fsynced before the answer leaves."""
    log.write(json.dumps(entry, sort_keys=True) + "\n")
    log.flush()
    os.fsync(log.fileno())


def _usage(answer: Any) -> tuple[int, int]:
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


async def _forward(
    state: GatewayState, request: web.Request, path: str, body: bytes
) -> tuple[int, bytes, dict[str, str]]:
    """The upstream's status, body and the headers worth passing on; 502 with an error
    (its text masked) when the upstream cannot be reached."""
    assert state.http is not None
    headers = {h: request.headers[h] for h in FORWARDED_REQUEST_HEADERS if h in request.headers}
    if state.key:
        headers["Authorization"] = f"Bearer {state.key}"
    url = f"{state.upstream}/{path}"
    try:
        async with state.http.request(
            request.method, url, data=body or None, headers=headers, params=request.query
        ) as answer:
            data = await answer.read()
            passed = {h: answer.headers[h] for h in FORWARDED_ANSWER_HEADERS if h in answer.headers}
            return answer.status, data, passed
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        error = state.scrub(f"upstream {url} unreachable: {type(exc).__name__}: {exc}")
        payload = json.dumps({"error": {"message": error, "type": "durabench_gateway"}})
        return 502, payload.encode(), {"Content-Type": "application/json"}


async def _proxy(request: web.Request) -> web.Response:
    began_wall, began = time.time(), time.perf_counter()
    app = request.app
    state = app[STATE_KEY]
    path = request.match_info["tail"]
    body = await request.read()
    try:
        parsed: Any = json.loads(body) if body else None
    except json.JSONDecodeError:
        parsed = None
    try:
        run_id, step, attempt = parse_marker(parsed) if isinstance(parsed, dict) else (None,) * 3
    except (ValueError, KeyError, TypeError):
        run_id, step, attempt = None, None, None
    sw = switches(app)
    await sleep_ms(sw.extra_latency_ms)
    injected = sw.error_response(state.rng)
    if injected is not None:
        assert isinstance(injected.body, bytes)
        status, data = injected.status, injected.body
        passed = {k: v for k, v in injected.headers.items() if k in FORWARDED_ANSWER_HEADERS}
    else:
        status, data, passed = await _forward(state, request, path, body)
    text = state.scrub(data.decode("utf-8", errors="replace"))
    try:
        answer: Any = json.loads(text)
    except json.JSONDecodeError:
        answer = None
    repeat = 0
    if status == 200 and run_id is not None:
        marker = (str(run_id), int(step or 0), int(attempt or 0))
        repeat = state.answered.get(marker, 0)
        state.answered[marker] = repeat + 1
    tokens_in, tokens_out = _usage(answer) if status == 200 else (0, 0)
    state.seq += 1
    record_line(
        app[LOG_KEY],
        {
            "seq": state.seq,
            "time": began_wall,
            "source": "gateway",
            "method": request.method,
            "path": f"/v1/{path}",
            "run_id": run_id,
            "step": step,
            "attempt": attempt,
            "status": status,
            "injected": injected is not None,
            "repeat": repeat,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "latency_ms": round((time.perf_counter() - began) * 1000, 3),
            "request": state.scrub(body.decode("utf-8", errors="replace")),
            "response": text,
        },
    )
    response = web.Response(status=status, body=data, headers=passed)
    response.headers[SERVICE_TIME_HEADER] = f"{(time.perf_counter() - began) * 1000:.3f}"
    return response


async def _calls(request: web.Request) -> web.StreamResponse:
    """The whole call log, as JSON lines."""
    path = Path(request.app[LOG_KEY].name)
    return web.FileResponse(path, headers={"Content-Type": "application/x-ndjson"})


def build_app(scenario: Scenario, call_log: Path) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    add_common_routes(app)
    app[SCENARIO_KEY] = scenario
    app[STATE_KEY] = state = GatewayState(scenario, call_log)
    app[LOG_KEY] = call_log.open("a", encoding="utf-8")

    async def session(app: web.Application) -> Any:
        timeout = aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            state.http = http
            yield
        app[LOG_KEY].close()

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/v1/{tail:.*}", _proxy)
    app.router.add_get("/_durabench/calls", _calls)
    return app


def main() -> None:
    parser = service_parser("durabench recording gateway in front of a real LLM endpoint")
    parser.add_argument("--call-log", required=True, type=Path)
    args = parser.parse_args()
    run_app(build_app(load_scenario(args.scenario), args.call_log), args.host, args.port)


if __name__ == "__main__":
    main()
