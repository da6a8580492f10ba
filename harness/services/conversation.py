"""Where an agent framework's conversation stands in the RAV workload, from the
conversation alone.

Frameworks send ordinary chat-completion requests (system prompt, the task, the
assistant's tool calls, the tool results) and carry no durabench marker. So the task
prompt names the run (`[durabench-run RUN]`), each tool call carries the plan
position it executes (`step`, `attempt` among its arguments, as a planning model
states which step of its plan a call is for), and each tool result carries the
verify verdict the framework-side check reached (`durabench-verdict {...}`, in the
tool's return value or in the retry prompt a failed check sends back). From those,
`infer_position` tells the simulated LLM what to answer and `fold_conversation`
rebuilds the persisted run state a framework backend reports; both are pure
functions of the messages, so a replayed or resumed request gets the same answer.

Messages are in the OpenAI chat shape (`role`, `content`, `tool_calls`,
`tool_call_id`); each framework backend converts what its framework persisted to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.scenario import Scenario, VerifyPolicy
from harness.state import RunState, RunStatus, StepRecord
from harness.steppolicy import settle
from harness.workload import Decision, Move, final_answer

__all__ = [
    "PLAN_FIELDS",
    "RUN_TAG",
    "VERDICT_TAG",
    "Call",
    "Conversation",
    "Position",
    "Verdict",
    "business_arguments",
    "closing_text",
    "fold_conversation",
    "infer_position",
    "message_text",
    "parse_verdicts",
    "read_conversation",
    "run_id_of",
    "task_prompt",
    "tool_parameters",
    "verdict_text",
]

RUN_TAG = "durabench-run"
VERDICT_TAG = "durabench-verdict"
PLAN_FIELDS = ("step", "attempt")  # the plan position a tool call carries
_RUN_RE = re.compile(r"\[" + RUN_TAG + r" ([^\]\s]+)\]")
ABORTED_PREFIX = "aborted:"

PositionKind = Literal["reason", "retry_act", "final", "aborted"]


def task_prompt(scenario_name: str, steps: int, run_id: str) -> str:
    """The user message that starts a framework agent's run."""
    return (
        f"[{RUN_TAG} {run_id}] {scenario_name}: carry out the {steps}-step task, "
        "one tool call per step; state the step and attempt each call is for; "
        "finish with the summary."
    )


def tool_parameters() -> dict[str, Any]:
    """The JSON schema of every workload tool's arguments, plan position included."""
    return {
        "type": "object",
        "properties": {
            "item": {"type": "string"},
            "quantity": {"type": "integer"},
            "amount_cents": {"type": "integer"},
            "counterparty": {"type": "string"},
            "step": {"type": "integer"},
            "attempt": {"type": "integer"},
        },
        "required": ["item", "quantity", "amount_cents", "counterparty", "step", "attempt"],
        "additionalProperties": False,
    }


def business_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call's arguments without its plan position: what the tool service gets."""
    return {k: v for k, v in arguments.items() if k not in PLAN_FIELDS}


@dataclass(frozen=True)
class Verdict:
    """What the framework-side verify concluded for one act: the move the step policy
    takes next and the tool output it judged."""

    step: int
    attempt: int
    verified: bool
    move: Move
    output: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "attempt": self.attempt,
            "verified": self.verified,
            "move": self.move,
            "output": self.output,
        }


def verdict_text(verdict: Verdict) -> str:
    """The tool result (or retry prompt) text that carries a verdict."""
    return f"{VERDICT_TAG} {json.dumps(verdict.to_dict(), sort_keys=True, separators=(',', ':'))}"


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def parse_verdicts(text: str) -> list[Verdict]:
    """Every verdict in a text, in order, also where a framework wrapped the text in
    JSON of its own (`{"error": "durabench-verdict {...}"}`: the tag's JSON escaped)."""
    decoder = json.JSONDecoder()
    found: list[Verdict] = []
    escaped = False
    at = text.find(VERDICT_TAG)
    while at >= 0:
        begin = at + len(VERDICT_TAG)
        try:
            data, end = decoder.raw_decode(text, begin + 1)
            found.append(
                Verdict(
                    int(data["step"]),
                    int(data["attempt"]),
                    bool(data["verified"]),
                    data["move"],
                    dict(data["output"]),
                )
            )
        except (ValueError, KeyError, TypeError, IndexError):
            end, escaped = begin, True
        at = text.find(VERDICT_TAG, end)
    if found or not escaped:
        return found
    try:
        wrapped = json.loads(text)
    except ValueError:
        return found
    return [v for inner in _strings(wrapped) if inner != text for v in parse_verdicts(inner)]


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text, whether its content is a string or a list of parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                parts.append(str(part.get("text") or part.get("content") or ""))
        return "\n".join(parts)
    return str(content)


