"""What a framework workflow on Temporal is started with and answers: one dataclass
in (the run and the scenario's shape, since workflow code reads no files), the run
state as a dict out (`harness.state.RunState.from_dict` reads it), the same as query."""

from __future__ import annotations

from dataclasses import dataclass

from harness.scenario import VerifyPolicy

__all__ = ["STATE_QUERY", "FrameworkInput"]

STATE_QUERY = "state"


@dataclass(frozen=True)
class FrameworkInput:
    run_id: str
    scenario_name: str
    steps: int
    on_failure: str
    max_attempts: int

    def policy(self) -> VerifyPolicy:
        return VerifyPolicy.model_validate(
            {"on_failure": self.on_failure, "max_attempts": self.max_attempts}
        )
