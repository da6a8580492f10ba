"""The Workflow's own durability boundaries (marked in src/agent.js).

The runtime persists a `step.do`'s output after its callback returned, before the
Workflow goes on; the shared points (`after_reason`, `after_act`, `after_verify`,
`before_commit`) sit inside the callbacks, so the runtime dies before it persisted the
phase's output; `after_commit` and `after_act_recorded` sit after verify's and act's
`step.do` returned (the output is persisted). The runtime's own points:

- `cloudflare.after_start`: the engine began the instance's `run()`, nothing performed.
- `cloudflare.after_act_output`: the runtime persisted the act's output (the tool
  applied the effect), verify has not run.

At each one the runtime is killed (runtime.py) and the supervisor starts it again on
the same persist directory; what the runtime does then is the measurement.
"""

from __future__ import annotations

from harness.failpoints import BackendCrashPoint

__all__ = ["AFTER_ACT_OUTPUT", "AFTER_START", "CRASH_POINTS"]

AFTER_START = "cloudflare.after_start"
AFTER_ACT_OUTPUT = "cloudflare.after_act_output"

CRASH_POINTS = (
    BackendCrashPoint(
        AFTER_START,
        "the engine began the instance's run(), nothing performed: the restarted runtime "
        "has the instance stored, running, with no step",
        per_step=False,
    ),
    BackendCrashPoint(
        AFTER_ACT_OUTPUT,
        "the act's output is persisted (the effect applied), verify has not run: a replay "
        "returns the persisted output, the tool is not called again",
    ),
)
