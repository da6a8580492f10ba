"""Progress on long work (`suite`, `sweep`, `explore`, `load`): cells done and left, the
time elapsed and an estimate of what is left.

On a terminal it is a live rich bar, each cell's line printed above it. Anywhere else
(a CI log) nothing is redrawn: one line per cell, prefixed with the same figures, so a
log stays short and still says how far the work got.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["CellProgress", "estimate_left_s", "format_span", "run_progress"]


def format_span(seconds: float | None) -> str:
    """`42s`, `3m05s`, `1h02m`; `?` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def estimate_left_s(
    done: int, total: int | None, elapsed_s: float, budget_s: float | None = None
) -> float | None:
    """What is left: the mean time per cell so far times the cells left; with a time
    budget, never more than the budget left (a budget alone: the budget left)."""
    by_budget = None if budget_s is None else max(0.0, budget_s - elapsed_s)
    if total is None or done == 0:
        return by_budget
    by_cells = elapsed_s / done * max(0, total - done)
    return by_cells if by_budget is None else min(by_cells, by_budget)


class CellProgress:
    """`with CellProgress(console, "suite cells", total) as p: ... p.advance(line)`."""

    def __init__(
        self,
        console: Console,
        what: str,
        total: int | None,
        *,
        budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.what = what
        self.total = total
        self.budget_s = budget_s
        self.done = 0
        self._clock = clock
        self._began = clock()
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._began

    def status(self) -> str:
        """`3/8 cells, 1m10s elapsed, ~2m left`."""
        left = estimate_left_s(self.done, self.total, self.elapsed_s, self.budget_s)
        of = f"/{self.total}" if self.total is not None else ""
        return (
            f"{self.done}{of} {self.what}, {format_span(self.elapsed_s)} elapsed, "
            f"~{format_span(left)} left"
        )

    def __enter__(self) -> CellProgress:
        self._began = self._clock()
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[left]}"),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.what, total=self.total, left="")
            self._refresh()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _refresh(self) -> None:
        if self._progress is not None:
            left = estimate_left_s(self.done, self.total, self.elapsed_s, self.budget_s)
            self._progress.update(
                self._task, completed=self.done, left=f"~{format_span(left)} left"
            )

    def advance(self, line: str, **print_options: Any) -> None:
        """One cell done; `line` says how it went."""
        self.done += 1
        self.note(line, prefix=True, **print_options)
        self._refresh()

    def note(self, line: str, *, prefix: bool = False, **print_options: Any) -> None:
        """A line that is not a cell (printed above the bar, or as is in a log)."""
        options = {"highlight": False, **print_options}
        if self.live or not prefix:
            self.console.print(line, **options)
        else:
            self.console.print(f"[{self.status()}] {line}", **options)


def run_progress(console: Console) -> tuple[Progress, Callable[[str, int, int], None]]:
    """A bar per backend for runs done of the total, with elapsed time and an estimate of
    what is left; on a non-terminal, one line as each backend's runs are all done."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[left]}"),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    tasks: dict[str, Any] = {}
    began: dict[str, float] = {}
    reported: set[str] = set()

    def report(backend: str, done: int, total: int) -> None:
        if backend not in tasks:
            began[backend] = time.monotonic()
            tasks[backend] = progress.add_task(f"{backend} runs", total=total, left="")
        elapsed = time.monotonic() - began[backend]
        left = estimate_left_s(done, total, elapsed)
        progress.update(
            tasks[backend], completed=done, total=total, left=f"~{format_span(left)} left"
        )
        if not console.is_terminal and total and done >= total and backend not in reported:
            reported.add(backend)
            console.print(
                f"[{backend}: {done}/{total} runs, {format_span(elapsed)} elapsed]",
                highlight=False,
                markup=False,
            )

    return progress, report
