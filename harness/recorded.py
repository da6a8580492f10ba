"""Decisions of a real model, as the recording gateway recorded them.

A real model's answers are not a function of the seed, so the oracle cannot compute
them; it reads them instead. The expected decision of `(run, step, attempt)` is the
*first* answer the gateway recorded for it with status 200 (harness/services/gateway.py),
unless nothing was ever done with it and a later answer was acted on (see
`RecordedDecisions.from_calls`). Whatever a backend does after that (re-run the reason
call after a crash, replay it) is judged against that answer: a model that answers a
replayed request differently shows up as a state that differs from the oracle's
(`state_match`), or as a kept decision that is not the applied one (`decisions_agree`).

`decision_of` is also how the reason phase reads an answer (harness/agent.py), so the
phase and the oracle can never read one answer two ways.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import DurabenchError
from harness.scenario import Scenario
from harness.workload import Decision, digest

__all__ = ["InvalidAnswer", "InvalidDecision", "RecordedDecisions", "decision_of"]


class InvalidAnswer(DurabenchError):
    """A chat-completion answer that is not one call of one of the scenario's tools."""


@dataclass(frozen=True)
class InvalidDecision:
    """The first recorded answer of a (step, attempt), and why it is no valid tool call."""

    step: int
    attempt: int
    reason: str

    def describe(self) -> str:
        return f"step {self.step} attempt {self.attempt}: {self.reason}"


def decision_of(scenario: Scenario, answer: Any) -> Decision:
    """The tool, arguments and thought of a chat-completion answer; InvalidAnswer (saying
    why) when it is not exactly what a reason call asks for: a call of a tool the
    scenario has, with a JSON object of arguments."""
    try:
        message = answer["choices"][0]["message"]
        calls = message.get("tool_calls") or []
    except (KeyError, IndexError, TypeError, AttributeError):
        raise InvalidAnswer("not a chat completion with a message") from None
    if not calls:
        content = str(message.get("content") or "")[:80]
        raise InvalidAnswer(f"no tool call (the model answered text: {content!r})")
    try:
        function = calls[0]["function"]
        name, raw = function["name"], function.get("arguments") or "{}"
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidAnswer(f"a tool call without readable arguments ({exc})") from None
    if name not in scenario.tools:
        raise InvalidAnswer(f"a call of {name!r}, not one of the scenario's tools")
    if not isinstance(arguments, dict):
        raise InvalidAnswer(f"arguments of {name!r} are not a JSON object")
    return Decision(str(name), arguments, str(message.get("content") or ""))


Acted = tuple[str, int, int, str, str]  # run, step, attempt, tool, digest of the arguments


@dataclass
class RecordedDecisions:
    """(run, step, attempt) -> the expected decision read from the recorded answers (or
    why the answer is not one); and per run, how many replayed answers differed."""

    first: dict[tuple[str, int, int], Decision | InvalidDecision] = field(default_factory=dict)
    tokens: dict[tuple[str, int, int], int] = field(default_factory=dict)  # of the first
    differing_replays: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_calls(
        cls,
        scenario: Scenario,
        calls: Iterable[dict[str, Any]],
        acted_on: Iterable[Acted] = (),
    ) -> RecordedDecisions:
        """From the call log's rows (in log order: `seq`, else time), answered ones only.

        The expected decision of a call is its first answer, with one exception: an
        answer nothing was done with (no applied tool effect carries its tool and
        arguments: the backend lost it before acting, and asked again) yields to the
        first later answer of the same call that an applied effect does carry. Asking
        again for what was never acted on is lost work, not lost state; acting on one
        answer and keeping another is the divergence the verdicts catch. `acted_on`:
        the ledger's applied effects, as (run, step, attempt, tool, digest(arguments))."""
        found = cls()
        acted = set(acted_on)
        answers: dict[tuple[str, int, int], list[tuple[Decision | InvalidDecision, int]]] = {}
        ordered = sorted(
            (c for c in calls if _answered(c)),
            key=lambda c: (float(c.get("seq") or 0), float(c.get("time") or 0)),
        )
        for call in ordered:
            key = (str(call["run_id"]), int(call["step"]), int(call["attempt"]))
            tokens = int(call.get("tokens_in") or 0) + int(call.get("tokens_out") or 0)
            answers.setdefault(key, []).append((_read(scenario, key, call.get("response")), tokens))
        for key, given in answers.items():
            chosen = next(
                (
                    (d, t)
                    for d, t in given
                    if isinstance(d, Decision) and (*key, d.tool, digest(d.arguments)) in acted
                ),
                given[0],
            )
            found.first[key], found.tokens[key] = chosen
            differing = sum(1 for d, _ in given[1:] if d != given[0][0])
            if differing:
                found.differing_replays[key[0]] = found.differing_replays.get(key[0], 0) + differing
        return found

    def decision(self, run_id: str, step: int, attempt: int) -> Decision | InvalidDecision | None:
        """The expected decision; None when the model was never asked (or never answered)."""
        return self.first.get((run_id, step, attempt))

    def tokens_of(self, run_id: str, asked: Iterable[tuple[int, int]]) -> int:
        """The tokens of the expected answers of these reason calls: a perfect backend's."""
        return sum(self.tokens.get((run_id, s, a), 0) for s, a in asked)


def _answered(call: dict[str, Any]) -> bool:
    if call.get("status") != 200 or call.get("response") is None:
        return False
    return all(_present(call.get(k)) for k in ("run_id", "step", "attempt"))


def _present(value: Any) -> bool:
    return value is not None and value == value  # NaN from a parquet column is absent


def _read(
    scenario: Scenario, key: tuple[str, int, int], response: Any
) -> Decision | InvalidDecision:
    try:
        answer = json.loads(response) if isinstance(response, str) else response
        return decision_of(scenario, answer)
    except (InvalidAnswer, json.JSONDecodeError) as exc:
        return InvalidDecision(key[1], key[2], str(exc))
