"""Faults are data: what, where, when, how long. Injectors (harness/injectors/) act on them,
the schedule (harness/schedule.py) times them.

```yaml
faults:
  - kind: kill                 # SIGKILL; the supervisor restarts the worker
    target: worker
    select: one                # one | all | {fixed: N} | {percent: P}
    at_s: 1.5                  # timing: at_s | after_steps | every_s | random
  - kind: network
    target: worker->store      # a link between two roles
    mode: partition            # blackhole (one direction) | partition | reset | latency | bandwidth
    after_steps: 40
    duration_s: 2
  - kind: crash_point          # kill exactly at a durability boundary
    point: after_act
    run: run-000003
    step: 2
```
Everything is validated with the scenario, before anything starts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.failpoints import CRASH_POINTS, is_backend_point

__all__ = [
    "ENUMERATIONS",
    "LINKS",
    "ROLES",
    "CrashPointFault",
    "DeployFault",
    "EvictFault",
    "Fault",
    "Fixed",
    "KillFault",
    "LlmFault",
    "NetworkFault",
    "OutageFault",
    "PauseFault",
    "Percent",
    "RandomTiming",
    "RestartFault",
    "RollingRestartFault",
    "Selection",
    "TimedFault",
    "ToolFault",
]

ENUMERATIONS = ("all", "own")  # crash-point values expanded per backend
ROLES = ("worker", "server", "store", "llm", "tools")
LINKS = ("worker->server", "worker->store", "worker->llm", "worker->tools")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Fixed(_Frozen):
    fixed: int = Field(ge=1, strict=True)


class Percent(_Frozen):
    percent: float = Field(gt=0, le=100)


Selection = Literal["one", "all"] | Fixed | Percent


class RandomTiming(_Frozen):
    """`count` start times drawn uniformly in [0, within_s) from the scenario seed."""

    count: int = Field(ge=1, le=10_000, strict=True)
    within_s: float = Field(gt=0)


class TimedFault(_Frozen):
    """Exactly one timing: at an offset, after N committed steps, periodically, or random."""

    kind: str  # each fault narrows it to its own literal: the discriminator
    at_s: float | None = Field(None, ge=0)
    after_steps: int | None = Field(None, ge=0, strict=True)
    every_s: float | None = Field(None, gt=0)
    times: int = Field(1, ge=1, le=10_000, strict=True)  # how often `every_s` repeats
    random: RandomTiming | None = None

    @model_validator(mode="after")
    def _one_timing(self) -> TimedFault:
        given = [
            n for n in ("at_s", "after_steps", "every_s", "random") if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "set exactly one timing: at_s, after_steps, every_s (with times) or random"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def target_label(self) -> str:
        """What the fault acts on, for its record ('' for faults that name no target)."""
        return str(self.__dict__.get("target", ""))

    def lasts_s(self) -> float | None:
        """How long the fault holds before it is healed (None: it is over once applied)."""
        duration = self.__dict__.get("duration_s")
        return None if duration is None else float(duration)


class KillFault(TimedFault):
    """SIGKILL (a pod lost with its node); the supervisor restarts it after a delay."""

    kind: Literal["kill"]
    target: Literal["worker"] = "worker"
    select: Selection = "one"
    restart_delay_s: float = Field(0.2, ge=0)


class EvictFault(TimedFault):
    """SIGTERM, a grace period to drain, then SIGKILL (a Kubernetes eviction)."""

    kind: Literal["evict"]
    target: Literal["worker"] = "worker"
    select: Selection = "one"
    grace_s: float = Field(2.0, ge=0)


class RollingRestartFault(TimedFault):
    """The selected workers evicted one after another, `interval_s` apart, each restarted
    by its supervisor (`kubectl rollout restart` without a new version)."""

    kind: Literal["rolling_restart"]
    target: Literal["worker"] = "worker"
    select: Selection = "all"
    grace_s: float = Field(2.0, ge=0)
    interval_s: float = Field(0.5, ge=0)


class PauseFault(TimedFault):
    """SIGSTOP, then SIGCONT after the duration (a long GC pause, a frozen VM)."""

    kind: Literal["pause"]
    target: Literal["worker", "server", "store", "llm", "tools"] = "worker"
    select: Selection = "one"
    duration_s: float = Field(gt=0)


class RestartFault(TimedFault):
    """Kill the server, the store, the tool service or the LLM provider (the simulator,
    or the recording gateway in front of a real one) and start it again on the same
    data: the ledger and the call log survive, MCP sessions do not."""

    kind: Literal["restart"]
    target: Literal["server", "store", "tools", "llm"]
    down_s: float = Field(0.0, ge=0)


class OutageFault(TimedFault):
    """Server and store down together for the duration (a regional outage)."""

    kind: Literal["outage"]
    duration_s: float = Field(gt=0)


class NetworkFault(TimedFault):
    """A fault on one link through the fault proxy."""

    kind: Literal["network"]
    target: Literal["worker->server", "worker->store", "worker->llm", "worker->tools"]
    mode: Literal["blackhole", "partition", "reset", "latency", "bandwidth"]
    direction: Literal["upstream", "downstream", "both"] = "both"
    latency_ms: float = Field(0.0, ge=0)
    jitter_ms: float = Field(0.0, ge=0)
    bandwidth_kbps: float | None = Field(None, gt=0)
    duration_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _parameters(self) -> NetworkFault:
        if self.mode == "latency" and self.latency_ms <= 0:
            raise ValueError("mode latency needs latency_ms > 0")
        if self.mode == "bandwidth" and self.bandwidth_kbps is None:
            raise ValueError("mode bandwidth needs bandwidth_kbps")
        return self


class LlmFault(TimedFault):
    """The simulated provider answers 429 (with Retry-After), 5xx, or slowly."""

    kind: Literal["llm"]
    target: Literal["llm"] = "llm"
    mode: Literal["rate_limit", "error", "slow"]
    status: int | None = Field(None, ge=400, le=599, strict=True)
    probability: float = Field(1.0, gt=0, le=1)
    retry_after_s: float = Field(1.0, ge=0)
    extra_latency_ms: float = Field(0.0, ge=0)
    duration_s: float = Field(gt=0)


class ToolFault(TimedFault):
    """Slow tool calls (60 s and more exercise heartbeats and timeouts) or tool errors."""

    kind: Literal["tool"]
    target: Literal["tools"] = "tools"
    mode: Literal["slow", "error"]
    tools: tuple[str, ...] = ()  # empty = every tool
    status: int = Field(503, ge=400, le=599, strict=True)
    probability: float = Field(1.0, gt=0, le=1)
    extra_latency_ms: float = Field(0.0, ge=0)
    duration_s: float = Field(gt=0)


class DeployFault(TimedFault):
    """Recreate the workers mid-run from another image (platforms that run images), on
    another code version (backends that have versions), or both."""

    kind: Literal["deploy"]
    target: Literal["worker"] = "worker"
    version: str | None = Field(None, min_length=1)
    image: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _something_to_deploy(self) -> DeployFault:
        if self.version is None and self.image is None:
            raise ValueError("set version, image or both: what the workers are recreated from")
        return self


class CrashPointFault(_Frozen):
    """Kill the worker that reaches `point` for `run` at `step`, once ('*' = any run,
    no step = any step).

    `point` is a shared phase boundary (`after_act`, ...), a backend's own point
    (`temporal.after_activity_effect`: checked against the backend's declared points
    before the run starts), or `all` / `own` with `step: all` or a step: every point
    of the backend (shared and own, or only its own) at every step, expanded once the
    backend is known into one crash point per (point, step) pair, each pinned to a run
    of its own unless `run` names one (harness/crashpoints.py)."""

    kind: Literal["crash_point"]
    point: str
    run: str = Field("*", pattern=r"^[A-Za-z0-9*][A-Za-z0-9_.~*-]*$")
    step: int | None = Field(None, ge=0, strict=True)
    each_step: bool = False  # what `step: all` sets: one crash point per step

    @model_validator(mode="before")
    @classmethod
    def _step_all(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("step") == "all":
            return {**{k: v for k, v in data.items() if k != "step"}, "each_step": True}
        return data

    @field_validator("point")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if value in CRASH_POINTS or value in ENUMERATIONS or is_backend_point(value):
            return value
        raise ValueError(
            f"unknown crash point {value!r}: a shared point ({', '.join(CRASH_POINTS)}), "
            "a backend's own (backend.boundary: `durabench crashpoints --backend NAME` "
            f"lists them), or {' / '.join(ENUMERATIONS)} to enumerate them"
        )

    @property
    def enumerates(self) -> bool:
        """Whether this fault stands for many crash points (expanded per backend)."""
        return self.point in ENUMERATIONS or self.each_step


Fault = Annotated[
    KillFault
    | EvictFault
    | RollingRestartFault
    | PauseFault
    | RestartFault
    | OutageFault
    | NetworkFault
    | LlmFault
    | ToolFault
    | DeployFault
    | CrashPointFault,
    Field(discriminator="kind"),
]
