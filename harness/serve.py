"""`durabench serve`: a local web page over a results root.

It lists the result, suite, explore and sweep directories directly under the root (status,
backends, integrity, date, read with the readers the report uses), opens each one's
report (`<dir>/report/report.html`, built with `build_report` the first time it is asked
for), and compares two of them with the `durabench compare` table. Names in URLs are
directory names under the root, checked against the root after resolving: nothing
outside the root is ever read or served. Bad input (an unknown name, a directory that is
not a results directory, results that cannot be compared) is a page with the reason.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from harness.errors import DurabenchError, ResultsError
from harness.results import ResultsDir, read_json_file

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Entry",
    "list_entries",
    "make_app",
    "resolve_entry",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
REPORT_DIR = "report"  # where `durabench report DIR` writes by default
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    "th{background:#f3f3f3}.error{color:#a00;font-weight:bold}"
    ".REGRESSION{color:#a00;font-weight:bold}"
)
# matplotlib (the report's figures) is not thread-safe: one report is built at a time
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """One directory under the root, as the index lists it."""

    name: str
    kind: str  # run | suite | explore | sweep
    status: str
    backends: list[str]
    integrity: dict[str, float | None] = field(default_factory=dict)
    started_at: float | None = None

    @property
    def date(self) -> str:
        if self.started_at is None:
            return "-"
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))


def _kind(path: Path) -> str | None:
    for marker, kind in (
        ("explore.json", "explore"),
        ("sweep.parquet", "sweep"),
        ("matrix.json", "suite"),
        ("manifest.json", "run"),
    ):
        if (path / marker).is_file():
            return kind
    return None


def _started(manifest: dict[str, Any]) -> float | None:
    value = manifest.get("started_at")
    return float(value) if isinstance(value, int | float) else None


def _read_entry(path: Path) -> Entry:
    kind = _kind(path)
    if kind is None:
        raise ResultsError(
            f"{path.name}: not a results directory (no manifest.json, matrix.json, "
            "explore.json or sweep.parquet)"
        )
    manifest = read_json_file(path / "manifest.json", optional=True)
    if kind == "run":
        manifest = ResultsDir.open(path).read_manifest()
        summary = read_json_file(path / "summary.json", optional=True)
        integrity = {
            b: (f.get("integrity") if isinstance(f, dict) else None) for b, f in summary.items()
        }
        return Entry(
            path.name,
            kind,
            str(manifest.get("status") or "unknown"),
            list(manifest.get("backends", [])),
            integrity,
            _started(manifest),
        )
    backends = manifest.get("backends", [])
    backends = [str(b) for b in backends] if isinstance(backends, list) else []
    if kind != "suite":
        backend = manifest.get("backend")
        return Entry(
            path.name,
            kind,
            str(manifest.get("status") or "-"),
            backends or ([str(backend)] if backend else []),
            {},
            _started(manifest),
        )
    matrix = read_json_file(path / "matrix.json")
    cells = matrix.get("cells", [])
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ResultsError(f"{path / 'matrix.json'}: `cells` must be a list of objects")
    worst: dict[str, float | None] = {}
    for cell in cells:
        backend, value = str(cell.get("backend")), cell.get("integrity")
        if isinstance(value, int | float):
            previous = worst.get(backend)
            worst[backend] = value if previous is None else min(previous, value)
        else:
            worst.setdefault(backend, None)
    failed = sum(1 for c in cells if c.get("status") == "failed")
    status = f"{len(cells)} cells, exit {matrix.get('exit_code', '?')}"
    if failed:
        status += f", {failed} failed"
    return Entry(path.name, kind, status, backends or sorted(worst), worst, _started(manifest))


def resolve_entry(root: Path, name: str) -> Path:
    """The directory `name` under `root`; ResultsError when it is not a plain child of
    the root (after resolving symlinks and `..`) or not a results directory."""
    resolved_root = root.resolve()
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ResultsError(f"{name!r}: not a directory name under {root}")
    path = (resolved_root / name).resolve()
    if not path.is_relative_to(resolved_root):
        raise ResultsError(f"{name!r}: outside the results root {root}")
    if path == resolved_root or not path.is_dir():
        raise ResultsError(f"{name!r}: no such results directory under {root}")
    if _kind(path) is None:
        raise ResultsError(
            f"{name}: not a results directory (no manifest.json, matrix.json, "
            "explore.json or sweep.parquet)"
        )
    return path


def list_entries(root: Path) -> tuple[list[Entry], list[str]]:
    """The results directories under root, newest first, and one message per directory
    that looks like results but cannot be read. The `latest` link is not listed twice."""
    entries: list[Entry] = []
    problems: list[str] = []
    for path in sorted(root.iterdir()):
        if path.is_symlink() or not path.is_dir() or _kind(path) is None:
            continue
        try:
            entries.append(_read_entry(path))
        except DurabenchError as exc:
            problems.append(str(exc))
    entries.sort(key=lambda e: (e.started_at or 0.0, e.name), reverse=True)
    return entries, problems


# -- pages ---------------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{STYLE}</style></head><body>"
        f"<p><a href='/'>durabench results</a></p><h1>{html.escape(title)}</h1>{body}"
        "</body></html>"
    )
    return web.Response(text=text, content_type="text/html", status=status)


def _error(title: str, message: str, status: int = 400) -> web.Response:
    return _page(title, f"<p class='error' id='error'>{html.escape(message)}</p>", status)


def _integrity(entry: Entry) -> str:
    if not entry.integrity:
        return "-"
    return ", ".join(
        f"{b} {'-' if v is None else f'{v:.3f}'}" for b, v in sorted(entry.integrity.items())
    )


def _index(root: Path) -> web.Response:
    entries, problems = list_entries(root)
    e = html.escape
    rows = "".join(
        f"<tr class='entry' data-name='{e(x.name)}'>"
        f"<td><a href='/report/{e(x.name)}/'>{e(x.name)}</a></td><td>{e(x.kind)}</td>"
        f"<td>{e(x.status)}</td><td>{e(', '.join(x.backends))}</td>"
        f"<td>{e(_integrity(x))}</td><td>{e(x.date)}</td></tr>"
        for x in entries
    )
    if entries:
        body = (
            "<table id='results'><tr><th>directory (opens its report)</th><th>kind</th>"
            "<th>status</th><th>backends</th><th>integrity</th><th>started</th></tr>"
            f"{rows}</table>"
        )
        options = "".join(f"<option value='{e(x.name)}'>{e(x.name)}</option>" for x in entries)
        second = "".join(
            f"<option value='{e(x.name)}'{' selected' if i == 1 else ''}>{e(x.name)}</option>"
            for i, x in enumerate(entries)
        )
        body += (
            "<h2>Compare two runs</h2><form id='compare' action='/compare' method='get'>"
            f"<label>baseline <select name='baseline'>{options}</select></label> "
            f"<label>candidate <select name='candidate'>{second}</select></label> "
            "<button type='submit'>compare</button></form>"
        )
    else:
        body = f"<p id='empty'>no results directories under {e(str(root))}</p>"
    if problems:
        items = "".join(f"<li>{e(p)}</li>" for p in problems)
        body += f"<h2>Unreadable</h2><ul class='error' id='problems'>{items}</ul>"
    return _page(f"durabench results: {root}", body)


def _build_report(path: Path) -> Path:
    from harness.report import build_report

    with _BUILD_LOCK:
        html_path = path / REPORT_DIR / "report.html"
        if not html_path.is_file():
            build_report([path], path / REPORT_DIR)
    return html_path


def _compare_table(root: Path, baseline: str, candidate: str) -> str:
    from harness.compare import compare

    result = compare(resolve_entry(root, baseline), resolve_entry(root, candidate), [])
    if result.exit_code == 2:
        raise DurabenchError(result.failures[0])
    shown = result.display()
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in shown.columns)
    rows = "".join(
        f"<tr class='{e(str(r['status']))}'>"
        + "".join(f"<td>{e(str(r[c]))}</td>" for c in shown.columns)
        + "</tr>"
        for r in shown.to_dict("records")
    )
    return f"<table id='comparison'><tr>{head}</tr>{rows}</table>"


def make_app(root: Path) -> web.Application:
    """The browser's aiohttp application over `root` (an existing directory)."""

    async def index(request: web.Request) -> web.Response:
        return _index(root)

    async def report(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            path = resolve_entry(root, name)
            html_path = await asyncio.to_thread(_build_report, path)
        except DurabenchError as exc:
            return _error(f"report of {name}", str(exc), 404)
        return web.FileResponse(html_path, headers={"Content-Type": "text/html"})

    async def compare(request: web.Request) -> web.Response:
        baseline = request.query.get("baseline", "")
        candidate = request.query.get("candidate", "")
        title = f"compare {baseline} -> {candidate}"
        if not baseline or not candidate:
            return _error(title, "choose a baseline and a candidate directory")
        try:
            table = await asyncio.to_thread(_compare_table, root, baseline, candidate)
        except DurabenchError as exc:
            return _error(title, str(exc))
        return _page(title, table)

    async def no_icon(request: web.Request) -> web.Response:
        return web.Response(status=204)  # browsers ask; a 404 would log an error

    async def missing(request: web.Request) -> web.Response:
        return _error("not found", f"{request.path}: no such page", 404)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/report/{name}/", report)
    app.router.add_get("/report/{name}", report)
    app.router.add_get("/compare", compare)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_route("*", "/{tail:.*}", missing)
    return app
