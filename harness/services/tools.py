"""The tool service and its side-effect ledger.

`POST /tools/{name}` performs one tool execution. Every execution is appended to
a SQLite ledger (WAL, synchronous=FULL: committed before the answer leaves) with
run, step, attempt, idempotency key, request, response and timestamps. An
execution whose idempotency key was already applied is recorded with
`applied = 0` and answered with the original response: the side effect is not
performed twice. `GET /ledger` exports the ledger for the checker.

Run as `python -m harness.services.tools --scenario F --port P --ledger F`.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
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
from harness.workload import sample_latency_ms, seeded_rng, task_of, tool_output

__all__ = ["build_app", "open_ledger", "read_ledger"]

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
    db: sqlite3.Connection, body: dict[str, Any], tool: str, response: dict[str, Any], began: float
) -> tuple[bool, dict[str, Any]]:
    """Append one execution; returns (applied, the response to answer with)."""
    key = str(body["idempotency_key"])
    previous = db.execute(
        "SELECT response FROM ledger WHERE idempotency_key = ? AND applied = 1", (key,)
    ).fetchone()
    applied = previous is None
    if not applied:
        response = json.loads(previous[0])
    db.execute(
        "INSERT INTO ledger (run_id, step, attempt, tool, idempotency_key, applied, request,"
        " response, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(body["run_id"]),
            int(body["step"]),
            int(body["attempt"]),
            tool,
            key,
            int(applied),
            json.dumps(body, sort_keys=True),
            json.dumps(response, sort_keys=True),
            began,
            time.time(),
        ),
    )
    return applied, response


async def _execute(request: web.Request) -> web.Response:
    began_wall, began = time.time(), time.perf_counter()
    app = request.app
    scenario = app[SCENARIO_KEY]
    tool = request.match_info["tool"]
    if tool not in scenario.tools:
        return web.json_response(
            {"error": f"unknown tool {tool!r}; this scenario has {list(scenario.tools)}"},
            status=404,
        )
    try:
        body = await request.json()
        run_id, step, attempt = body["run_id"], int(body["step"]), int(body["attempt"])
        arguments = dict(body["arguments"])
        for name in ("run_id", "idempotency_key"):
            if not isinstance(body[name], str) or not body[name]:
                raise TypeError(f"{name} must be a non-empty string")
    except (ValueError, KeyError, TypeError) as exc:
        return web.json_response({"error": f"bad tool request: {exc!r}"}, status=400)
    sw = switches(app)
    latency = sample_latency_ms(
        scenario.tool_latency,
        seeded_rng(scenario.seed, "tool-latency", task_of(run_id), step, attempt),
    )
    await sleep_ms(latency + (sw.extra_latency_ms if sw.applies_to(tool) else 0.0))
    error = sw.error_response(app[RNG_KEY], tool)
    if error is not None:
        error.headers[SERVICE_TIME_HEADER] = f"{(time.perf_counter() - began) * 1000:.3f}"
        return error
    output = tool_output(scenario, run_id, step, attempt, tool, arguments)
    applied, output = _record(app[DB_KEY], body, tool, output, began_wall)
    return web.json_response(
        {"output": output, "applied": applied},
        headers={SERVICE_TIME_HEADER: f"{(time.perf_counter() - began) * 1000:.3f}"},
    )


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
    app.router.add_get("/ledger", _ledger)
    return app


def main() -> None:
    parser = service_parser("durabench tool service with a side-effect ledger")
    parser.add_argument("--ledger", required=True, type=Path, help="SQLite ledger file")
    args = parser.parse_args()
    run_app(build_app(load_scenario(args.scenario), args.ledger), args.host, args.port)


if __name__ == "__main__":
    main()
