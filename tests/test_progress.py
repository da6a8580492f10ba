"""Progress on long work: cells done and left, elapsed time and an estimate of what is
left; a live bar on a terminal, one line per cell in a CI log."""

from __future__ import annotations

import io

from rich.console import Console

from harness.progress import CellProgress, estimate_left_s, format_span, run_progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_estimate_is_the_mean_cell_time_times_the_cells_left_capped_by_the_budget() -> None:
    assert estimate_left_s(0, 8, 0.0) is None, "no cell done: nothing to go by"
    assert estimate_left_s(2, 8, 60.0) == 180.0
    assert estimate_left_s(2, 8, 60.0, budget_s=100.0) == 40.0
    assert estimate_left_s(3, None, 30.0, budget_s=100.0) == 70.0, "a budget alone"
    assert estimate_left_s(8, 8, 60.0) == 0.0
    assert [format_span(s) for s in (None, 42, 185, 3720)] == ["?", "42s", "3m05s", "1h02m"]


def test_a_ci_log_gets_one_line_per_cell_with_done_left_elapsed_and_estimate() -> None:
    log = io.StringIO()
    console = Console(file=log, force_terminal=False, width=200)
    clock = Clock()
    with CellProgress(console, "suite cells", 4, clock=clock) as bar:
        clock.now += 30
        bar.advance("kill x pgstore: met")
        bar.note("a line that is not a cell")
        clock.now += 30
        bar.advance("kill x temporal: met")
    assert log.getvalue().splitlines() == [
        "[1/4 suite cells, 30s elapsed, ~1m30s left] kill x pgstore: met",
        "a line that is not a cell",
        "[2/4 suite cells, 1m00s elapsed, ~1m00s left] kill x temporal: met",
    ]


def test_a_terminal_gets_a_live_bar_and_the_cell_lines_above_it() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    clock = Clock()
    with CellProgress(console, "sweep cells", 2, clock=clock) as bar:
        clock.now += 10
        bar.advance("baseline c=1 steps=2 ok")
    text = screen.getvalue()
    assert "baseline c=1 steps=2 ok" in text
    assert "sweep cells" in text and "1/2" in text and "~10s left" in text


def test_runs_progress_in_a_log_says_once_when_each_backend_is_done() -> None:
    log = io.StringIO()
    progress, report = run_progress(Console(file=log, force_terminal=False, width=200))
    with progress:
        for done in range(4):
            report("pgstore", done, 3)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[pgstore: 3/3 runs, ")
