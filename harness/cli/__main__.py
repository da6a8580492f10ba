"""`python -m harness.cli` is `durabench`."""

from harness.cli import main

main()
