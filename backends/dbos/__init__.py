"""`dbos`: the RAV agent on DBOS Transact (see backend.py).

Split by role: `workflow.py` (the workflow and its steps, imported by workers only),
`worker.py` (a DBOS executor process), `backend.py` (the harness side, a DBOSClient),
`history.py` (reading a run back from its recorded steps), `crashpoints.py` (DBOS's own
durability boundaries), `settings.py` (names every process agrees on), `floor.py`.
"""

from __future__ import annotations

from backends.dbos.backend import DbosBackend

__all__ = ["DbosBackend"]
