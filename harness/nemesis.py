"""The nemesis: applies the scenario's faults on their timeline, heals every one of
them, and records each with its intended and actual start and end.

The schedule is derived from the scenario alone (seeded), so two runs of the same
scenario inject the same faults at the same offsets. Injectors here act on the
local platform: real signals to real processes, the fault proxy on real TCP links,
the fault switches of the simulated LLM and tool service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from harness.errors import UnsupportedFault
from harness.failpoints import CrashPoint
from harness.faults import (
    CrashPointFault,
    DeployFault,
    EvictFault,
    KillFault,
    LlmFault,
    NetworkFault,
    OutageFault,
    PauseFault,
    RestartFault,
    Selection,
    ToolFault,
)
from harness.healing import ActiveFaults
from harness.platform.base import Handle, Platform
from harness.scenario import Scenario
from harness.schedule import Planned, plan_faults, select_targets

log = logging.getLogger(__name__)

__all__ = [
    "CommitCounter",
    "FaultRecord",
    "Nemesis",
    "crash_point_records",
]

POLL_S = 0.05
EVICT_POLL_S = 0.05


@dataclass
class FaultRecord:
    """One row of faults.parquet."""

    backend: str
    fault_index: int
    occurrence: int
    kind: str
    target: str
    intended_start: float | None = None
    intended_after_steps: int | None = None
    actual_start: float | None = None
    intended_end: float | None = None
    actual_end: float | None = None
    selected: list[str] = field(default_factory=list)
    outcome: str = "pending"  # ok | skipped | failed | not_reached
    detail: str = ""


def crash_point_records(scenario: Scenario, backend: str, marker_dir: Path) -> list[FaultRecord]:
    """Crash points are not timed: each fires (once) where a worker reaches it. Its marker
    file says when, for which run and step, and in which process."""
    records = []
    for index, fault in enumerate(scenario.faults):
        if not isinstance(fault, CrashPointFault):
            continue
        point = CrashPoint(fault.point, fault.run, fault.step)
        record = FaultRecord(backend, index, 0, fault.kind, fault.point)
        marker = marker_dir / f"{point.encode().replace('*', 'any')}.fired"
        if marker.exists():
            run_id, step, pid = marker.read_text().strip().split(":")
            record.actual_start = record.actual_end = marker.stat().st_mtime
            record.selected = [f"{run_id}:{step}:{pid}"]
            record.outcome = "ok"
        else:
            record.outcome = "not_reached"
            record.detail = "no worker reached this boundary (the run ended first, or the "
            record.detail += "backend has no such boundary)"
        records.append(record)
    return records


class CommitCounter:
    """Counts `ok` commit rows in the workers' measurement files, reading only new bytes.
    `refresh` first brings the files here where workers write them elsewhere (a
    Kubernetes volume), at most once per `refresh_every_s`."""

    def __init__(
        self,
        directory: Path,
        refresh: Callable[[], None] | None = None,
        refresh_every_s: float = 1.0,
    ) -> None:
        self.directory = directory
        self._offsets: dict[Path, int] = {}
        self.count = 0
        self._refresh = refresh
        self._refresh_every_s = refresh_every_s
        self._refreshed_at = -math.inf

    def poll(self) -> int:
        if self._refresh is not None and time.monotonic() >= (
            self._refreshed_at + self._refresh_every_s
        ):
            self._refreshed_at = time.monotonic()
            try:
                self._refresh()
            except Exception as exc:  # a missed refresh delays a fault; it must not end the run
                log.warning("could not bring the measurement files here: %s", exc)
        if not self.directory.exists():
            return self.count
        for path in self.directory.glob("*.jsonl"):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1
            for line in chunk[:complete].splitlines():
                if b'"phase":"commit"' in line and b'"outcome":"ok"' in line:
                    self.count += 1
            self._offsets[path] = offset + complete
        return self.count


class Nemesis:
    """Runs the fault plan of one backend run against its platform."""

    def __init__(
        self,
        scenario: Scenario,
        backend: str,
        platform: Platform,
        *,
        log_path: Path,
        active: ActiveFaults,
        commits: CommitCounter,
        proxy_url: str | None,
        llm_admin_url: str | None,
        tools_admin_url: str,
        deploy: Callable[[DeployFault], Awaitable[None]] | None = None,
    ) -> None:
        self.scenario = scenario
        self.backend = backend
        self.platform = platform
        self.log_path = log_path
        self.active = active
        self.commits = commits
        self.proxy_url = proxy_url
        self.llm_admin_url = llm_admin_url
        self.tools_admin_url = tools_admin_url
        self.deploy = deploy
        self.records: list[FaultRecord] = []
        self._heals: dict[str, Callable[[], Awaitable[None]]] = {}

    # -- the timeline -------------------------------------------------------------------

    async def run(self, started_at: float, done: asyncio.Event) -> None:
        """Apply every planned fault at its time until the load is done, then heal all."""
        pending = [(p, self._record(p, started_at)) for p in plan_faults(self.scenario)]
        tasks: list[asyncio.Task[None]] = []
        try:
            while pending and not done.is_set():
                now = time.time() - started_at
                steps = await asyncio.to_thread(self.commits.poll)  # file reads, or a download
                due = [
                    (p, r)
                    for p, r in pending
                    if (p.at_s is not None and now >= p.at_s)
                    or (p.after_steps is not None and steps >= p.after_steps)
                ]
                for item in due:
                    pending.remove(item)
                    tasks.append(asyncio.create_task(self._apply(*item)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), POLL_S)
            for _, record in pending:
                record.outcome = "not_reached"
                record.detail = "the runs finished before this fault was due"
                self._write(record)
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            await self.heal_all()

    def _record(self, planned: Planned, started_at: float) -> FaultRecord:
        fault = planned.fault
        record = FaultRecord(
            backend=self.backend,
            fault_index=planned.index,
            occurrence=planned.occurrence,
            kind=fault.kind,
            target=str(getattr(fault, "target", "")),
            intended_start=started_at + planned.at_s if planned.at_s is not None else None,
            intended_after_steps=planned.after_steps,
        )
        self.records.append(record)
        return record

    def _write(self, record: FaultRecord) -> None:
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(record), default=str) + "\n")

    async def _apply(self, planned: Planned, record: FaultRecord) -> None:
        fault = planned.fault
        record.actual_start = time.time()
        duration = getattr(fault, "duration_s", None)
        if duration is not None:
            record.intended_end = record.actual_start + duration
        key = f"{planned.index}.{planned.occurrence}"
        try:
            heal = await self._inject(planned, record, key)
            record.outcome = "ok" if record.outcome == "pending" else record.outcome
            if heal is not None:
                self._heals[key] = heal
                if duration is not None:
                    await asyncio.sleep(max(0.0, record.intended_end - time.time()))  # type: ignore[operator]
                await self._heal(key)
        except asyncio.CancelledError:
            await self._heal(key)
            raise
        except UnsupportedFault as exc:
            record.outcome = "skipped"
            record.detail = str(exc)
        except Exception as exc:
            record.outcome = "failed"
            record.detail = f"{type(exc).__name__}: {exc}"[:500]
            await self._heal(key)
        finally:
            if record.actual_end is None:
                record.actual_end = time.time()
            self._write(record)

    async def _heal(self, key: str) -> None:
        heal = self._heals.pop(key, None)
        if heal is not None:
            await heal()

    async def heal_all(self) -> None:
        for key in list(self._heals):
            with contextlib.suppress(Exception):
                await self._heal(key)

    # -- injectors ----------------------------------------------------------------------

    def _select(self, selection: Selection, role: str, planned: Planned) -> list[Handle]:
        running = {c.spec.name: c for c in self.platform.components(role)}
        names = select_targets(selection, list(running), self.scenario.seed, planned)
        return [running[n] for n in names]

    async def _inject(
        self, planned: Planned, record: FaultRecord, key: str
    ) -> Callable[[], Awaitable[None]] | None:
        """Start the fault; return the coroutine function that heals it (None: nothing to heal)."""
        fault = planned.fault
        if isinstance(fault, KillFault | EvictFault):
            victims = self._select(fault.select, "worker", planned)
            record.selected = [f"{c.spec.name}:{c.ident}" for c in victims]
            for victim in victims:
                if isinstance(fault, KillFault):
                    self.platform.kill(victim.spec.name, fault.restart_delay_s)
                else:
                    await asyncio.to_thread(self.platform.evict, victim.spec.name, fault.grace_s)
            return None
        if isinstance(fault, PauseFault):
            victims = self._select(fault.select, fault.target, planned)
            return self._pause(victims, record, key)
        if isinstance(fault, RestartFault):
            victims = list(self.platform.components(fault.target))
            if not victims:
                return self._skip(record, f"this backend has no {fault.target}")
            record.selected = [f"{c.spec.name}:{c.ident}" for c in victims]
            for victim in victims:
                await asyncio.to_thread(self.platform.restart, victim.spec.name, fault.down_s)
            return None
        if isinstance(fault, OutageFault):
            return await self._outage(record)
        if isinstance(fault, NetworkFault):
            return await self._network(fault, record, key)
        if isinstance(fault, LlmFault | ToolFault):
            return await self._switch(fault, record, key)
        if isinstance(fault, DeployFault):
            if self.deploy is None:
                return self._skip(record, "no deployer in this run")
            record.selected = [c.spec.name for c in self.platform.components("worker")]
            await self.deploy(fault)
            record.detail = "deployed " + " and ".join(
                f"{what} {value}"
                for what, value in (("image", fault.image), ("version", fault.version))
                if value is not None
            )
            return None
        return self._skip(record, f"no injector for {fault.kind}")

    @staticmethod
    def _skip(record: FaultRecord, why: str) -> None:
        record.outcome = "skipped"
        record.detail = why

    def _pause(
        self, victims: list[Handle], record: FaultRecord, key: str
    ) -> Callable[[], Awaitable[None]]:
        record.selected = [f"{c.spec.name}:{c.ident}" for c in victims]
        paused: list[tuple[str, dict[str, Any]]] = []
        for victim in victims:
            entry = self.platform.pause(victim.spec.name)
            self.active.add(f"{key}:{victim.ident}", entry)
            paused.append((victim.spec.name, entry))

        async def resume() -> None:
            for (name, entry), victim in zip(paused, victims, strict=True):
                self.platform.resume(name, entry)
                self.active.remove(f"{key}:{victim.ident}")
            record.actual_end = time.time()

        return resume

    async def _outage(self, record: FaultRecord) -> Callable[[], Awaitable[None]] | None:
        down = [c for role in ("server", "store") for c in self.platform.components(role)]
        if not down:
            return self._skip(record, "this backend has neither a server nor a store")
        record.selected = [f"{c.spec.name}:{c.ident}" for c in down]
        killed = [await asyncio.to_thread(self.platform.kill_now, c.spec.name) for c in down]

        async def back() -> None:
            for component in sorted(killed, key=lambda c: c.spec.role != "store"):
                await asyncio.to_thread(self.platform.revive, component)
            record.actual_end = time.time()

        return back

    async def _network(
        self, fault: NetworkFault, record: FaultRecord, key: str
    ) -> Callable[[], Awaitable[None]] | None:
        network_fault = getattr(self.platform, "network_fault", None)
        if self.proxy_url is None and network_fault is not None:
            # platforms that fault links themselves (Kubernetes: NetworkPolicy, Chaos Mesh)
            entry = await asyncio.to_thread(network_fault, fault)
            record.selected = [fault.target]
            self.active.add(key, entry)

            async def heal_platform() -> None:
                await asyncio.to_thread(self.platform.heal_network_fault, entry)  # type: ignore[attr-defined]
                self.active.remove(key)
                record.actual_end = time.time()

            return heal_platform
        if self.proxy_url is None:
            return self._skip(record, "no fault proxy in this run")
        toxics: dict[str, Any]
        if fault.mode == "partition":
            toxics = {"blackhole": "both"}
        elif fault.mode == "blackhole":
            toxics = {"blackhole": fault.direction}
        elif fault.mode == "reset":
            toxics = {"reset": True}
        else:
            toxics = {
                "latency_ms": fault.latency_ms,
                "jitter_ms": fault.jitter_ms,
                "bandwidth_kbps": fault.bandwidth_kbps,
                "direction": fault.direction,
            }
        url = f"{self.proxy_url}/links/{fault.target}"
        async with aiohttp.ClientSession() as http, http.put(url, json=toxics) as response:
            if response.status == 404:
                return self._skip(record, f"this backend has no {fault.target} link")
            response.raise_for_status()
        record.selected = [fault.target]
        self.active.add(key, {"type": "proxy", "control_url": self.proxy_url})

        async def heal() -> None:
            async with aiohttp.ClientSession() as http, http.put(url, json={}) as response:
                response.raise_for_status()
            self.active.remove(key)
            record.actual_end = time.time()

        return heal

    async def _switch(
        self, fault: LlmFault | ToolFault, record: FaultRecord, key: str
    ) -> Callable[[], Awaitable[None]] | None:
        if isinstance(fault, LlmFault):
            if self.llm_admin_url is None:
                return self._skip(record, "a real LLM provider is in use: nothing to switch")
            base = self.llm_admin_url
            status = fault.status or (429 if fault.mode == "rate_limit" else 500)
            switches: dict[str, Any] = {
                "error_status": status if fault.mode != "slow" else None,
                "error_probability": fault.probability,
                "retry_after_s": fault.retry_after_s,
                "extra_latency_ms": fault.extra_latency_ms,
            }
        else:
            base = self.tools_admin_url
            switches = {
                "error_status": fault.status if fault.mode == "error" else None,
                "error_probability": fault.probability,
                "extra_latency_ms": fault.extra_latency_ms,
                "tools": list(fault.tools),
            }
        async with (
            aiohttp.ClientSession() as http,
            http.put(f"{base}/_durabench/faults", json=switches) as response,
        ):
            response.raise_for_status()
        record.selected = [fault.target]
        self.active.add(key, {"type": "switch", "url": base})

        async def heal() -> None:
            async with (
                aiohttp.ClientSession() as http,
                http.put(f"{base}/_durabench/faults", json={}) as response,
            ):
                response.raise_for_status()
            self.active.remove(key)
            record.actual_end = time.time()

        return heal
