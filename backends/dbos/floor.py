"""placeholder"""
from __future__ import annotations
from typing import Any
from backends.base import BackendEnv, FloorProgram
def floor_programs(backend: Any, env: BackendEnv) -> list[FloorProgram]:
    return []
