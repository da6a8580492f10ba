"""Pydantic AI agents on durable substrates (`pydantic-ai:temporal`: `backend.py`).

Kept empty: the Temporal sandbox imports this package when it loads the workflow
module, and must not import the harness side with it."""
