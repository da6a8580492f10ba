"""`pydantic-ai:dbos`: the Pydantic AI agent made durable with its DBOS integration (the
`DBOSDurability` capability) on the DBOS backend's setup (`backends.dbos`: the system
database in a per-run schema on the embedded Postgres or `--pg-dsn`, the DBOS queue the
worker processes share, an executor id per worker slot, recovery by the restarted
executor), with the Pydantic AI workflow (dbos_workflow.py) in its workers.

`inspect` reads what DBOS persisted, never a worker's memory: the workflow's status and
its recorded step outputs, in order, which are the conversation (each model step's
output the model's answer, each tool step's output the verdict it returned), folded by
the workload's conversation reader; the workflow's own result, once it has one, is
compared against it (`extra.output_agrees`). A step's `commit` row is written when the
next model step's request carries its committing verdict: the tool step's output was
recorded before that step began.
"""

from __future__ import annotations

from typing import Any

from backends.base import BackendEnv, FloorProgram
from backends.dbos.backend import DbosBackend
from backends.dbos.crashpoints import AFTER_DEQUEUE, BEFORE_ACT_COMMIT, BEFORE_ACT_OUTPUT
from backends.dbos.crashpoints import CRASH_POINTS as DBOS_POINTS
from backends.framework.versions import package_versions
from backends.pydantic_ai.dbos_names import MODEL_STEP_MARK, TOOL_STEP, WORKFLOW_NAME, verdict_of
from harness.errors import BackendError
from harness.failpoints import BackendCrashPoint
from harness.scenario import VerifyPolicy
from harness.services.conversation import fold_conversation, task_prompt, verdict_text
from harness.state import RunState

__all__ = ["PydanticAIDbosBackend"]

# DBOS's boundaries this workflow reaches (its act and verify are one step, so the
# hand-written workflow's verify and after-output points are not among them)
POINTS = (AFTER_DEQUEUE, BEFORE_ACT_OUTPUT, BEFORE_ACT_COMMIT)


class PydanticAIDbosBackend(DbosBackend):
    """Options as for `dbos` (`workers`, `slots`, `poll_s`)."""

    name = "pydantic-ai:dbos"
    worker_module = "backends.pydantic_ai.dbos_worker"
    workflow_name = WORKFLOW_NAME
    packages = ("pydantic-ai-slim", "pydantic-graph", "dbos", "openai")
    stage = "stable (Pydantic AI's DBOS integration; DBOSAgent is deprecated)"

    def crash_points(self) -> list[BackendCrashPoint]:
        return [p for p in DBOS_POINTS if p.name in POINTS]

    def spec(self, run_id: str) -> dict[str, Any]:
        return {**super().spec(run_id), "scenario_name": self.env.scenario.name}

    async def setup(self, env: BackendEnv) -> None:
        if env.scenario.approval is not None:
            raise BackendError(
                f"{self.name}: the scenario asks for a human approval, which this framework "
                "backend does not model; run it on dbos, temporal, pgstore or langgraph"
            )
        await super().setup(env)

    async def approve(self, run_id: str) -> None:
        raise BackendError(f"{self.name}: no human-approval step in this framework backend")

    def state_from_steps(
        self, run_id: str, steps: list[Any], dbos_status: str
    ) -> tuple[RunState, list[str]]:
        """The conversation DBOS recorded, folded: the task prompt (the workflow's input),
        then each recorded model answer and tool verdict in the order they ran."""
        from backends.pydantic_ai.agent import chat_messages

        spec = self.spec(run_id)
        errors: list[str] = []
        chat: list[dict[str, Any]] = [
            {"role": "user", "content": task_prompt(spec["scenario_name"], spec["steps"], run_id)}
        ]
        for info in sorted(steps, key=lambda s: int(s["function_id"])):
            name, output = str(info["function_name"]), info["output"]
            if info["error"] is not None:
                errors.append(f"{name}: {info['error']}"[:500])
            elif MODEL_STEP_MARK in name and output is not None:
                chat += chat_messages([output])
            elif name == TOOL_STEP and isinstance(output, dict):
                text = verdict_text(verdict_of(output))
                chat.append({"role": "tool", "tool_call_id": output["call_id"], "content": text})
        policy = VerifyPolicy.model_validate(
            {"on_failure": spec["on_failure"], "max_attempts": spec["max_attempts"]}
        )
        finished = dbos_status == "SUCCESS"
        if not finished and len(chat) == 1:
            return RunState(run_id, "pending"), errors  # no model answer recorded yet
        return fold_conversation(policy, chat, finished=finished), errors

    def floor_programs(self, env: BackendEnv) -> list[FloorProgram]:
        """HasFloor: the same agent as a plain Pydantic AI on DBOS program (its own floor),
        then the hand-written DBOS floor, on the same store."""
        from backends.pydantic_ai.dbos_floor import floor_programs

        return floor_programs(self, env)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "workflow": self.workflow_name,
            "framework_versions": package_versions(*self.packages),
            "release_stage": self.stage,
            "phases": "model requests: the integration's DBOS steps; act and verify: one "
            "DBOS step the tool awaits (ModelRetry raised in workflow code); commit: the "
            "tool step's output recorded before the next model step",
        }