def run_id_of(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The run id the task prompt names (the first tagged user or system message)."""
    for message in messages:
        if message.get("role") in ("user", "system", "developer"):
            match = _RUN_RE.search(message_text(message))
            if match:
                return match.group(1)
    return None


@dataclass(frozen=True)
class Call:
    """One assistant tool call: the decision it carries and its plan position."""

    call_id: str
    decision: Decision
    step: int
    attempt: int


@dataclass(frozen=True)
class Conversation:
    """A conversation read as the workload: its tool calls and verdicts, in order."""

    run_id: str
    calls: tuple[Call, ...]
    verdicts: tuple[tuple[Verdict, Call | None], ...]  # each with the call it answers
    final_text: str | None = None  # the assistant's last answer when it called no tool


def _calls_of(message: Mapping[str, Any]) -> list[Call]:
    calls = []
    for raw in message.get("tool_calls") or []:
        function = raw.get("function") or {}
        arguments = function.get("arguments")
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments or {})
        except (ValueError, TypeError):
            args = {}
        try:
            step, attempt = int(args["step"]), int(args["attempt"])
        except (KeyError, TypeError, ValueError):
            step, attempt = -1, 0
        decision = Decision(
            str(function.get("name")), business_arguments(args), message_text(message)
        )
        calls.append(Call(str(raw.get("id") or ""), decision, step, attempt))
    return calls


def read_conversation(messages: Sequence[Mapping[str, Any]]) -> Conversation:
    """The calls and verdicts of a chat conversation (ValueError: no run tag)."""
    run_id = run_id_of(messages)
    if run_id is None:
        raise ValueError(f"no [{RUN_TAG} RUN] tag in any user message")
    calls: list[Call] = []
    by_id: dict[str, Call] = {}
    verdicts: list[tuple[Verdict, Call | None]] = []
    final_text: str | None = None
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            made = _calls_of(message)
            calls += made
            by_id.update({c.call_id: c for c in made if c.call_id})
            final_text = None if made else message_text(message)
        elif role in ("tool", "user", "function"):
            found = parse_verdicts(message_text(message))
            call = by_id.get(str(message.get("tool_call_id") or ""))
            for verdict in found:
                position = (verdict.step, verdict.attempt)
                answered = call or next(
                    (c for c in reversed(calls) if (c.step, c.attempt) == position), None
                )
                verdicts.append((verdict, answered))
    return Conversation(run_id, tuple(calls), tuple(verdicts), final_text)


@dataclass(frozen=True)
class Position:
    """What the next model answer is: a reason for (step, attempt), the repeat of the
    step's decision for a retried act, or the closing text (`final`, `aborted`)."""

    run_id: str
    step: int
    attempt: int
    kind: PositionKind
    reason_attempt: int = 1  # the attempt whose decision a retried act repeats
    outputs: tuple[dict[str, Any], ...] = field(default=())  # committed outputs, in order
    last: Verdict | None = None  # the verdict the conversation ends on


def infer_position(scenario: Scenario, messages: Sequence[Mapping[str, Any]]) -> Position:
    """Where the conversation stands: from the last verdict and the step's earlier ones."""
    conv = read_conversation(messages)
    outputs = tuple(v.output for v, _ in conv.verdicts if v.move == "commit")
    if not conv.verdicts:
        return Position(conv.run_id, 0, 1, "reason")
    last = conv.verdicts[-1][0]
    run_id = conv.run_id
    if last.move == "commit":
        kind: PositionKind = "final" if last.step + 1 >= scenario.steps else "reason"
        return Position(run_id, last.step + 1, 1, kind, outputs=outputs, last=last)
    if last.move == "abort":
        return Position(run_id, last.step, last.attempt, "aborted", outputs=outputs, last=last)
    if last.move == "replan":
        return Position(run_id, last.step, last.attempt + 1, "reason", outputs=outputs, last=last)
    reason_attempt = 1  # retry_act: the decision of the step's last reason stays
    for verdict, _ in conv.verdicts:
        if verdict.step == last.step and verdict.move == "replan":
            reason_attempt = verdict.attempt + 1
    return Position(run_id, last.step, last.attempt + 1, "retry_act", reason_attempt, outputs, last)


def closing_text(position: Position) -> str:
    """The model's last answer: the final answer, or why the run stopped."""
    if position.kind == "aborted":
        return f"{ABORTED_PREFIX} step {position.step} failed verify {position.attempt} times"
    return final_answer(position.run_id, list(position.outputs))


def fold_conversation(
    policy: VerifyPolicy,
    messages: Iterable[Mapping[str, Any]],
    *,
    finished: bool,
    output: str | None = None,
) -> RunState:
    """The run state a framework persisted, from its conversation: each step closed by a
    verdict the step policy (`settle`) commits or aborts, with the decision of the call
    it answered. `finished`: the framework's run returned (`output` is its answer)."""
    conv = read_conversation(list(messages))
    steps: list[StepRecord] = []
    earlier: dict[int, list[bool]] = {}
    status: RunStatus = "running"
    seen: set[tuple[int, int]] = set()
    for verdict, call in conv.verdicts:
        key = (verdict.step, verdict.attempt)
        if call is None or key in seen or any(s.index == verdict.step for s in steps):
            continue
        seen.add(key)
        settled = settle(
            policy,
            verdict.step,
            verdict.attempt,
            call.decision,
            verdict.output,
            earlier.get(verdict.step, []),
            verdict.verified,
        )
        earlier.setdefault(verdict.step, []).append(verdict.verified)
        if settled.record is not None:
            steps.append(settled.record)
            if settled.move == "abort":
                status = "aborted"
    answer = None
    if finished and status != "aborted":
        status = "completed"
        answer = output if output is not None else conv.final_text
    return RunState(conv.run_id, status, tuple(steps), answer)
