"""`pgstore`: the event-sourced Postgres agent state store (see backend.py)."""

from __future__ import annotations

from backends.pgstore.backend import PgStoreBackend

__all__ = ["PgStoreBackend"]
