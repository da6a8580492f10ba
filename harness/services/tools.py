"""The tool service and its side-effect ledger.

`POST /tools/{name}` performs one tool execution. Every execution is appended to
a SQLite ledger (WAL, synchronous=FULL: committed before the answer leaves) with
run, step, attempt, idempotency key, request, response and timestamps. An
execution whose idempotency key was already applied is recorded with
`applied = 0` and answered with the original response: the side effect is not
performed twice. `GET /ledger` exports the ledger for the checker. The same tools are MCP tools at
`/mcp` (harness/services/tools_mcp.py), recorded in the same ledger.

Run as `python -m harness.services.tools --scenario F --port P --ledger F`.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from harness.services.tools_mcp import add_mcp_routes
from harness.workload import sample_latency_ms, seeded_rng, task_of, tool_output

__all__ = [
    "ToolAnswer",
    "ToolCall",
    "build_app",
    "open_ledger",
    "perform",
    "read_ledger",
    "unknown_tool",
]

SCENARIO_KEY: web.AppKey[Scenario] = web.AppKey("scenario", Scenario)
DB_KEY: web.AppKey[sqlite3.Connection] = web.AppKey("db", sqlite3.Connection)
RNG_KEY: web.AppKey[random.Random] = web.AppKey("rng", random.Random)

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    tool TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    applied INTEGER NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ledger_applied_key ON ledger (idempotency_key) WHERE applied = 1;
CREATE INDEX IF NOT EXISTS ledger_run ON ledger (run_id, step, attempt);
"""
COLUMNS = (
    "seq",
    "run_id",
    "step",
    "attempt",
    "tool",
    "idempotency_key",
    "applied",
    "request",
    "response",
    "started_at",
    "finished_at",
)


