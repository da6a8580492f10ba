"""The Reason-Act-Verify agent as a LangGraph `StateGraph`, built from the scenario.

One RAV step is three supersteps (reason → act → verify), so three checkpoints per
step when the durability mode checkpoints at all. Verify decides with
the step policy (`harness.steppolicy.settle`): retry the act, re-plan (reason again), or
close the step by appending its `StepRecord` to `history`. The checkpoint that first holds a
step in `history` is the one that commits it (see `savers.py`).

`history` uses the ordinary list reducer (`operator.add`): like every LangGraph
channel it is stored whole in each checkpoint that changes it, which is the state
bloat durabench measures. The nodes only compose `harness.agent` phases; the
worker's `AgentContext` reaches them as the LangGraph runtime context (it is not
checkpointed).
"""

from __future__ import annotations

import operator
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from harness.agent import AgentContext, act, reason, verify
from harness.measure import PhaseRow
from harness.scenario import Scenario
from harness.state import TERMINAL_STATUSES, PersistedRun, RunState
from harness.steppolicy import settle
from harness.workload import Decision, final_answer, idempotency_key

__all__ = [
    "AgentGraph",
    "AgentState",
    "ApprovalAnswer",
    "ThreadView",
    "build_graph",
    "initial_state",
    "read_thread",
    "recursion_limit",
    "thread_config",
]

AgentGraph = CompiledStateGraph[Any, AgentContext, Any, Any]


class AgentState(TypedDict):
    """What every checkpoint holds: the committed history (StepRecords as dicts, with
    their tool outputs and thought traces) and the step in progress."""

    run_id: str  # logical run id (the thread id is namespaced, this is not)
    step: int  # index of the step in progress (== len(history) unless finished)
    attempt: int  # 1-based attempt of the step in progress
    decision: dict[str, Any] | None  # the current tool choice, arguments and thought trace
    output: dict[str, Any] | None  # the current attempt's tool output
    verdicts: list[bool]  # verify verdicts of the step in progress
    move: str  # what the last verify decided (next_move)
    history: Annotated[list[dict[str, Any]], operator.add]
    status: str  # running | completed | aborted | expired
    final_answer: str | None


@dataclass(frozen=True)
class ApprovalAnswer:
    """The `Command(resume=...)` value for the approval interrupt: a human approval or the
    TTL policy expiring the wait; `requested_at` is when the run started waiting."""

    decision: Literal["approved", "expired"]
    requested_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def initial_state(run_id: str) -> AgentState:
    return AgentState(
        run_id=run_id,
        step=0,
        attempt=1,
        decision=None,
        output=None,
        verdicts=[],
        move="",
        history=[],
        status="running",
        final_answer=None,
    )


def thread_config(thread_id: str, scenario: Scenario) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit(scenario)}


def recursion_limit(scenario: Scenario) -> int:
    """Supersteps one invocation may take: every attempt re-planned, plus the approval."""
    return scenario.steps * scenario.verify.max_attempts * 3 + 10


def _decision(state: AgentState) -> Decision:
    if state["decision"] is None:
        raise RuntimeError(f"{state['run_id']} step {state['step']}: no decision in state")
    return Decision(**state["decision"])


