"""What the Cloudflare tests share: they need wrangler and workerd, which `npm ci
--ignore-scripts --prefix backends/cloudflare` installs (.ci/run does). Without them
they skip, except under CI=true, where they run and fail: CI promised the runtime."""

from __future__ import annotations

import os

import pytest

from backends.cloudflare.install import missing

__all__ = ["needs_runtime"]

needs_runtime = pytest.mark.skipif(
    bool(missing()) and os.environ.get("CI") != "true",
    reason=f"cloudflare runtime missing: {'; '.join(missing())}",
)
