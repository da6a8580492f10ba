"""Process faults on workers: kill (SIGKILL, a node lost) and evict (SIGTERM, a grace
period, then SIGKILL: a Kubernetes eviction). The platform's supervisor (or the pod's
controller) brings the worker back, as Kubernetes would."""

from __future__ import annotations

import asyncio

from harness.faults import EvictFault, KillFault
from harness.injectors.base import FaultContext, Injector, Occurrence
from harness.platform.capabilities import Evict, Kill

__all__ = ["EvictInjector", "KillInjector"]


class KillInjector(Injector[KillFault], kind="kill"):
    needs = (Kill,)

    async def apply(self, fault: KillFault, ctx: FaultContext, at: Occurrence) -> None:
        assert isinstance(ctx.platform, Kill)
        for victim in at.select(ctx, fault.select, fault.target):
            await asyncio.to_thread(ctx.platform.kill, victim.spec.name, fault.restart_delay_s)


class EvictInjector(Injector[EvictFault], kind="evict"):
    needs = (Evict,)

    async def apply(self, fault: EvictFault, ctx: FaultContext, at: Occurrence) -> None:
        assert isinstance(ctx.platform, Evict)
        for victim in at.select(ctx, fault.select, fault.target):
            await asyncio.to_thread(ctx.platform.evict, victim.spec.name, fault.grace_s)
