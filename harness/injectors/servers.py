"""Server and store faults: restart (killed and started again on the same data) and
outage (server and store down together for the duration, a regional outage). A backend
without the targeted role has nothing to restart: the fault is skipped, saying so."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from harness.errors import UnsupportedFault
from harness.faults import OutageFault, RestartFault
from harness.heal_entry import HealEntry
from harness.injectors.base import FaultContext, Injector, Occurrence
from harness.platform.base import Handle
from harness.platform.capabilities import Outage, Restart

__all__ = ["Down", "OutageInjector", "RestartInjector"]


class RestartInjector(Injector[RestartFault], kind="restart"):
    needs = (Restart,)

    async def apply(self, fault: RestartFault, ctx: FaultContext, at: Occurrence) -> None:
        assert isinstance(ctx.platform, Restart)
        victims = list(ctx.platform.components(fault.target))
        if not victims:
            raise UnsupportedFault(f"this backend has no {fault.target}")
        at.selected = [f"{c.spec.name}:{c.ident}" for c in victims]
        for victim in victims:
            await asyncio.to_thread(ctx.platform.restart, victim.spec.name, fault.down_s)


@dataclass(frozen=True)
class Down(HealEntry, tag="outage"):
    """Components an outage took down, to bring back (stores first). In-run only: once
    durabench is gone, the entries of the components it started end the rest."""

    durable = False
    components: tuple[Handle, ...]


class OutageInjector(Injector[OutageFault], kind="outage"):
    needs = (Outage,)

    async def apply(self, fault: OutageFault, ctx: FaultContext, at: Occurrence) -> None:
        assert isinstance(ctx.platform, Outage)
        down = [c for role in ("server", "store") for c in ctx.platform.components(role)]
        if not down:
            raise UnsupportedFault("this backend has neither a server nor a store")
        at.selected = [f"{c.spec.name}:{c.ident}" for c in down]
        killed = [await asyncio.to_thread(ctx.platform.kill_now, c.spec.name) for c in down]
        at.track(Down(tuple(killed)))

    async def heal(self, entry: HealEntry, ctx: FaultContext) -> None:
        assert isinstance(entry, Down) and isinstance(ctx.platform, Outage)
        for component in sorted(entry.components, key=lambda c: c.spec.role != "store"):
            await asyncio.to_thread(ctx.platform.revive, component)