def build_graph(scenario: Scenario) -> StateGraph[AgentState, AgentContext, AgentState, AgentState]:
    """The RAV graph for this scenario (uncompiled: compile it with a checkpointer)."""
    approval = scenario.approval
    last_step = scenario.steps - 1

    def finished(state: AgentState, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"status": "completed", "final_answer": final_answer(state["run_id"], outputs)}

    async def reason_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        decision = await reason(runtime.context, state["run_id"], state["step"], state["attempt"])
        return {"decision": asdict(decision)}

    async def act_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        run_id, step, attempt = state["run_id"], state["step"], state["attempt"]
        key = idempotency_key(run_id, step, attempt)
        output = await act(runtime.context, run_id, step, attempt, _decision(state), key)
        return {"output": output}

    async def verify_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        run_id, step, attempt = state["run_id"], state["step"], state["attempt"]
        decision, output = _decision(state), state["output"] or {}
        verified = verify(runtime.context, run_id, step, attempt, decision, output)
        settled = settle(
            scenario.verify, step, attempt, decision, output, state["verdicts"], verified
        )
        move, record = settled.move, settled.record
        if record is None:  # retry the act or re-plan
            return {"verdicts": list(settled.verdicts), "attempt": attempt + 1, "move": move}
        update: dict[str, Any] = {
            "history": [record.to_dict()],
            "move": move,
            "step": step + 1,
            "attempt": 1,
            "verdicts": [],
            "decision": None,
            "output": None,
        }
        if move == "abort":
            update["status"] = "aborted"
        elif step == last_step and not (approval is not None and approval.after_step == step):
            update |= finished(state, [*(h["output"] for h in state["history"]), output])
        return update

    async def approval_node(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        committed = state["history"][-1]
        raw = interrupt({"run_id": state["run_id"], "after_step": committed["index"]})
        answer = ApprovalAnswer(**raw)
        recorder = runtime.context.recorder
        recorder.write(
            PhaseRow(
                recorder.backend,
                state["run_id"],
                int(committed["index"]),
                int(committed["attempts"]),
                "approval",
                recorder.worker,
                start=answer.requested_at,
                end=time.time(),
                outcome="ok" if answer.decision == "approved" else "fail",
            )
        )
        if answer.decision == "expired":
            return {"status": "expired"}
        if committed["index"] == last_step:
            return finished(state, [h["output"] for h in state["history"]])
        return {}

    def after_verify(state: AgentState) -> str:
        if state["move"] == "retry_act":
            return "act"
        if state["move"] == "replan":
            return "reason"
        if state["status"] != "running":
            return END
        if approval is not None and approval.after_step == state["step"] - 1:
            return "approval"
        return "reason"

    def after_approval(state: AgentState) -> str:
        return END if state["status"] != "running" else "reason"

    builder: StateGraph[AgentState, AgentContext, AgentState, AgentState] = StateGraph(
        AgentState, context_schema=AgentContext
    )
    builder.add_node("reason", reason_node)
    builder.add_node("act", act_node)
    builder.add_node("verify", verify_node)
    builder.add_edge(START, "reason")
    builder.add_edge("reason", "act")
    builder.add_edge("act", "verify")
    if approval is not None:
        builder.add_node("approval", approval_node)
        builder.add_conditional_edges("verify", after_verify, ["act", "reason", "approval", END])
        builder.add_conditional_edges("approval", after_approval, ["reason", END])
    else:
        builder.add_conditional_edges("verify", after_verify, ["act", "reason", END])
    return builder


def compile_graph(scenario: Scenario, saver: BaseCheckpointSaver[Any]) -> AgentGraph:
    return build_graph(scenario).compile(checkpointer=saver)


@dataclass(frozen=True)
class ThreadView:
    """A thread as the checkpointer has it: the latest checkpoint's values, whether it
    waits on an interrupt, and the store's own figures (checkpoints, bytes)."""

    values: dict[str, Any] | None
    interrupted: bool
    checkpoints: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreadView:
        return cls(
            values=data["values"],
            interrupted=bool(data["interrupted"]),
            checkpoints=int(data["checkpoints"]),
            bytes=int(data["bytes"]),
        )

    def persisted(self, run_id: str) -> PersistedRun:
        """The RunState these values describe; None when nothing was checkpointed."""
        values = self.values
        if not values:
            return PersistedRun(run_id, None, self.bytes, self.checkpoints)
        status = str(values.get("status", "running"))
        if self.interrupted and status not in TERMINAL_STATUSES:
            status = "waiting_approval"
        state = RunState.from_dict(
            {
                "run_id": values.get("run_id", run_id),
                "status": status,
                "steps": values.get("history", []),
                "final_answer": values.get("final_answer"),
            }
        )
        return PersistedRun(run_id, state, self.bytes, self.checkpoints)


async def read_thread(
    graph: AgentGraph, scenario: Scenario, thread_id: str, checkpoints: int, size: int
) -> ThreadView:
    """The latest checkpoint through the checkpointer (`aget_state`)."""
    snapshot = await graph.aget_state(thread_config(thread_id, scenario))
    values = dict(snapshot.values) if snapshot.values else None
    return ThreadView(values, bool(snapshot.interrupts), checkpoints, size)
