"""The HTML report in a real browser: headless Chromium (Debian's `chromium`) loads it
offline, draws it, logs no error and asks the network for nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.report import ReportPaths
from tests.report.chromium import CHROMIUM, visit

pytestmark = pytest.mark.integration

if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
    pytest.fail("headless Chromium is needed: apt-get install -y chromium", pytrace=False)


def test_the_report_renders_offline_without_errors_or_requests(report: ReportPaths) -> None:
    page = visit(report.html)
    screenshot = report.html.parent / "report-screenshot.png"
    screenshot.write_bytes(page.screenshot)

    assert page.errors == []
    assert page.external_requests == []
    assert page.requests[0] == report.html.resolve().as_uri()
    images = [u for u in page.requests if u.startswith("data:image/png")]
    assert len(images) == len(report.figures), "every figure drawn from the page itself"
    assert page.screenshot.startswith(b"\x89PNG")
    height = int.from_bytes(page.screenshot[20:24], "big")
    assert height > 3000, "the full page, not one screen"


def test_the_browser_check_sees_errors_and_outside_requests(tmp_path: Path) -> None:
    """The check above can fail: a page that logs an error and fetches from the network
    is caught (the fetch goes to a closed loopback port)."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>bad</p>"
        '<img src="http://127.0.0.1:9/missing.png">'
        "<script>console.error('boom')</script></body></html>"
    )
    seen = visit(page)
    assert "http://127.0.0.1:9/missing.png" in seen.external_requests
    assert any("boom" in e for e in seen.errors)
