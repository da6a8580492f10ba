"""The one worker process's runtime for framework code that the framework, not
durabench, calls (tool bodies, the model client's transport): set once by the worker
before it imports its agent, read by whatever runs later in that process.

Framework agents are module-level objects (Temporal workflows need them at import), so
what they need at run time (the scenario, the services, the Recorder, an HTTP session)
cannot be passed in and lives here. Never read from workflow code: only from
activities, tools and transports, which run in the worker's host process.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.agent import AgentContext
from harness.errors import DurabenchError
from harness.scenario import Scenario

__all__ = ["WorkerRuntime", "configure", "current"]


@dataclass
class WorkerRuntime:
    """The process's scenario, service URLs and phase context (its HTTP session is set
    once the worker's event loop runs)."""

    scenario: Scenario
    llm_url: str
    ctx: AgentContext | None = None
    heartbeat_s: float = 5.0  # the activity heartbeat timeout a framework is configured with
    start_to_close_s: float = 120.0  # one attempt of a model or tool activity

    @property
    def context(self) -> AgentContext:
        if self.ctx is None:
            raise DurabenchError("framework worker: a tool ran before the worker's context was set")
        return self.ctx


_RUNTIME: list[WorkerRuntime] = []


def configure(runtime: WorkerRuntime) -> WorkerRuntime:
    """Install this process's runtime (once; a second call replaces it, for tests)."""
    _RUNTIME[:] = [runtime]
    return runtime


def current() -> WorkerRuntime:
    if not _RUNTIME:
        raise DurabenchError(
            "framework worker: no runtime configured (import the agent module only in a "
            "worker, after backends.framework.runtime.configure)"
        )
    return _RUNTIME[0]
