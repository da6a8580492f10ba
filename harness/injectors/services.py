"""Service faults through the fault switches of the simulated services: the LLM answers
429 (with Retry-After), 5xx or slowly; tools answer slowly or with errors. A switch that
is on is tracked as `ServiceSwitch`: healing turns every switch of that service off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from harness.errors import UnsupportedFault
from harness.faults import LlmFault, ToolFault
from harness.heal_entry import HealEntry, request
from harness.injectors.base import FaultContext, Injector, Occurrence

__all__ = ["LlmInjector", "ServiceSwitch", "ToolInjector"]

SWITCHES = "/_durabench/faults"
HTTP_TIMEOUT_S = 10


@dataclass(frozen=True)
class ServiceSwitch(HealEntry, tag="switch"):
    """A service (by its admin URL) with a fault switch on."""

    counter = "switches_reset"
    url: str

    def undo(self) -> bool:
        request("PUT", f"{self.url}{SWITCHES}", {})
        return True


async def _switch(url: str, switches: dict[str, Any]) -> None:
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.put(f"{url}{SWITCHES}", json=switches) as answer,
    ):
        answer.raise_for_status()


class _SwitchInjector:
    """Shared by both services: switch on, track, switch off on heal."""

    async def _turn_on(self, url: str, switches: dict[str, Any], at: Occurrence) -> None:
        await _switch(url, switches)
        at.track(ServiceSwitch(url))

    async def heal(self, entry: HealEntry, ctx: FaultContext) -> None:
        assert isinstance(entry, ServiceSwitch)
        await _switch(entry.url, {})


class LlmInjector(_SwitchInjector, Injector[LlmFault], kind="llm"):
    async def apply(self, fault: LlmFault, ctx: FaultContext, at: Occurrence) -> None:
        if ctx.llm_admin_url is None:
            raise UnsupportedFault("a real LLM provider is in use: nothing to switch")
        status = fault.status or (429 if fault.mode == "rate_limit" else 500)
        switches = {
            "error_status": status if fault.mode != "slow" else None,
            "error_probability": fault.probability,
            "retry_after_s": fault.retry_after_s,
            "extra_latency_ms": fault.extra_latency_ms,
        }
        await self._turn_on(ctx.llm_admin_url, switches, at)
        at.selected = [fault.target]


class ToolInjector(_SwitchInjector, Injector[ToolFault], kind="tool"):
    async def apply(self, fault: ToolFault, ctx: FaultContext, at: Occurrence) -> None:
        switches = {
            "error_status": fault.status if fault.mode == "error" else None,
            "error_probability": fault.probability,
            "extra_latency_ms": fault.extra_latency_ms,
            "tools": list(fault.tools),
        }
        await self._turn_on(ctx.tools_admin_url, switches, at)
        at.selected = [fault.target]
