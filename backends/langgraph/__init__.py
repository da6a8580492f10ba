"""The LangGraph backend (see `backend.py` for what it measures)."""

from __future__ import annotations

from backends.langgraph.backend import LangGraphBackend

__all__ = ["LangGraphBackend"]
