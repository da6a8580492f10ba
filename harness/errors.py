"""The one root exception: everything durabench raises on purpose derives from it,
so the CLI can print a clear message instead of a traceback."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ComponentError",
    "DryRunPlanned",
    "DurabenchError",
    "ResultsError",
    "ScenarioError",
    "UnsupportedFault",
]


class DurabenchError(Exception):
    """Base class for errors that durabench reports to the user as-is."""


class ScenarioError(DurabenchError):
    """A scenario file is missing or invalid (the message names file, field and reason)."""


class BackendError(DurabenchError):
    """A backend name is unknown, cannot be imported, or its dependencies are missing."""


class ComponentError(DurabenchError):
    """A component process failed to start or died; the message carries its log tail."""


class ResultsError(DurabenchError):
    """A results directory is missing or incomplete."""


class UnsupportedFault(DurabenchError):
    """A platform cannot apply this fault (e.g. pause without Chaos Mesh); the nemesis
    records the fault as skipped, with this message as the reason."""


class DryRunPlanned(Exception):
    """A dry run printed every call that brings one backend up and down; nothing ran."""
