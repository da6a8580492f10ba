"""`durabench serve`: the results browser, run as the real command over real results and
driven in headless Chromium (tests/report/chromium.py): it lists the directories, opens
a report (built on first view), compares two runs, refuses what is outside its root."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.report.chromium import visit
from tests.test_cli import DURABENCH, durabench

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Served:
    root: Path
    url: str
    runs: tuple[str, str]
    artifacts: Path

    def get(self, path: str) -> tuple[int, str]:
        """One raw GET (the path sent as written: no client-side normalisation)."""
        parsed = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two quick real runs of the baseline under a results root, and `durabench serve`
    over it on a free port."""
    base = tmp_path_factory.mktemp("serve")
    root = base / "results"
    names = []
    for _ in range(2):
        done = durabench("run", "smoke", "--backend", "baseline", "--out", str(root))
        assert done.returncode == 0, done.stderr
        names.append(re.findall(r"results: (\S+)", done.stdout)[-1].rsplit("/", 1)[1])
    (root / "notes").mkdir()  # not results: not listed
    process = subprocess.Popen(
        [DURABENCH, "serve", str(root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert match, f"{line!r} {process.stderr.read() if process.poll() is not None else ''}"
        artifacts = base / "screenshots"
        artifacts.mkdir()
        print(f"\nscreenshots: {artifacts}")
        yield Served(root, match.group(1), (names[0], names[1]), artifacts)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_the_page_lists_each_results_directory_with_its_figures(served: Served) -> None:
    page = visit(served.url)
    (served.artifacts / "index.png").write_bytes(page.screenshot)
    assert page.errors == []
    assert [u for u in page.external_requests if not u.startswith(served.url)] == []
    for name in served.runs:
        row = next(line for line in page.text.splitlines() if line.startswith(name))
        assert re.search(r"run\s+complete\s+baseline\s+baseline 1\.000\s+\d{4}-\d\d-\d\d", row)
    assert "notes" not in page.text
    assert "latest" not in page.text, "the latest link is not listed twice"


def test_a_report_opens_and_is_built_the_first_time(served: Served) -> None:
    name = served.runs[0]
    assert not (served.root / name / "report" / "report.html").exists()
    page = visit(served.url, then=f"document.querySelector(\"a[href='/report/{name}/']\").click()")
    (served.artifacts / "report.png").write_bytes(page.screenshot)
    assert page.url == f"{served.url}report/{name}/"
    assert page.errors == []
    assert [u for u in page.external_requests if not u.startswith(served.url)] == []
    assert "durabench report" in page.text
    assert (served.root / name / "report" / "report.html").is_file()


def test_two_selected_runs_render_the_compare_table(served: Served) -> None:
    baseline, candidate = served.runs
    choose = (
        f"document.querySelector('select[name=baseline]').value = '{baseline}';"
        f"document.querySelector('select[name=candidate]').value = '{candidate}';"
        "document.querySelector('form#compare').submit()"
    )
    page = visit(served.url, then=choose)
    (served.artifacts / "compare.png").write_bytes(page.screenshot)
    assert page.url.startswith(f"{served.url}compare?baseline={baseline}&candidate={candidate}")
    assert page.errors == []
    header = "fault class\tbackend\tmetric\tbaseline\tcandidate\tchange\t95% CI of diff"
    assert header in page.text
    rows = [line.split("\t") for line in page.text.splitlines() if "\tbaseline\t" in line]
    assert {r[2] for r in rows} >= {"p50", "p99", "integrity", "steps_per_s"}
    (integrity,) = [r for r in rows if r[2] == "integrity"]
    assert integrity[3:5] == ["1.000", "1.000"]


@pytest.mark.parametrize(
    "path",
    [
        "/report/../../../../etc/passwd",
        "/report/%2e%2e/",
        "/report/..%2f..%2fetc/",
        "/report/%2Fetc%2Fpasswd/",
        "/compare?baseline=..&candidate=../..",
        "/compare?baseline=%2Fetc&candidate=%2Ftmp",
        "/report/outside/",
        "/../../etc/passwd",
    ],
)
def test_nothing_outside_the_root_is_served(served: Served, path: str) -> None:
    outside = served.root.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "manifest.json").write_text("{}")
    (outside / "report").mkdir(exist_ok=True)
    (outside / "report" / "report.html").write_text("SECRET")
    link = served.root / "outside"
    if not link.is_symlink():
        link.symlink_to(outside)  # a link out of the root is not followed
    status, body = served.get(path)
    assert status in (400, 404)
    assert "root:" not in body and "SECRET" not in body
    assert 'class="error"' in body.replace("'", '"')


def test_a_directory_that_is_not_results_gets_a_clear_message(served: Served) -> None:
    status, body = served.get("/report/notes/")
    assert status == 404
    assert "notes: not a results directory (no manifest.json" in body
    status, body = served.get(f"/compare?baseline={served.runs[0]}&candidate=notes")
    assert status == 400
    assert "notes: not a results directory" in body


def test_a_root_that_does_not_exist_is_one_line_without_traceback(tmp_path: Path) -> None:
    done = durabench("serve", str(tmp_path / "nowhere"), "--port", "0")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"error: {tmp_path / 'nowhere'}: no such directory (give the directory runs write into)"
    )
    assert "Traceback" not in done.stderr


def test_it_listens_on_loopback_only_by_default() -> None:
    done = durabench("serve", "--help")
    assert "127.0.0.1" in done.stdout
