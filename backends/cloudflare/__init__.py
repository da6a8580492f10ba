"""`cloudflare`: the RAV agent as a Cloudflare Workflow (see backend.py).

Split by role: `src/` (the Worker: the agent and floor Workflows and their HTTP routes,
in JavaScript), `runtime.py` (the runtime component: wrangler dev, local mode),
`backend.py` (the harness side), `client.py` (the instance API: the Worker's routes or
the REST API), `account.py` (a real account), `history.py` (a run read back from its
persisted step outputs), `crashpoints.py`, `settings.py`, `install.py` (what `npm ci`
brought), `floor.py`.
"""

from __future__ import annotations

from backends.cloudflare.backend import CloudflareBackend

__all__ = ["CloudflareBackend"]
