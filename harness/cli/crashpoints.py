"""`durabench crashpoints`: the crash points a backend has, with a sentence each."""

from __future__ import annotations

import json

import click

from harness.cli.common import backends_option, fail, installed_backends, out
from harness.errors import DurabenchError

__all__ = ["crashpoints_command"]


@click.command("crashpoints")
@backends_option("Backend to describe (repeatable). Default: every installed backend.")
@click.option("--json", "as_json", is_flag=True, help="Print the points as JSON.")
def crashpoints_command(backends: tuple[str, ...], as_json: bool) -> None:
    """List the crash points of each backend: the phase boundaries every backend shares,
    then the durability boundaries inside its own persistence path. A scenario names
    them in a `crash_point` fault (`point: temporal.after_activity_effect`), or
    enumerates them all with `point: all` (or `own`) and `step: all`."""
    from backends.base import load_backend
    from harness.crashpoints import points_of

    listing: dict[str, list[dict[str, object]]] = {}
    try:
        for name in list(backends) or installed_backends():
            backend = load_backend(name)
            listing[name] = [
                {
                    "point": p.name,
                    "depth": "backend" if "." in p.name else "shared",
                    "per_step": p.per_step,
                    "sentence": p.sentence,
                }
                for p in points_of(backend)
            ]
    except DurabenchError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(listing))
        return
    for name, points in listing.items():
        out.print(f"[bold]{name}[/]", highlight=False)
        for point in points:
            once = "" if point["per_step"] else " (reached once per claim, at any step)"
            out.print(f"  {point['point']}", highlight=False, soft_wrap=True)
            out.print(f"      {point['sentence']}{once}", highlight=False, soft_wrap=True)
