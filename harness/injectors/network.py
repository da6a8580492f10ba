"""Network faults on one link: through the fault proxy on loopback (local, docker), or
by the platform itself where it faults links (Kubernetes: NetworkPolicy, Chaos Mesh).
A proxy link with a fault is tracked as `ProxyLinks`: healing resets the proxy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from harness.errors import UnsupportedFault
from harness.faults import NetworkFault
from harness.heal_entry import HealEntry, request
from harness.injectors.base import FaultContext, Injector, Occurrence
from harness.platform.base import Platform
from harness.platform.capabilities import LinkFaults

if TYPE_CHECKING:
    from backends.base import Backend

__all__ = ["NetworkInjector", "ProxyLink", "ProxyLinks", "proxy_toxics"]

HTTP_TIMEOUT_S = 10


@dataclass(frozen=True)
class ProxyLinks(HealEntry, tag="proxy"):
    """The fault proxy of a run: after a crash every link's faults are cleared."""

    counter = "links_healed"
    control_url: str

    def undo(self) -> bool:
        request("DELETE", f"{self.control_url}/links")
        return True


@dataclass(frozen=True)
class ProxyLink(ProxyLinks, tag="proxy_link"):
    """One link of the fault proxy with a fault; in-run healing clears just that link."""

    link: str = ""


def proxy_toxics(fault: NetworkFault) -> dict[str, Any]:
    """The fault proxy's settings for a link fault (harness/faultproxy.py)."""
    if fault.mode == "partition":
        return {"blackhole": "both"}
    if fault.mode == "blackhole":
        return {"blackhole": fault.direction}
    if fault.mode == "reset":
        return {"reset": True}
    return {
        "latency_ms": fault.latency_ms,
        "jitter_ms": fault.jitter_ms,
        "bandwidth_kbps": fault.bandwidth_kbps,
        "direction": fault.direction,
    }


async def _put(url: str, body: dict[str, Any]) -> int:
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.put(url, json=body) as answer:
        if answer.status != 404:
            answer.raise_for_status()
        return answer.status


class NetworkInjector(Injector[NetworkFault], kind="network"):
    def refuse(
        self, fault: NetworkFault, platform: Platform | None, backend: Backend | None
    ) -> str | None:
        if isinstance(platform, LinkFaults):
            return platform.refuse_network_fault(fault)
        return super().refuse(fault, platform, backend)

    async def apply(self, fault: NetworkFault, ctx: FaultContext, at: Occurrence) -> None:
        platform = ctx.platform
        if ctx.proxy_url is None and isinstance(platform, LinkFaults):
            at.track(await asyncio.to_thread(platform.network_fault, fault))
        elif ctx.proxy_url is None:
            raise UnsupportedFault("no fault proxy in this run")
        else:
            link = f"{ctx.proxy_url}/links/{fault.target}"
            if await _put(link, proxy_toxics(fault)) == 404:
                raise UnsupportedFault(f"this backend has no {fault.target} link")
            at.track(ProxyLink(ctx.proxy_url, fault.target))
        at.selected = [fault.target]

    async def heal(self, entry: HealEntry, ctx: FaultContext) -> None:
        if isinstance(entry, ProxyLink):
            await _put(f"{entry.control_url}/links/{entry.link}", {})
        else:
            assert isinstance(ctx.platform, LinkFaults)
            await asyncio.to_thread(ctx.platform.heal_network_fault, entry)
