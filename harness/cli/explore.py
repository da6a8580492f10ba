"""`durabench explore`: random fault schedules, many short trials, every anomaly shrunk
to a re-runnable reproducer with an explanation."""

from __future__ import annotations

import re
from pathlib import Path

import click

from harness.cli.ci import ci_options, write_ci
from harness.cli.common import console, fail, out, out_option, stop_on_signals
from harness.errors import DurabenchError
from harness.progress import CellProgress

__all__ = ["explore", "parse_budget"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float:
    """'90s', '20m', '1h' or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r}: expected a positive duration such as 90s, 20m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@click.command()
@click.argument("scenario")
@click.option("--backend", "-b", required=True, metavar="NAME", help="The backend to explore.")
@click.option(
    "--budget",
    default="20m",
    show_default=True,
    metavar="DURATION",
    help="How long to search (90s, 20m, 1h); a trial that started finishes, and shrinking "
    "a finding runs to its end.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Fixes the drawn fault schedules: the same seed draws the same trials.",
)
@click.option(
    "--trials", type=click.IntRange(min=1), default=None, help="Stop after this many trials."
)
@click.option(
    "--max-faults",
    type=click.IntRange(min=1, max=8),
    default=2,
    show_default=True,
    help="At most this many faults per trial.",
)
@click.option(
    "--reruns",
    "-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Re-run each minimal reproducer this many times for its reproduction rate.",
)
@click.option(
    "--shrink-trials",
    type=click.IntRange(min=0),
    default=24,
    show_default=True,
    help="At most this many candidate runs while shrinking one finding.",
)
@click.option(
    "--max-findings",
    type=click.IntRange(min=1),
    default=None,
    help="Stop once this many distinct anomalies were found and shrunk.",
)
@out_option("Directory that receives explore-<time>/.")
@ci_options
def explore(
    scenario: str,
    backend: str,
    budget: str,
    seed: int,
    trials: int | None,
    max_faults: int,
    reruns: int,
    shrink_trials: int,
    max_findings: int | None,
    out_dir: Path,
    junit: Path | None,
    summary_md: Path | None,
) -> None:
    """Search random fault schedules on SCENARIO for durability anomalies: each trial is
    a short run with drawn faults (kinds the backend and platform support); every
    anomaly is shrunk to findings/<n>/reproducer.yaml (re-run it with `durabench run`)
    with findings/<n>/explanation.txt. Everything is listed in explore.json."""
    from harness.explore import Exploration
    from harness.scenario import resolve_scenario_path

    seconds = parse_budget(budget)
    stop_on_signals()
    bar = CellProgress(console, "trials", trials, budget_s=seconds)

    def progress(line: str) -> None:
        if line.startswith("trial "):
            bar.advance(line, markup=False, soft_wrap=True)
        else:
            bar.note(line, markup=False, soft_wrap=True)

    try:
        exploration = Exploration(
            resolve_scenario_path(scenario),
            backend,
            out_dir,
            budget_s=seconds,
            seed=seed,
            trials=trials,
            max_faults=max_faults,
            reruns=reruns,
            shrink_trials=shrink_trials,
            max_findings=max_findings,
            progress=progress,
        )
        with bar:
            record = exploration.run()
    except DurabenchError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        where = exploration.directory if "exploration" in locals() else None
        fail("interrupted" + (f" (explore.json kept in {where})" if where else ""), 130)
    out.print(
        f"{record['trials_run']} trials in {record['elapsed_s']:.0f}s "
        f"({record['trials_per_minute']} per minute), exposed runs {record['exposed_runs']}, "
        f"anomalous trials {record['anomalous_trials']}, findings {len(record['findings'])}"
    )
    for finding in record["findings"]:
        out.print(
            f"finding {finding['finding']}: {', '.join(finding['broken'])}; "
            f"{finding['faults_count']} fault(s); reproduced "
            f"{finding['reproduced']}/{finding['reruns']}; {finding['reproducer']}"
        )
    out.print(f"results: {exploration.directory}")
    from harness.cli.tables import print_headline
    from harness.headline import headline_lines
    from harness.junit import explore_cases, explore_outcomes

    record = {**record, "directory": str(exploration.directory)}
    outcomes = [o for o, _ in explore_outcomes(record)]
    print_headline(headline_lines(outcomes))
    write_ci(
        junit,
        summary_md,
        f"durabench explore {scenario} --backend {backend}",
        outcomes,
        cases=explore_cases(record),
        results=str(exploration.directory),
    )
