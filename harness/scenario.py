"""Scenarios: YAML files parsed into frozen, fully validated models.

A scenario is validated completely before anything starts; every error names the
file, the field path and the reason, so a typo never costs a half-finished run.
"""

from __future__ import annotations

import math
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import ScenarioError
from harness.faults import Fault
from harness.load.shapes import LoadShape

__all__ = [
    "Approval",
    "ConstantLatency",
    "Expectations",
    "ExponentialLatency",
    "LatencyModel",
    "LlmModel",
    "Load",
    "LognormalLatency",
    "Scenario",
    "ToolTransport",
    "UniformLatency",
    "VerifyPolicy",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
    "resolve_scenario_path",
]

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
MAX_SCENARIO_BYTES = 1024 * 1024  # a scenario is a page of YAML; more is a mistake

ToolName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ConstantLatency(_Frozen):
    """Every call takes exactly `ms` milliseconds (0 measures pure overhead)."""

    distribution: Literal["constant"] = "constant"
    ms: float = Field(0.0, ge=0)


class UniformLatency(_Frozen):
    distribution: Literal["uniform"]
    low_ms: float = Field(ge=0)
    high_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLatency:
        if self.high_ms < self.low_ms:
            raise ValueError("high_ms must be >= low_ms")
        return self


class ExponentialLatency(_Frozen):
    distribution: Literal["exponential"]
    mean_ms: float = Field(gt=0)
    max_ms: float | None = Field(None, gt=0)


class LognormalLatency(_Frozen):
    """Heavy-tailed, like real LLM and tool latencies: median and log-space sigma."""

    distribution: Literal["lognormal"]
    median_ms: float = Field(gt=0)
    sigma: float = Field(0.5, ge=0, le=4)
    max_ms: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _cap_above_median(self) -> LognormalLatency:
        if self.max_ms is not None and self.max_ms < self.median_ms:
            raise ValueError("max_ms must be >= median_ms")
        return self


LatencyModel = Annotated[
    ConstantLatency | UniformLatency | ExponentialLatency | LognormalLatency,
    Field(discriminator="distribution"),
]


class LlmModel(_Frozen):
    """The reason phase's provider. `base_url: null` starts the simulated provider."""

    base_url: str | None = None
    model: str = "durabench-sim-1"
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="environment variable holding the key; never stored"
    )
    latency: LatencyModel = ConstantLatency()
    divergent_replays: bool = Field(
        False, description="answer a repeated reason call differently (temperature > 0)"
    )
    tokens_in: int = Field(400, ge=1, strict=True)
    tokens_out: int = Field(120, ge=1, strict=True)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (or null for the simulator)")
        return value


class ToolTransport(_Frozen):
    """How the act phase reaches the tool service: plain HTTP (`POST /tools/{name}`) or
    the Model Context Protocol over streamable HTTP (`/mcp`, one client session per
    worker process). `mcp_responses` is how the MCP server answers a call: an SSE
    stream (the SDK's default) or one JSON body."""

    transport: Literal["http", "mcp"] = "http"
    mcp_responses: Literal["sse", "json"] = "sse"


class VerifyPolicy(_Frozen):
    """What verify checks and what a failed verify leads to."""

    failure_probability: float = Field(0.0, ge=0, lt=1)
    on_failure: Literal["retry_act", "replan"] = "retry_act"
    max_attempts: int = Field(3, ge=1, le=100, strict=True)


class Load(_Frozen):
    """Closed loop (`concurrency` runs in flight) or open loop (`arrival_rate` runs/s).
    `shape` is what `durabench load` drives with Locust (constant, ramp, step, spike)."""

    concurrency: int | None = Field(None, ge=1, le=100_000, strict=True)
    arrival_rate: float | None = Field(None, gt=0)
    shape: LoadShape | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Load:
        if (self.concurrency is None) == (self.arrival_rate is None):
            raise ValueError(
                "set exactly one of concurrency (closed loop) or arrival_rate (open loop)"
            )
        return self


class Approval(_Frozen):
    """A human-approval wait after a step. `delay_s: null` means nobody ever approves
    (the zombie case): the run must expire after `ttl_s`."""

    after_step: int = Field(ge=0, strict=True)
    delay_s: float | None = Field(0.1, ge=0)
    ttl_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _decidable(self) -> Approval:
        if self.delay_s is not None and self.delay_s * 2 > self.ttl_s:
            raise ValueError(
                "delay_s must be at most half of ttl_s, or null for never, so the expected "
                "outcome does not depend on scheduling noise"
            )
        return self


class Expectations(_Frozen):
    """What a run of this scenario must show, per backend, for `durabench suite` to pass.

    Keys are a backend name with options (`langgraph:sqlite?durability=sync`), without
    them (`langgraph:sqlite`, `pgstore`), or `*` for every other backend; the most
    specific key wins. Variants are distinct backends: `langgraph` does not cover
    `langgraph:memory`.
    """

    integrity: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)

    def min_integrity(self, backend: str) -> float | None:
        for key in (backend, backend.split("?")[0], "*"):
            if key in self.integrity:
                return self.integrity[key]
        return None


