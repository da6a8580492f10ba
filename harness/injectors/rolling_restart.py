"""Rolling restart: the selected workers evicted one after another (SIGTERM, a grace
period to drain, SIGKILL), `interval_s` apart; each comes back through its supervisor
or its pod's controller. A worked example of a fault kind: its model is
`RollingRestartFault` in harness/faults.py, and this module is all the rest."""

from __future__ import annotations

import asyncio

from harness.faults import RollingRestartFault
from harness.injectors.base import FaultContext, Injector, Occurrence
from harness.platform.capabilities import Evict

__all__ = ["RollingRestartInjector"]


class RollingRestartInjector(Injector[RollingRestartFault], kind="rolling_restart"):
    needs = (Evict,)  # a platform without it gets the fault recorded as skipped, saying so

    async def apply(self, fault: RollingRestartFault, ctx: FaultContext, at: Occurrence) -> None:
        assert isinstance(ctx.platform, Evict)
        for turn, victim in enumerate(at.select(ctx, fault.select, fault.target)):
            if turn:
                await asyncio.sleep(fault.interval_s)
            await asyncio.to_thread(ctx.platform.evict, victim.spec.name, fault.grace_s)
