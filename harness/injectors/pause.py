"""Pause: freeze components for the fault's duration (SIGSTOP / docker pause / Chaos Mesh
PodChaos), then continue them. Each frozen component is tracked as the platform's own
heal entry, so `durabench heal` continues it if durabench dies meanwhile."""

from __future__ import annotations

import asyncio

from harness.faults import PauseFault
from harness.heal_entry import HealEntry
from harness.injectors.base import FaultContext, Injector, Occurrence
from harness.platform.capabilities import Pause

__all__ = ["PauseInjector"]


class PauseInjector(Injector[PauseFault], kind="pause"):
    needs = (Pause,)

    async def apply(self, fault: PauseFault, ctx: FaultContext, at: Occurrence) -> None:
        assert isinstance(ctx.platform, Pause)
        for victim in at.select(ctx, fault.select, fault.target):
            at.track(await asyncio.to_thread(ctx.platform.pause, victim.spec.name))

    async def heal(self, entry: HealEntry, ctx: FaultContext) -> None:
        assert isinstance(ctx.platform, Pause)
        await asyncio.to_thread(ctx.platform.resume, entry)