class Scenario(_Frozen):
    # `tools:` in YAML is the transport block; `Scenario.tools` stays the tool names
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, serialize_by_alias=True
    )

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    seed: int = Field(ge=0, strict=True)
    runs: int = Field(ge=1, le=1_000_000, strict=True)
    steps: int = Field(ge=1, le=100_000, strict=True)
    load: Load
    workers: int = Field(1, ge=1, le=256, strict=True)
    thought_bytes: int = Field(256, ge=0, le=16 * 1024 * 1024, strict=True)
    tool_chain: tuple[ToolName, ...] | None = None
    tool_mix: dict[ToolName, float] | None = None
    verify: VerifyPolicy = VerifyPolicy()
    llm: LlmModel = LlmModel()
    tool_latency: LatencyModel = ConstantLatency()
    tool_transport: ToolTransport = Field(ToolTransport(), alias="tools")
    approval: Approval | None = None
    deadline_s: float = Field(60.0, gt=0)
    faults: tuple[Fault, ...] = ()
    expect: Expectations = Expectations()

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if (self.tool_chain is None) == (self.tool_mix is None):
            raise ValueError("set exactly one of tool_chain (fixed order) or tool_mix (weighted)")
        if self.tool_chain is not None and not self.tool_chain:
            raise ValueError("tool_chain must name at least one tool")
        if self.tool_mix is not None:
            if not self.tool_mix:
                raise ValueError("tool_mix must name at least one tool")
            if any(w < 0 for w in self.tool_mix.values()) or sum(self.tool_mix.values()) <= 0:
                raise ValueError("tool_mix weights must be >= 0 with a positive sum")
        if self.approval is not None and self.approval.after_step >= self.steps:
            raise ValueError(
                f"approval.after_step ({self.approval.after_step}) must be < steps ({self.steps})"
            )
        return self

    @property
    def tools(self) -> tuple[str, ...]:
        """Every tool this scenario can call, in a stable order."""
        if self.tool_chain is not None:
            return tuple(dict.fromkeys(self.tool_chain))
        assert self.tool_mix is not None
        return tuple(sorted(self.tool_mix))


def _non_finite(value: Any, path: str) -> list[tuple[str, str]]:
    """Every float in the model tree that is inf or nan: a duration of `.inf` would hang
    a run, a rate of `.nan` would mean nothing."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, "must be a finite number")]
    if isinstance(value, BaseModel):
        children: Any = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        children = value.items()
    elif isinstance(value, tuple | list):
        children = enumerate(value)
    else:
        return []
    return [e for key, child in children for e in _non_finite(child, f"{path}.{key}".lstrip("."))]


def _cross_checks(scenario: Scenario) -> list[tuple[str, str]]:
    """What no single field can know: faults that name steps, tools and timings of the
    scenario around them. (field path, reason) pairs, all of them at once."""
    problems = _non_finite(scenario, "")
    for index, fault in enumerate(scenario.faults):
        where = f"faults.{index}"
        times = getattr(fault, "times", 1)  # 1 is the default a dumped scenario carries
        if times != 1 and getattr(fault, "every_s", None) is None:
            problems.append((f"{where}.times", "only means something with every_s"))
        step = getattr(fault, "step", None)
        if fault.kind == "crash_point" and step is not None and step >= scenario.steps:
            problems.append(
                (f"{where}.step", f"must be < steps ({scenario.steps}): no run reaches it")
            )
        unknown = sorted(set(getattr(fault, "tools", ())) - set(scenario.tools))
        if fault.kind == "tool" and unknown:
            problems.append(
                (
                    f"{where}.tools",
                    f"{', '.join(unknown)} not among the scenario's tools "
                    f"({', '.join(scenario.tools)})",
                )
            )
    return problems


def _format_errors(source: str, problems: list[tuple[str, str]]) -> str:
    lines = [f"{source}: invalid scenario"]
    lines.extend(f"  {loc or '(top level)'}: {reason}" for loc, reason in problems)
    return "\n".join(lines)


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate already-loaded YAML data; raise ScenarioError naming source, field, reason."""
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{source}: a scenario must be a YAML mapping, got {type(data).__name__}"
        )
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise ScenarioError(_format_errors(source, problems)) from None
    except RecursionError:
        raise ScenarioError(f"{source}: invalid scenario: nested too deeply") from None
    problems = _cross_checks(scenario)
    if problems:
        raise ScenarioError(_format_errors(source, problems))
    return scenario


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (by
    default the last one silently wins)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                continue  # unhashable: the base constructor reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A path as given, or a bare name looked up in the shipped scenarios/ folder."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = SCENARIO_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))) or "none"
    raise ScenarioError(f"{name_or_path}: no such scenario file (shipped scenarios: {known})")


def _read_text(path: Path) -> str:
    """A regular file of at most MAX_SCENARIO_BYTES: a FIFO would block for ever and
    /dev/zero would read until memory runs out."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ScenarioError(f"{path}: cannot read a scenario from it: {kind}")
    with path.open("rb") as handle:
        data = handle.read(MAX_SCENARIO_BYTES + 1)
    if len(data) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: larger than {MAX_SCENARIO_BYTES} bytes: not a scenario")
    return data.decode("utf-8")


def load_scenario(name_or_path: str | Path) -> Scenario:
    path = resolve_scenario_path(name_or_path)
    try:
        data = yaml.load(_read_text(path), Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ScenarioError(f"{path}: not a scenario: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_scenario(data, str(path))


def list_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))
