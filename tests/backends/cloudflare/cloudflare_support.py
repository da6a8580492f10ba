"""What the Cloudflare tests share: the skip when `npm ci` has not installed wrangler."""

from __future__ import annotations

import pytest

from backends.cloudflare.install import missing

__all__ = ["needs_runtime"]

needs_runtime = pytest.mark.skipif(
    bool(missing()), reason=f"cloudflare runtime missing: {'; '.join(missing())}"
)
