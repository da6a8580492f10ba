"""The Reason-Act-Verify workload as pure functions of (seed, run, step, attempt).

The simulated LLM, the tool service and the oracle all call these functions, so
what the services answer and what the oracle predicts can never drift apart.
Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from typing import Any, Literal

from harness.scenario import (
    ConstantLatency,
    ExponentialLatency,
    LatencyModel,
    LognormalLatency,
    Scenario,
    UniformLatency,
    VerifyPolicy,
)

__all__ = [
    "Decision",
    "Move",
    "decide",
    "digest",
    "final_answer",
    "idempotency_key",
    "next_move",
    "sample_latency_ms",
    "seeded_rng",
    "task_of",
    "tool_output",
    "verify_output",
]

Move = Literal["commit", "retry_act", "replan", "abort"]

_WORDS = (
    "check",
    "supplier",
    "budget",
    "quote",
    "ledger",
    "stock",
    "order",
    "confirm",
    "risk",
    "policy",
    "compare",
    "cheapest",
    "deadline",
    "approve",
    "reserve",
    "notify",
    "invoice",
)


def seeded_rng(seed: int, *parts: object) -> random.Random:
    """A random generator that depends only on its arguments, on every machine."""
    key = json.dumps([seed, *parts], separators=(",", ":")).encode()
    return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "big"))


def digest(value: Any) -> str:
    """A short stable digest of JSON-able data (key order does not matter)."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


TRIAL_SEPARATOR = "~"


def task_of(run_id: str) -> str:
    """The task a run performs: trials of one task (`run-000001~t2`) get the same answers,
    so pass^k asks whether a backend gets the *same* work right k times in a row."""
    return run_id.split(TRIAL_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class Decision:
    """What the reason phase chose: a tool, its arguments and the thought trace."""

    tool: str
    arguments: dict[str, Any]
    thought: str


def _choose_tool(scenario: Scenario, rng: random.Random, step: int) -> str:
    if scenario.tool_chain is not None:
        return scenario.tool_chain[step % len(scenario.tool_chain)]
    assert scenario.tool_mix is not None
    names = sorted(scenario.tool_mix)
    return rng.choices(names, weights=[scenario.tool_mix[n] for n in names])[0]


def _thought(rng: random.Random, tool: str, step: int, size: int) -> str:
    head = f"step {step}: call {tool} to "
    words: list[str] = [head]
    length = len(head)
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def decide(scenario: Scenario, run_id: str, step: int, attempt: int, replay: int = 0) -> Decision:
    """The simulated LLM's answer for a reason call (attempt > 1 only after a re-plan).
    `replay` > 0 is the n-th repetition of the same call, answered differently when the
    scenario asks for divergent replays (a real model at temperature > 0)."""
    parts: tuple[object, ...] = (task_of(run_id), step, attempt) + ((replay,) if replay else ())
    rng = seeded_rng(scenario.seed, "reason", *parts)
    tool = _choose_tool(scenario, rng, step)
    arguments = {
        "item": f"sku-{rng.randrange(10_000):04d}",
        "quantity": rng.randint(1, 50),
        "amount_cents": rng.randrange(100, 1_000_000),
        "counterparty": f"party-{rng.randrange(100):02d}",
    }
    return Decision(tool, arguments, _thought(rng, tool, step, scenario.thought_bytes))


def tool_output(
    scenario: Scenario, run_id: str, step: int, attempt: int, tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """What the tool service answers (and records) for one execution."""
    rng = seeded_rng(scenario.seed, "act", task_of(run_id), step, attempt)
    rejected = rng.random() < scenario.verify.failure_probability
    return {
        "status": "rejected" if rejected else "ok",
        "tool": tool,
        "request_digest": digest(arguments),
        "ref": f"{tool[:3]}-{rng.getrandbits(40):010x}",
        "amount_cents": arguments.get("amount_cents", 0),
    }


def verify_output(decision: Decision, output: dict[str, Any]) -> bool:
    """The deterministic verify check: the tool accepted exactly what was asked."""
    return (
        output.get("status") == "ok"
        and output.get("tool") == decision.tool
        and output.get("request_digest") == digest(decision.arguments)
    )


def next_move(policy: VerifyPolicy, verified: bool, attempt: int) -> Move:
    """The step policy: what follows a verify verdict on attempt `attempt` (1-based)."""
    if verified:
        return "commit"
    if attempt >= policy.max_attempts:
        return "abort"
    return policy.on_failure


def idempotency_key(run_id: str, step: int, attempt: int) -> str:
    """The stable key a durable backend passes to the act phase."""
    return f"{run_id}/{step}/{attempt}"


def final_answer(run_id: str, outputs: list[dict[str, Any]]) -> str:
    """The run's final answer: a digest of every accepted tool output, in order."""
    return f"{run_id} done: {len(outputs)} steps, outputs {digest(outputs)}"


def sample_latency_ms(model: LatencyModel, rng: random.Random) -> float:
    """One latency draw from a scenario latency model."""
    if isinstance(model, ConstantLatency):
        return model.ms
    if isinstance(model, UniformLatency):
        return rng.uniform(model.low_ms, model.high_ms)
    if isinstance(model, ExponentialLatency):
        value = rng.expovariate(1.0 / model.mean_ms)
        return min(value, model.max_ms) if model.max_ms else value
    if isinstance(model, LognormalLatency):
        value = model.median_ms * math.exp(rng.gauss(0.0, model.sigma))
        return min(value, model.max_ms) if model.max_ms else value
    raise TypeError(f"unknown latency model {model!r}")