def open_ledger(path: Path) -> sqlite3.Connection:
    """Open (or create) a ledger with the durability settings the numbers rely on."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


def read_ledger(db: sqlite3.Connection, run_id: str | None = None) -> list[dict[str, Any]]:
    query = f"SELECT {', '.join(COLUMNS)} FROM ledger"
    params: tuple[str, ...] = ()
    if run_id is not None:
        query += " WHERE run_id = ?"
        params = (run_id,)
    rows = []
    for row in db.execute(query + " ORDER BY seq", params):
        entry = dict(zip(COLUMNS, row, strict=True))
        entry["applied"] = bool(entry["applied"])
        entry["request"] = json.loads(entry["request"])
        entry["response"] = json.loads(entry["response"])
        rows.append(entry)
    return rows


def _record(
    db: sqlite3.Connection, call: ToolCall, response: dict[str, Any], began: float
) -> tuple[bool, dict[str, Any]]:
    """Append one execution; returns (applied, the response to answer with)."""
    previous = db.execute(
        "SELECT response FROM ledger WHERE idempotency_key = ? AND applied = 1",
        (call.idempotency_key,),
    ).fetchone()
    applied = previous is None
    if not applied:
        response = json.loads(previous[0])
    db.execute(
        "INSERT INTO ledger (run_id, step, attempt, tool, idempotency_key, applied, request,"
        " response, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            call.run_id,
            call.step,
            call.attempt,
            call.tool,
            call.idempotency_key,
            int(applied),
            json.dumps(call.request(), sort_keys=True),
            json.dumps(response, sort_keys=True),
            began,
            time.time(),
        ),
    )
    return applied, response


@dataclass(frozen=True)
class ToolCall:
    """One execution request, however it arrived (a POST body or an MCP `tools/call`)."""

    tool: str
    run_id: str
    step: int
    attempt: int
    idempotency_key: str
    arguments: dict[str, Any]
    transport: str = "http"

    @classmethod
    def parse(cls, tool: str, body: Any, transport: str = "http") -> ToolCall:
        """From `{run_id, step, attempt, idempotency_key, arguments}`; ValueError, KeyError
        or TypeError when a field is missing or of the wrong kind."""
        for name in ("run_id", "idempotency_key"):
            if not isinstance(body[name], str) or not body[name]:
                raise TypeError(f"{name} must be a non-empty string")
        return cls(
            tool,
            body["run_id"],
            int(body["step"]),
            int(body["attempt"]),
            body["idempotency_key"],
            dict(body["arguments"]),
            transport,
        )

    def request(self) -> dict[str, Any]:
        """What the ledger keeps as the request: the same shape for every transport."""
        body: dict[str, Any] = {
            "run_id": self.run_id,
            "step": self.step,
            "attempt": self.attempt,
            "idempotency_key": self.idempotency_key,
            "arguments": self.arguments,
        }
        if self.transport != "http":
            body["transport"] = self.transport
        return body


@dataclass(frozen=True)
class ToolAnswer:
    """What the service answers one call: 200 with `{output, applied}`, or an error status
    with `{error}` (and a Retry-After for 429)."""

    status: int
    body: dict[str, Any]
    service_ms: float
    retry_after_s: float | None = None


async def perform(app: web.Application, call: ToolCall) -> ToolAnswer:
    """Execute one call: the scenario's latency, the fault switches, then the effect,
    recorded in the ledger before the answer leaves."""
    began_wall, began = time.time(), time.perf_counter()
    scenario = app[SCENARIO_KEY]

    def elapsed_ms() -> float:
        return (time.perf_counter() - began) * 1000

    unknown = unknown_tool(scenario, call.tool)
    if unknown is not None:
        return ToolAnswer(404, {"error": unknown}, elapsed_ms())
    sw = switches(app)
    latency = sample_latency_ms(
        scenario.tool_latency,
        seeded_rng(scenario.seed, "tool-latency", task_of(call.run_id), call.step, call.attempt),
    )
    await sleep_ms(latency + (sw.extra_latency_ms if sw.applies_to(call.tool) else 0.0))
    injected = sw.error_response(app[RNG_KEY], call.tool)
    if injected is not None:
        assert isinstance(injected.body, bytes)
        retry_after = injected.headers.get("Retry-After")
        return ToolAnswer(
            injected.status,
            json.loads(injected.body),
            elapsed_ms(),
            float(retry_after) if retry_after is not None else None,
        )
    output = tool_output(scenario, call.run_id, call.step, call.attempt, call.tool, call.arguments)
    applied, output = _record(app[DB_KEY], call, output, began_wall)
    return ToolAnswer(200, {"output": output, "applied": applied}, elapsed_ms())


def unknown_tool(scenario: Scenario, tool: str) -> str | None:
    """The error for a tool the scenario does not have (None when it has it)."""
    if tool in scenario.tools:
        return None
    return f"unknown tool {tool!r}; this scenario has {list(scenario.tools)}"


async def _execute(request: web.Request) -> web.Response:
    tool = request.match_info["tool"]
    unknown = unknown_tool(request.app[SCENARIO_KEY], tool)
    if unknown is not None:
        return web.json_response({"error": unknown}, status=404)
    try:
        call = ToolCall.parse(tool, await request.json())
    except (ValueError, KeyError, TypeError) as exc:
        return web.json_response({"error": f"bad tool request: {exc!r}"}, status=400)
    answer = await perform(request.app, call)
    headers = {SERVICE_TIME_HEADER: f"{answer.service_ms:.3f}"}
    if answer.retry_after_s is not None:
        headers["Retry-After"] = f"{answer.retry_after_s:g}"
    return web.json_response(answer.body, status=answer.status, headers=headers)


async def _ledger(request: web.Request) -> web.Response:
    run_id = request.query.get("run_id")
    return web.json_response(read_ledger(request.app[DB_KEY], run_id))


def build_app(scenario: Scenario, ledger: Path) -> web.Application:
    app = web.Application()
    add_common_routes(app)
    app[SCENARIO_KEY] = scenario
    app[DB_KEY] = open_ledger(ledger)
    app[RNG_KEY] = random.Random(scenario.seed)
    app.router.add_post("/tools/{tool}", _execute)
    add_mcp_routes(app, scenario, perform, ToolCall.parse)
    app.router.add_get("/ledger", _ledger)
    return app


def main() -> None:
    parser = service_parser("durabench tool service with a side-effect ledger")
    parser.add_argument("--ledger", required=True, type=Path, help="SQLite ledger file")
    args = parser.parse_args()
    run_app(build_app(load_scenario(args.scenario), args.ledger), args.host, args.port)


if __name__ == "__main__":
    main()
