"""What the backend crash-point tests read from a run: which run each crash point
killed, and how much work each run repeated."""

from __future__ import annotations

import pandas as pd

from tests.backends.pgstore.pgstore_support import Outcome


def fired(outcome: Outcome) -> dict[str, str]:
    """Crash point (point:step) -> the run it killed, from faults.parquet; every one `ok`."""
    faults = outcome.table("faults")
    rows = faults[faults["kind"] == "crash_point"]
    assert (rows["outcome"] == "ok").all(), rows[["target", "fault_index", "outcome", "detail"]]
    return {
        f"{row.target}:{row.selected[0].split(':')[1]}": row.selected[0].split(":")[0]
        for row in rows.itertuples()
    }


def repeated(runs: pd.DataFrame, run_id: str) -> tuple[int, int, int]:
    """(extra LLM calls, extra tool executions, extra applied effects) of one run."""
    row = runs.loc[run_id]
    return (
        int(row["llm_calls"] - row["llm_calls_expected"]),
        int(row["tool_executions"] - row["tool_expected"]),
        int(row["tool_applied"] - row["tool_expected"]),
    )
