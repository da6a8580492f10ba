"""The nemesis: runs the fault timeline of one backend run, heals every fault, and
records each with its intended and actual start and end.

The timeline comes from the schedule (harness/schedule.py), seeded by the scenario, so
two runs of the same scenario inject the same faults at the same offsets. What a fault
does is its injector's business (harness/injectors/, found by the fault's kind); the
injectors act on all three platforms (local processes, Docker containers, Kubernetes
pods) through the platform's capabilities, the fault proxy on the links, and the fault
switches of the simulated LLM and tool service. Everything an injector changes is in
the state file until it is healed, so `durabench heal` can undo it if durabench dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.errors import UnsupportedFault
from harness.faults import DeployFault
from harness.heal_entry import HealEntry
from harness.healing import ActiveFaults
from harness.injectors import (
    FaultContext,
    FaultRecord,
    Injector,
    Occurrence,
    injector_for,
    refuse_faults,
)
from harness.platform.base import Platform
from harness.scenario import Scenario
from harness.schedule import Planned, plan

log = logging.getLogger(__name__)

__all__ = [
    "CommitCounter",
    "FaultRecord",
    "Nemesis",
]

POLL_S = 0.05


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
    """Runs the fault timeline of one backend run against its platform.

    `refused` (fault index -> reason) is what the injectors refused before the run
    started (harness.injectors.refuse_faults); without it the nemesis asks them itself,
    about the platform only."""

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
        refused: Mapping[int, str] | None = None,
    ) -> None:
        self.scenario = scenario
        self.backend = backend
        self.timeline = plan(scenario.faults, scenario.seed)
        self.context = FaultContext(
            platform, scenario.seed, proxy_url, llm_admin_url, tools_admin_url, deploy
        )
        self.refused = dict(
            refuse_faults(scenario.faults, platform, None) if refused is None else refused
        )
        self.log_path = log_path
        self.active = active
        self.commits = commits
        self.records: list[FaultRecord] = []
        self._open: dict[str, tuple[Injector[Any], HealEntry]] = {}  # state key -> what heals

    # -- the timeline -------------------------------------------------------------------

    async def run(self, started_at: float, done: asyncio.Event) -> None:
        """Apply every planned fault at its time until the load is done, then heal all."""
        pending = [(p, self._record(p, started_at)) for p in self.timeline.planned]
        tasks: list[asyncio.Task[None]] = []
        try:
            while pending and not done.is_set():
                now = time.time() - started_at
                steps = await asyncio.to_thread(self.commits.poll)  # file reads, or a download
                due = [(p, r) for p, r in pending if p.due(now, steps)]
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
            target=fault.target_label(),
            intended_start=started_at + planned.at_s if planned.at_s is not None else None,
            intended_after_steps=planned.after_steps,
        )
        self.records.append(record)
        return record

    def _write(self, record: FaultRecord) -> None:
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(record), default=str) + "\n")

    async def _apply(self, planned: Planned, record: FaultRecord) -> None:
        """One occurrence: apply, hold for its duration, heal; record what happened."""
        fault = planned.fault
        record.actual_start = time.time()
        duration = fault.lasts_s()
        if duration is not None:
            record.intended_end = record.actual_start + duration
        injector = injector_for(fault.kind)
        tracked: list[str] = []

        def track(entry: HealEntry) -> None:
            key = f"{planned.key}:{len(tracked)}"
            if entry.durable:
                self.active.add(key, entry)
            self._open[key] = (injector, entry)
            tracked.append(key)

        occurrence = Occurrence(planned, track)
        try:
            refused = self.refused.get(planned.index)
            if refused is not None:
                raise UnsupportedFault(refused)
            await injector.apply(fault, self.context, occurrence)
            record.outcome = "ok"
            if tracked:
                if record.intended_end is not None:
                    await asyncio.sleep(max(0.0, record.intended_end - time.time()))
                await self._heal(tracked)
                record.actual_end = time.time()
        except asyncio.CancelledError:
            await self._heal(tracked)
            raise
        except UnsupportedFault as exc:
            record.outcome = "skipped"
            record.detail = str(exc)
            await self._heal(tracked)
        except Exception as exc:
            record.outcome = "failed"
            record.detail = f"{type(exc).__name__}: {exc}"[:500]
            await self._heal(tracked)
        finally:
            record.selected = record.selected or occurrence.selected
            record.detail = record.detail or occurrence.detail
            if record.actual_end is None:
                record.actual_end = time.time()
            self._write(record)

    async def _heal(self, keys: list[str]) -> None:
        for key in keys:
            opened = self._open.pop(key, None)
            if opened is None:
                continue  # healed already (heal_all)
            injector, entry = opened
            await injector.heal(entry, self.context)
            if entry.durable:
                self.active.remove(key)

    async def heal_all(self) -> None:
        """Heal whatever is still open (the run ended, or was interrupted)."""
        for key in list(self._open):
            with contextlib.suppress(Exception):
                await self._heal([key])
