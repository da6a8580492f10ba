"""`pgstore-naive`: the one-row-per-run JSONB state store (see backend.py)."""

from __future__ import annotations

from backends.pgstore_naive.backend import NaivePgStoreBackend

__all__ = ["NaivePgStoreBackend"]
