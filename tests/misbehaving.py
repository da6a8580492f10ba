"""Backends that misbehave on purpose, loaded by import path like any third-party
backend (`--backend tests.misbehaving:InspectRaises`): the baseline with one fault of
its own, to show that durabench judges what it can and names what it cannot."""

from __future__ import annotations

from typing import Any

from backends.base import BackendEnv, RunSpec
from backends.baseline import BaselineBackend
from harness.state import PersistedRun

__all__ = ["ApprovalRaises", "InspectRaises", "StrayEffects"]

RAISES_FOR = "run-000001"
MALFORMED_FOR = "run-000002"
STRAY_RUN = "ghost-000000"


class InspectRaises(BaselineBackend):
    """`inspect` raises for one run and returns a state that is not a RunState for
    another; every other run is the baseline's."""

    async def inspect(self, run_id: str) -> PersistedRun:
        if run_id == RAISES_FOR:
            raise RuntimeError("the store went away mid-read")
        if run_id == MALFORMED_FOR:
            return PersistedRun(run_id, {"steps": "garbage"}, bytes_persisted=0)  # type: ignore[arg-type]
        return await super().inspect(run_id)


class StrayEffects(BaselineBackend):
    """Applies one tool effect under a run id that no run has (a worker acting on a run
    it made up), then behaves."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._tools_url = ""
        self._stray_done = False

    async def setup(self, env: BackendEnv) -> None:
        await super().setup(env)
        self._tools_url = env.tools_url

    async def start(self, run: RunSpec) -> None:
        if not self._stray_done:
            self._stray_done = True
            body = {
                "run_id": STRAY_RUN,
                "step": 0,
                "attempt": 1,
                "idempotency_key": f"{STRAY_RUN}/0/1",
                "arguments": {"item": "ghost"},
            }
            async with self.http.post(f"{self._tools_url}/tools/search_supplier", json=body) as r:
                r.raise_for_status()
        await super().start(run)


class ApprovalRaises(BaselineBackend):
    """Cannot deliver an approval (its `approve` raises): the run it was for would
    expire, and that expiry is not the backend's durability to judge."""

    async def approve(self, run_id: str) -> None:
        raise RuntimeError("the approval endpoint refused the request")
