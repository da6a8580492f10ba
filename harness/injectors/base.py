"""The injector contract: one class per fault kind, registered by that kind.

An injector
- declares the platform capabilities it needs (`needs`: Protocols from
  harness/platform/capabilities.py);
- says up front why it cannot apply a fault to a backend on a platform (`refuse`,
  asked before anything starts; a fault it refuses is recorded as skipped with that
  reason), or raises a DurabenchError when the fault is wrong for them (an unknown
  code version), so the run stops before it begins;
- applies one occurrence (`apply`), tracking a typed heal entry (harness/heal_entry.py)
  the moment it changes something, so a crash halfway still leaves the entry behind;
- heals what it tracked (`heal`) when the fault's time is up or the run ends.

An injector must not sleep through a fault's duration (the nemesis does) and must not
block the event loop (platform calls go through `asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from harness.errors import DurabenchError, UnsupportedFault
from harness.faults import DeployFault, Fault, Selection
from harness.heal_entry import HealEntry
from harness.platform.base import Handle, Platform
from harness.platform.capabilities import CAPABILITIES
from harness.schedule import Planned, select_targets

if TYPE_CHECKING:
    from backends.base import Backend

__all__ = [
    "INJECTORS",
    "FaultContext",
    "FaultRecord",
    "Injector",
    "Occurrence",
    "judge",
]

F = TypeVar("F", bound=Fault)


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


@dataclass(frozen=True)
class FaultContext:
    """What injectors act through, for one backend run."""

    platform: Platform
    seed: int
    proxy_url: str | None = None  # the fault proxy's control API, when links go through it
    llm_admin_url: str | None = None  # the simulated LLM (None: a real provider)
    tools_admin_url: str = ""
    deploy: Callable[[DeployFault], Awaitable[None]] | None = None  # recreates the workers


@dataclass
class Occurrence:
    """One occurrence being applied: what it hit, what it says, and what must be healed."""

    planned: Planned
    track: Callable[[HealEntry], None]  # call the moment a change is made
    selected: list[str] = field(default_factory=list)
    detail: str = ""

    def select(self, ctx: FaultContext, selection: Selection, role: str) -> list[Handle]:
        """The running components of `role` this occurrence hits (drawn from the seed)."""
        running = {c.spec.name: c for c in ctx.platform.components(role)}
        names = select_targets(selection, list(running), ctx.seed, self.planned)
        victims = [running[n] for n in names]
        self.selected = [f"{c.spec.name}:{c.ident}" for c in victims]
        return victims


INJECTORS: dict[str, type[Injector[Any]]] = {}


class Injector(Generic[F]):
    """Base of every injector; a subclass names its fault kind: `Injector[X], kind="x"`."""

    kind: ClassVar[str] = ""
    needs: ClassVar[tuple[type, ...]] = ()  # platform capabilities (Protocols)
    timed: ClassVar[bool] = True  # False: the nemesis never applies it (crash points)

    def __init_subclass__(cls, *, kind: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            if kind in INJECTORS:
                raise TypeError(f"fault kind {kind!r} has an injector: {INJECTORS[kind]}")
            cls.kind = kind
            INJECTORS[kind] = cls

    def refuse(self, fault: F, platform: Platform | None, backend: Backend | None) -> str | None:
        """Why `fault` cannot apply here (None: it can); parts not given are not judged.
        The default checks `needs`; subclasses add their own reasons."""
        if platform is None:
            return None
        missing = [c for c in self.needs if not isinstance(platform, c)]
        if missing:
            cannot = " or ".join(CAPABILITIES.get(c, c.__name__) for c in missing)
            return f"the {platform.name} platform cannot {cannot}"
        return None

    async def apply(self, fault: F, ctx: FaultContext, at: Occurrence) -> None:
        """Start the fault. UnsupportedFault: it turned out not to apply (recorded as
        skipped with the message)."""
        raise UnsupportedFault(f"no way to apply {fault.kind} faults")

    async def heal(self, entry: HealEntry, ctx: FaultContext) -> None:
        """Undo one entry this injector tracked, through the live platform or service."""
        await asyncio.to_thread(entry.undo)


def judge(
    faults: Sequence[Fault], platform: Platform | None, backend: Backend | None
) -> dict[int, str]:
    """Fault index -> why it cannot apply, for every fault its injector refuses."""
    refused: dict[int, str] = {}
    for index, fault in enumerate(faults):
        try:
            reason = INJECTORS[fault.kind]().refuse(fault, platform, backend)
        except DurabenchError as exc:
            raise DurabenchError(f"faults.{index} ({fault.kind}) {exc}") from None
        if reason is not None:
            refused[index] = reason
    return refused
