"""Injectors: one module per fault family, one class per fault kind, found by kind.

`injector_for(kind)` is the registry. Every module of this package is loaded on first
use, and each injector class registers its kind when it is defined, so adding a fault
kind touches its model (harness/faults.py) and one module here, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.faults import Fault
from harness.injectors.base import (
    INJECTORS,
    FaultContext,
    FaultRecord,
    Injector,
    Occurrence,
    judge,
)
from harness.platform.base import Platform

if TYPE_CHECKING:
    from backends.base import Backend

__all__ = [
    "FaultContext",
    "FaultRecord",
    "Injector",
    "Occurrence",
    "injector_for",
    "load_injectors",
    "refuse_faults",
]

_loaded = False


def load_injectors() -> dict[str, type[Injector[Any]]]:
    """Import every injector module of this package (once): kind -> injector class."""
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            if module.name != "base":
                importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return INJECTORS


def injector_for(kind: str) -> Injector[Any]:
    """The injector of a fault kind (KeyError naming the kinds known when there is none)."""
    injectors = load_injectors()
    try:
        return injectors[kind]()
    except KeyError:
        raise KeyError(f"no injector for fault kind {kind!r}; known: {sorted(injectors)}") from None


def refuse_faults(
    faults: Sequence[Fault], platform: Platform | None, backend: Backend | None
) -> dict[int, str]:
    """Fault index -> why its injector cannot apply it to this backend on this platform
    (parts given as None are not judged). Raises a DurabenchError for a fault that is
    wrong for them (an unknown code version): the run must not start."""
    load_injectors()
    return judge(faults, platform, backend)
