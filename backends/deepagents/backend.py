"""`deepagents[:sqlite|postgres]`: a Deep Agents agent on LangGraph's own checkpointer
(`AsyncSqliteSaver` on a file, `AsyncPostgresSaver` on the embedded Postgres or
`--pg-dsn`), run by the LangGraph backend's claiming workers (`backends.langgraph`: the
claim table, the wake and finished signals, the savers), resumed after a crash with
`ainvoke(None, config)` on the thread, as LangGraph's persistence documentation says.

Durability defaults to `sync` (`?durability=async|exit` to choose LangGraph's others):
a step's `commit` row is written when the agent's next model request carries its
committing verdict, which in `sync` means the checkpoint after the tool call is stored.
`inspect` reads the thread's latest checkpoint from the store and folds its `messages`
channel (the conversation Deep Agents persists) into the run state.
"""

from __future__ import annotations

from typing import Any

from backends.base import BackendEnv, Guarantees
from backends.framework.temporal import package_versions
from backends.langgraph.backend import LangGraphBackend, LangGraphBackendOptions
from harness.errors import BackendError
from harness.failpoints import BackendCrashPoint
from harness.platform.base import ComponentSpec
from harness.services.conversation import fold_conversation
from harness.state import PersistedRun, RunState

__all__ = ["DeepAgentsBackend"]

VARIANTS = ("sqlite", "postgres")
DEFAULT_DURABILITY = "sync"


class DeepAgentsBackend(LangGraphBackend):
    """`deepagents[:sqlite|postgres][?durability=sync|async|exit&workers=N&path=F]`."""

    Options = LangGraphBackendOptions
    WORKER_MODULE = "backends.deepagents.worker"
    COMPONENT_PREFIX = "deepagents"
    guarantees = Guarantees(durable=True, stable_act_keys=True)

    def __init__(
        self,
        variant: str | None = None,
        durability: str | None = None,
        workers: int | None = None,
        path: str | None = None,
    ) -> None:
        if variant is not None and variant not in VARIANTS:
            raise BackendError(
                f"deepagents: unknown saver {variant!r}; savers: {', '.join(VARIANTS)}"
            )
        super().__init__(variant, durability or DEFAULT_DURABILITY, workers, path)
        self._durability_given = durability is not None
        self._agent: Any = None
        options = [
            f"{k}={v}"
            for k, v in (("durability", durability), ("workers", workers), ("path", path))
            if v
        ]
        self.name = ("deepagents:" + variant if variant else "deepagents") + (
            "?" + "&".join(options) if options else ""
        )

    def crash_points(self) -> list[BackendCrashPoint]:
        return []  # the shared phase boundaries only (the saver's are the graph's own steps)

    def components(self, env: BackendEnv) -> list[ComponentSpec]:
        if env.scenario.approval is not None:
            raise BackendError(
                f"{self.name}: the scenario asks for a human approval, which this framework "
                "backend does not model; run it on langgraph, temporal or pgstore"
            )
        return super().components(env)

    async def setup(self, env: BackendEnv) -> None:
        from backends.deepagents.agent import build_agent
        from backends.framework.runtime import WorkerRuntime

        await super().setup(env)
        assert self._saver is not None
        # the same agent over the same saver: its `messages` channel is stored as deltas
        # (Deep Agents' reducer), so the conversation is read back through the graph
        self._agent = build_agent(WorkerRuntime(env.scenario, env.llm_url), self._saver)

    async def approve(self, run_id: str) -> None:
        raise BackendError(f"{self.name}: no human-approval step in this framework backend")

    async def inspect(self, run_id: str) -> PersistedRun:
        from backends.deepagents.agent import chat_messages
        from backends.langgraph.graph import thread_config
        from backends.langgraph.variants import footprint

        thread_id = self.thread_id(run_id)
        claim = await self.claims.get(thread_id)
        extra: dict[str, Any] = {"thread_id": thread_id}
        if claim is not None:
            extra |= {"claim_status": claim.status, "claims": claim.claims}
            if claim.error:
                extra["error"] = claim.error
        if self._saver is None or self._scenario is None or self._agent is None:
            raise BackendError(f"{self.name} used before setup()")
        snapshot = await self._agent.aget_state(thread_config(thread_id, self._scenario))
        checkpoints, size = await footprint(self._saver, thread_id)
        if not snapshot.values:
            return PersistedRun(run_id, None, size, checkpoints, extra)
        messages = chat_messages(snapshot.values.get("messages") or [])
        if not messages:
            return PersistedRun(run_id, RunState(run_id, "running"), size, checkpoints, extra)
        last = messages[-1]
        done = last.get("role") == "assistant" and not last.get("tool_calls")
        state = fold_conversation(
            self._scenario.verify,
            messages,
            finished=done,
            output=str(last.get("content")) if done else None,
        )
        return PersistedRun(run_id, state, size, checkpoints, extra)

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        for key in ("history_channel", "approval", "commit_row"):
            described.pop(key, None)
        described["durability_source"] = (
            "option" if self._durability_given else "deepagents default here (sync)"
        )
        return {
            **described,
            "agent": "deepagents.create_deep_agent, ChatOpenAI (chat completions)",
            "commit_row": "the next model request carries the step's committing verdict",
            "resume": "ainvoke(None, config) on the thread (LangGraph persistence)",
            "framework_versions": package_versions(
                "deepagents", "langchain", "langchain-core", "langchain-openai", "langgraph"
            ),
        }
