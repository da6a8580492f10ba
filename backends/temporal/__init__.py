"""The Temporal backend: the RAV agent as a workflow on a real Temporal server.

Split by role, like temporalio/samples-python: `workflows.py` (v1) and
`workflows_v2.py` (the two v2 deploys), `activities.py`, `worker.py` (the worker
process), `server.py` (the embedded dev server), `connection.py`, `history.py`
(reading persisted state back), `versioning.py` (replay checks) and `backend.py`.

`TemporalBackend` is imported lazily: the workflow sandbox re-imports this package
for every workflow module it loads, and must not pull the client side in with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backends.temporal.backend import TemporalBackend

__all__ = ["TemporalBackend"]


def __getattr__(name: str) -> Any:
    if name == "TemporalBackend":
        from backends.temporal.backend import TemporalBackend

        return TemporalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
