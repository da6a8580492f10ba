"""Restate's own durability boundaries, marked in the agent workflow's code.

What Restate makes durable is the invocation's journal: a `ctx.run` result once the
server acknowledged its entry (the SDK hands the result to the handler only then), a
state write as a journal entry the server applies in order. A killed worker's
invocation is retried by the server, and the new attempt replays the journal: a
`ctx.run` whose entry is there is not executed again, one whose entry is not is.

- `restate.after_run_effect`: the act's `ctx.run` action returned (the tool applied the
  effect, the ledger recorded it); its result was never proposed to the server, so the
  retry runs the act again, with the same idempotency key (at-least-once).
- `restate.after_reason_effect`: the reason's `ctx.run` action returned (the LLM
  answered); not proposed: the retry asks the LLM again (the same answer, a wasted call).
- `restate.after_state_write`: every result of the step is acknowledged in the journal
  and the step's K/V state write was handed to the SDK, not acknowledged; the retry
  replays the journal and re-derives it, executing no phase again.
"""

from __future__ import annotations

from harness.failpoints import BackendCrashPoint

__all__ = ["AFTER_REASON_EFFECT", "AFTER_RUN_EFFECT", "AFTER_STATE_WRITE", "CRASH_POINTS"]

AFTER_RUN_EFFECT = "restate.after_run_effect"
AFTER_REASON_EFFECT = "restate.after_reason_effect"
AFTER_STATE_WRITE = "restate.after_state_write"

CRASH_POINTS = (
    BackendCrashPoint(
        AFTER_RUN_EFFECT,
        "the act's ctx.run action returned (effect applied, in the ledger), its result is "
        "not in the journal: the server's retry runs the act again, same key",
    ),
    BackendCrashPoint(
        AFTER_REASON_EFFECT,
        "the reason's ctx.run action returned (the LLM answered), its result is not in the "
        "journal: the retry calls the LLM again and gets the same answer",
    ),
    BackendCrashPoint(
        AFTER_STATE_WRITE,
        "the step's results are acknowledged in the journal, its K/V state write is not: "
        "the retry replays the journal, re-executing no phase",
    ),
)
