"""A model that sometimes answers text instead of calling a tool, as real models do: for
the runs named by --text-runs it answers a plain message, every other request it passes
on to the model at --upstream. No model that could run here does this on its own (the
simulator always calls a tool the request declares), so this one is made on purpose.

Run as `python -m tests.services.text_model --port P --upstream URL --text-runs a,b`."""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

from harness.services.llm import parse_marker

__all__ = ["build_app"]


def build_app(upstream: str, text_runs: set[str]) -> web.Application:
    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        run_id, _, _ = parse_marker(body)
        if run_id in text_runs:
            message = {"role": "assistant", "content": "I would rather not call a tool."}
            answer = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
            return web.json_response(
                {**answer, "usage": {"prompt_tokens": 9, "completion_tokens": 7}}
            )
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{upstream}/chat/completions", json=body) as forwarded,
        ):
            return web.Response(
                status=forwarded.status,
                body=await forwarded.read(),
                content_type="application/json",
            )

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--text-runs", required=True)
    args = parser.parse_args()
    app = build_app(args.upstream.rstrip("/"), set(args.text_runs.split(",")))
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
