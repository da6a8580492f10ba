"""The baseline: the RAV loop with no durability at all.

State lives in the worker's memory; `inspect` can only ask the worker, because
nothing is persisted anywhere (so `bytes_persisted` is 0). Every other backend's
overhead is measured against this one, and under a worker crash it must visibly
fail integrity: the runs the dead worker held are gone.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import aiohttp

from backends.base import BackendEnv, Guarantees, RunSpec
from backends.options import BackendOptions, Workers, parse_options
from backends.workercli import NoOptions, WorkerArgs
from harness.errors import BackendError
from harness.platform.base import ComponentSpec, free_port
from harness.state import PersistedRun, RunState

__all__ = ["BaselineBackend", "BaselineOptions"]

RETRY_INTERVAL_S = 0.1


class BaselineOptions(BackendOptions):
    """`baseline?workers=N`: worker processes (default: the scenario's `workers`)."""

    workers: Workers | None = None


class BaselineBackend:
    name = "baseline"
    guarantees = Guarantees()  # nothing: state lives in worker memory
    Options = BaselineOptions

    def __init__(self, workers: int | None = None) -> None:
        given = {"workers": workers} if workers is not None else {}
        self._workers_override = parse_options(self.name, BaselineOptions, given).workers
        self._urls: list[str] = []
        self._http: aiohttp.ClientSession | None = None

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        count = self._workers_override or env.scenario.workers
        specs = []
        for index in range(count):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            self._urls.append(url)
            args = WorkerArgs.for_env(env, self.name, f"worker-{index}", NoOptions(), port)
            specs.append(
                ComponentSpec(
                    name=f"{self.name}-worker-{index}",
                    role="worker",
                    argv=args.command("backends.baseline.worker"),
                    port=port,
                    health_url=f"{url}/health",
                    restart=True,
                )
            )
        return specs

    async def setup(self, env: BackendEnv) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self._http = aiohttp.ClientSession(connector=connector)

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise BackendError("baseline backend used before setup()")
        return self._http

    def _url(self, run_id: str) -> str:
        """Stable routing: a run always lives on the same worker slot."""
        return self._urls[zlib.crc32(run_id.encode()) % len(self._urls)]

    async def start(self, run: RunSpec) -> None:
        async with self.http.post(
            f"{self._url(run.run_id)}/runs", json={"run_id": run.run_id}
        ) as r:
            if r.status != 202:
                raise BackendError(f"baseline worker refused {run.run_id}: {await r.text()}")

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (remaining := deadline - loop.time()) > 0:
            url = f"{self._url(run_id)}/runs/{run_id}/wait?timeout={min(remaining, 30.0):.3f}"
            try:
                async with self.http.get(url) as response:
                    if response.status == 404:
                        return False  # the worker restarted and forgot the run
                    if response.status == 200 and (await response.json())["done"]:
                        return True
            except aiohttp.ClientError:  # worker down: wait for its restart
                await asyncio.sleep(RETRY_INTERVAL_S)
        return False

    async def approve(self, run_id: str) -> None:
        try:
            async with self.http.post(f"{self._url(run_id)}/runs/{run_id}/approve"):
                pass
        except aiohttp.ClientError:
            pass  # a lost approval is part of what the baseline cannot guarantee

    async def inspect(self, run_id: str) -> PersistedRun:
        try:
            async with self.http.get(f"{self._url(run_id)}/runs/{run_id}") as response:
                if response.status == 404:
                    return PersistedRun(run_id, None, bytes_persisted=0, history_length=0)
                data = await response.json()
        except aiohttp.ClientError as exc:
            return PersistedRun(run_id, None, bytes_persisted=0, extra={"error": str(exc)})
        state = RunState.from_dict(data["state"])
        extra = {"error": data["error"]} if data.get("error") else {}
        return PersistedRun(
            run_id, state, bytes_persisted=0, history_length=len(state.steps), extra=extra
        )

    async def cleanup_stale(self, ttl_s: float) -> int:
        return 0  # approval TTLs expire inside the worker loop; nothing else can go stale

    async def teardown(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def describe(self) -> dict[str, Any]:
        return {"durability": "none (worker memory)", "workers": len(self._urls)}
