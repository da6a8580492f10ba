"""Load shapes as data: how many Locust users should run at each moment of a test.

A shape is frozen, validated data (from the scenario's `load.shape` or the command
line); `tick` turns it into Locust's `(users, spawn_rate)` answer, or None once the
shape has ended. The Locust `LoadTestShape` adapter lives in the locustfile, so this
module stays importable without Locust (and its gevent patching).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "SHAPE_ENV",
    "SHAPE_KINDS",
    "ConstantShape",
    "LoadShape",
    "RampShape",
    "SpikeShape",
    "StepShape",
    "parse_shape",
    "shape_duration",
    "tick",
]

SHAPE_ENV = "DURABENCH_LOAD_SHAPE"  # how the harness hands a shape to Locust's processes
DEFAULT_SPAWN_RATE = 10.0  # users started (or stopped) per second when the count changes


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spawn_rate: float = Field(DEFAULT_SPAWN_RATE, gt=0)


class ConstantShape(_Shape):
    """`users` users for `duration_s` seconds (null: until the run budget is spent)."""

    kind: Literal["constant"] = "constant"
    users: int = Field(ge=1, le=100_000, strict=True)
    duration_s: float | None = Field(None, gt=0)


class RampShape(_Shape):
    """From `from_users` to `to_users` linearly over `duration_s`, then stop."""

    kind: Literal["ramp"]
    from_users: int = Field(1, ge=0, le=100_000, strict=True)
    to_users: int = Field(ge=1, le=100_000, strict=True)
    duration_s: float = Field(gt=0)


class StepShape(_Shape):
    """`start_users`, plus `step_users` more every `step_s` seconds, for `steps` steps."""

    kind: Literal["step"]
    start_users: int = Field(1, ge=1, le=100_000, strict=True)
    step_users: int = Field(ge=1, le=100_000, strict=True)
    step_s: float = Field(gt=0)
    steps: int = Field(ge=1, le=1000, strict=True)


class SpikeShape(_Shape):
    """`users` users, jumping to `spike_users` at `spike_at_s` for `spike_s` seconds;
    the whole test lasts `duration_s`."""

    kind: Literal["spike"]
    users: int = Field(ge=1, le=100_000, strict=True)
    spike_users: int = Field(ge=1, le=100_000, strict=True)
    spike_at_s: float = Field(ge=0)
    spike_s: float = Field(gt=0)
    duration_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _inside(self) -> SpikeShape:
        if self.spike_at_s + self.spike_s > self.duration_s:
            raise ValueError("the spike (spike_at_s + spike_s) must end within duration_s")
        return self


LoadShape = Annotated[
    ConstantShape | RampShape | StepShape | SpikeShape, Field(discriminator="kind")
]
SHAPE_KINDS = ("constant", "ramp", "step", "spike")


def parse_shape(data: object) -> ConstantShape | RampShape | StepShape | SpikeShape:
    """A shape from loaded JSON/YAML data (raises pydantic's ValidationError)."""
    from pydantic import TypeAdapter

    shape: ConstantShape | RampShape | StepShape | SpikeShape = TypeAdapter(
        LoadShape
    ).validate_python(data)
    return shape


def shape_duration(shape: ConstantShape | RampShape | StepShape | SpikeShape) -> float | None:
    """How long the shape lasts (None: until the run budget is spent)."""
    if isinstance(shape, StepShape):
        return shape.step_s * shape.steps
    return shape.duration_s


def tick(
    shape: ConstantShape | RampShape | StepShape | SpikeShape, t: float
) -> tuple[int, float] | None:
    """Users wanted `t` seconds into the test, with the spawn rate; None once it ended."""
    end = shape_duration(shape)
    if end is not None and t >= end:
        return None
    if isinstance(shape, ConstantShape):
        users = shape.users
    elif isinstance(shape, RampShape):
        users = round(shape.from_users + (shape.to_users - shape.from_users) * t / shape.duration_s)
    elif isinstance(shape, StepShape):
        users = shape.start_users + shape.step_users * math.floor(t / shape.step_s)
    else:
        spiking = shape.spike_at_s <= t < shape.spike_at_s + shape.spike_s
        users = shape.spike_users if spiking else shape.users
    return max(users, 0), shape.spawn_rate
