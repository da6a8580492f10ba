"""`--until-integrity P [--confidence C] --budget 10m / --max-runs N`, shared by
`durabench run` and `durabench suite` (harness/confidence.py does the work)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from harness.cli.common import out

__all__ = [
    "UNTIL_EXIT_HELP",
    "goal_from",
    "print_until",
    "until_exit_code",
    "until_options",
    "until_setup",
    "write_outcome",
]

F = TypeVar("F", bound=Callable[..., Any])

UNTIL_EXIT_HELP = (
    "With --until-integrity: 0 integrity established for every backend, 6 an anomaly "
    "was found, 4 the budget was spent before the lower bound cleared the target."
)

_OPTIONS = (
    click.option(
        "--until-integrity",
        "until_integrity",
        type=float,
        default=None,
        metavar="P",
        help="Keep starting runs, the scenario's faults recurring on a cycle, until the "
        "one-sided lower confidence bound of integrity among exposed runs is at least P "
        "(e.g. 0.999), an anomaly is found, or the budget is spent; the result says which. "
        "Needs --budget and/or --max-runs.",
    ),
    click.option(
        "--confidence",
        type=float,
        default=0.95,
        show_default=True,
        help="With --until-integrity: the confidence of the lower bound.",
    ),
    click.option(
        "--budget",
        default=None,
        metavar="DURATION",
        help="With --until-integrity: stop starting runs after this long (90s, 10m, 1h), "
        "per backend (per cell in a suite).",
    ),
    click.option(
        "--max-runs",
        type=click.IntRange(min=1),
        default=None,
        help="With --until-integrity: start at most this many runs per backend (per cell).",
    ),
)


def until_options(function: F) -> F:
    for option in reversed(_OPTIONS):
        function = option(function)
    return function


def goal_from(options: dict[str, Any]) -> Any:
    """The Goal the options ask for (popped from `options`), or None without
    --until-integrity; a budget option without it is an error."""
    from harness.errors import DurabenchError

    target = options.pop("until_integrity")
    confidence, budget, max_runs = (options.pop(k) for k in ("confidence", "budget", "max_runs"))
    if target is None:
        if budget is not None or max_runs is not None:
            raise DurabenchError("--budget and --max-runs go with --until-integrity P")
        return None
    from harness.confidence import Goal, parse_budget

    return Goal(target, confidence, parse_budget(budget) if budget else None, max_runs)


def print_until(outcomes: dict[str, dict[str, Any]]) -> None:
    """Why each backend's runs stopped, with the bound they reached."""
    table = Table(title="until confident: why the runs stopped")
    for column in ("backend", "stopped", "lower bound", "exposed", "needed", "seconds"):
        table.add_column(
            column, justify="left" if column in ("backend", "stopped") else "right", overflow="fold"
        )
    labels = {
        "confident": "[green]integrity established[/]",
        "anomaly": "[bold red]anomaly found[/]",
        "budget": "[yellow]budget spent[/]",
    }
    for backend, o in outcomes.items():
        table.add_row(
            backend,
            labels[o["stopped"]],
            f"{o['lower_bound']:.4f}",
            str(o["exposed_runs"]),
            str(o["runs_needed"]),
            f"{o['elapsed_s']:.0f}",
        )
    out.print(table)
    for backend, o in outcomes.items():
        target = f"integrity >= {o['target']:g} at {o['confidence']:.0%}"
        if o["stopped"] == "confident":
            verdict = f"established: {target} ({o['passed']} of {o['exposed_runs']} exposed runs)"
        elif o["stopped"] == "anomaly":
            verdict = f"refuted: an anomaly was found ({o['reason']})"
        else:
            verdict = (
                f"not established: the budget was spent at lower bound {o['lower_bound']:.4f} "
                f"({o['exposed_runs']} exposed runs of the {o['runs_needed']} needed)"
            )
        out.print(f"{backend}: {verdict}", highlight=False)


def until_setup(scenario: Path, goal: Any, out_dir: Path) -> tuple[Path, Any]:
    """The cycled scenario file (kept beside the results: workers read it) and the driver."""
    from harness.confidence import UntilConfident, write_cycled
    from harness.scenario import resolve_scenario_path

    cycled = write_cycled(resolve_scenario_path(scenario), goal, out_dir / ".until")
    return cycled, UntilConfident(goal)


def write_outcome(results: Any, goal: Any, driver: Any) -> dict[str, dict[str, Any]]:
    from harness.confidence import write_outcome as write

    outcomes: dict[str, dict[str, Any]] = write(results, goal, driver)
    return outcomes


def until_exit_code(outcomes: dict[str, dict[str, Any]]) -> int:
    from harness.confidence import exit_code

    return exit_code(outcomes)
