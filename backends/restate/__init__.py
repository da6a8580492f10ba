"""The Restate backend: the RAV agent as a workflow on a real Restate server.

Split by role: `service.py` (the workflow: each phase a durable `ctx.run`),
`worker.py` (the service worker process on hypercorn), `server.py` (the embedded
`restate-server` from the npm registry), `client.py` (the admin and ingress APIs),
`messages.py` (names and inputs both sides share), `crashpoints.py`, `floor.py` (the
raw floor) and `backend.py`.

`RestateBackend` is imported lazily, so importing the package (a worker, the floor)
does not pull the harness side in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backends.restate.backend import RestateBackend

__all__ = ["RestateBackend"]


def __getattr__(name: str) -> Any:
    if name == "RestateBackend":
        from backends.restate.backend import RestateBackend

        return RestateBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
