"""The `durabench` command line: one module per command (or family of commands), the
options and error handling they share in `common`, the console tables in `tables`."""

from __future__ import annotations

import click

from harness.cli.crashpoints import crashpoints_command
from harness.cli.doctor import doctor
from harness.cli.explore import explore
from harness.cli.floor import floor
from harness.cli.heal import heal
from harness.cli.k8s import k8s
from harness.cli.load import load_command, sweep_command
from harness.cli.plan import plan_command
from harness.cli.results import check, compare, list_, report
from harness.cli.run import run
from harness.cli.serve import serve_command
from harness.cli.suite import suite
from harness.cli.tables import print_summary

__all__ = ["cli", "main", "print_summary"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="durabench")
def cli() -> None:
    """durabench: does agent state survive crashes, and what does durability cost per step?"""


for command in (run, floor, plan_command, suite, list_, check, report, compare, heal, k8s, doctor):
    cli.add_command(command)
for command in (crashpoints_command,):
    cli.add_command(command)
cli.add_command(load_command)
cli.add_command(sweep_command)
cli.add_command(explore)
cli.add_command(serve_command)


def main() -> None:
    cli(prog_name="durabench")
