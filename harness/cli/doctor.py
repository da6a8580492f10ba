"""`durabench doctor`: what is installed and reachable, with a fix for each."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from harness.cli.common import out

__all__ = ["doctor"]


@click.command()
def doctor() -> None:
    """Show what is installed and reachable (packages, Postgres, temporal, restate-server,
    Docker), with fixes."""
    from harness.doctor import run_checks

    table = Table(title="durabench doctor")
    for column in ("check", "ok", "detail", "fix"):
        table.add_column(column)
    failed_required = False
    for check in run_checks():
        mark = (
            "[green]yes[/]" if check.ok else ("[red]NO[/]" if check.required else "[yellow]no[/]")
        )
        failed_required |= check.required and not check.ok
        table.add_row(check.name, mark, check.detail, check.hint)
    out.print(table)
    if failed_required:
        sys.exit(1)
