"""`durabench plan`: the concrete fault timeline of a scenario, without running anything."""

from __future__ import annotations

import json
from typing import Any

import click

from harness.cli.common import fail
from harness.errors import DurabenchError
from harness.faults import Fault, TimedFault
from harness.scenario import load_scenario, resolve_scenario_path
from harness.schedule import Planned, Timeline, plan

__all__ = ["plan_command"]

_TIMING = {"kind", "target", "at_s", "after_steps", "every_s", "times", "random"}


def _parameters(fault: Fault | TimedFault) -> str:
    """What the fault sets beyond its kind, target, timing and duration, as key=value."""
    exclude = _TIMING | {"duration_s"}
    values = fault.model_dump(mode="json", exclude=exclude, exclude_defaults=True)
    return " ".join(f"{k}={_value(v)}" for k, v in values.items())


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _when(planned: Planned) -> str:
    if planned.at_s is not None:
        return f"t+{planned.at_s:.3f}s"
    return f"after {planned.after_steps} steps"


def _rows(timeline: Timeline) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "fault": p.index,
            "occurrence": p.occurrence,
            "at_s": p.at_s,
            "after_steps": p.after_steps,
            "kind": p.fault.kind,
            "target": p.fault.target_label(),
            "lasts_s": p.fault.lasts_s(),
            "parameters": p.fault.model_dump(mode="json", exclude=_TIMING),
        }
        for p in timeline.in_time_order()
    ]
    rows += [
        {
            "fault": u.index,
            "occurrence": 0,
            "at_s": None,
            "after_steps": None,
            "kind": u.fault.kind,
            "target": u.fault.point,
            "lasts_s": None,
            "parameters": u.fault.model_dump(mode="json", exclude=_TIMING | {"point"}),
        }
        for u in timeline.untimed
    ]
    return rows


@click.command("plan")
@click.argument("scenario")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per occurrence instead.")
def plan_command(scenario: str, as_json: bool) -> None:
    """Print the fault timeline SCENARIO's seed gives: every occurrence of every fault,
    in time order (offsets, then step counts, then crash points, which fire where a
    worker reaches them). The same timeline every run of SCENARIO applies; which
    component an occurrence hits is drawn from the seed once the run knows their names."""
    try:
        model = load_scenario(resolve_scenario_path(scenario))
    except DurabenchError as exc:
        fail(str(exc))
    timeline = plan(model.faults, model.seed)
    if as_json:
        for row in _rows(timeline):
            click.echo(json.dumps(row))
        return
    occurrences = len(timeline.planned) + len(timeline.untimed)
    click.echo(
        f"{model.name} (seed {model.seed}): {occurrences} occurrence(s) of "
        f"{len(model.faults)} fault(s)"
    )
    if not occurrences:
        return
    lines = [("when", "fault", "kind", "target", "lasts", "parameters")]
    for planned in timeline.in_time_order():
        duration = planned.fault.lasts_s()
        lines.append(
            (
                _when(planned),
                planned.key,
                planned.fault.kind,
                planned.fault.target_label(),
                "" if duration is None else f"{duration:g}s",
                _parameters(planned.fault),
            )
        )
    for untimed in timeline.untimed:
        fault = untimed.fault
        where = f"run={fault.run} step={'*' if fault.step is None else fault.step}"
        lines.append(("when reached", str(untimed.index), fault.kind, fault.point, "", where))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    for line in lines:
        cells = [c.ljust(w) for c, w in zip(line, widths, strict=False)]
        click.echo("  ".join([*cells, line[-1]]).rstrip())
