"""The runtime component: `wrangler dev` in local mode (the real workerd runtime) on a
persist directory, supervised so that it lives and dies as one process.

This process is the component's root. It starts wrangler with PR_SET_PDEATHSIG, and
wrangler starts workerd through `workerd-shim`, which does the same: a SIGKILL of this
process (a kill fault, a crash point) takes wrangler and workerd with it, as a lost
machine would, and the supervisor's restart starts a fresh runtime on the same persist
directory, ports and Worker. A pause (SIGSTOP of every process of the tree) freezes all
three.

It also relays the Worker's measurement rows: each phase of the agent Workflow writes
one console line (`ROW_MARK` + a PhaseRow as JSON), which workerd hands to wrangler's
stdout; this process appends it to its Recorder file and passes every other line on to
the component log. And it serves the crash points: the Worker asks `POST /crash` at a
configured boundary, this process claims the point's marker (once across restarts) and
kills the runtime at once, so the Workflow's next line never runs.

Run as `python -m backends.cloudflare.runtime <worker arguments> --http-port P ...`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from backends.cloudflare.install import (
    PACKAGE_DIR,
    node_binary,
    workerd_binary,
    wrangler_cli,
)
from backends.cloudflare.settings import OFFLINE_ENV, ROW_MARK, RuntimeOptions, write_config
from backends.workercli import WorkerArgs
from harness.failpoints import Failpoints
from harness.measure import PhaseRow, Recorder
from harness.platform.local import process_tree

__all__ = ["main", "wrangler_command"]

SHIM = PACKAGE_DIR / "workerd-shim"
_PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 5.0


def wrangler_command(options: RuntimeOptions, config: Path) -> list[str]:
    """`wrangler dev`, local mode, on 127.0.0.1 and the given ports only."""
    node = node_binary() or "node"
    return [
        node,
        "--no-warnings",
        "--experimental-vm-modules",  # what wrangler's own launcher passes
        str(wrangler_cli()),
        "dev",
        "--config",
        str(config),
        "--ip",
        "127.0.0.1",
        "--port",
        str(options.http_port),
        "--inspector-port",
        str(options.inspector_port),
        "--persist-to",
        str(options.persist),
        "--show-interactive-dev-session=false",
        "--log-level",
        "warn",
    ]


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_runtime() -> None:
    """SIGKILL every process of the runtime (deepest first: workerd before wrangler), then
    this one: nothing of the Workflow runs after a crash point."""
    me = os.getpid()
    for pid in reversed(process_tree(me)):
        if pid != me:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    os.kill(me, signal.SIGKILL)


def _control_server(port: int, failpoints: Failpoints | None) -> ThreadingHTTPServer:
    """`POST /crash {point, run_id, step}`: kill the runtime if that point is armed and
    has not fired yet (Failpoints.hit kills this process, `_kill_runtime` its tree)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
            if failpoints is not None:
                point, run_id, step = str(body["point"]), str(body["run_id"]), int(body["step"])
                for candidate in failpoints.points:
                    if candidate.matches(point, run_id, step) and failpoints._first_time(
                        candidate, run_id, step
                    ):
                        _kill_runtime()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def _relay(stream: IO[bytes], recorder: Recorder) -> None:
    """Rows to the Recorder file, everything else to this component's log. wrangler
    frames a console.warn line (a prefix, colours): the row is the JSON object after
    the mark, up to its end."""
    decoder = json.JSONDecoder()
    for line in iter(stream.readline, b""):
        text = line.decode("utf-8", errors="replace")
        at = text.find(ROW_MARK)
        if at >= 0:
            try:
                data, _ = decoder.raw_decode(text, at + len(ROW_MARK))
                recorder.write(PhaseRow(**data))
                continue
            except (ValueError, TypeError):
                pass  # not a row after all: log it
        if text.strip():
            sys.stdout.write(text)
            sys.stdout.flush()


def _final_config(options: RuntimeOptions, failpoints: Failpoints | None) -> Path:
    """The base config with this process's crash points and control URL in its vars."""
    config: dict[str, Any] = json.loads(options.config.read_text(encoding="utf-8"))
    points = [
        {"point": p.point, "run": p.run_id, "step": p.step}
        for p in (failpoints.points if failpoints else [])
    ]
    config["vars"]["DURABENCH_FAILPOINTS"] = json.dumps(points)
    config["vars"]["DURABENCH_CONTROL_URL"] = f"http://127.0.0.1:{options.control_port}"
    return write_config(options.config.with_name("wrangler.json"), config)


def main(argv: list[str] | None = None) -> None:
    args = WorkerArgs.parse(RuntimeOptions, argv, description="durabench: Cloudflare runtime")
    options = args.options
    workerd = workerd_binary()
    if workerd is None or node_binary() is None:
        raise SystemExit(f"error: wrangler is not installed: run `npm ci` in {PACKAGE_DIR}")
    recorder = Recorder(args.measurements, args.backend_name, args.worker_id)
    failpoints = Failpoints.from_environment()
    server = _control_server(options.control_port, failpoints)
    threading.Thread(target=server.serve_forever, name="crash-points", daemon=True).start()
    options.persist.mkdir(parents=True, exist_ok=True)
    config = _final_config(options, failpoints)
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "MINIFLARE_WORKERD_PATH": str(SHIM),
        "DURABENCH_WORKERD": str(workerd),
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    }
    process = subprocess.Popen(
        wrangler_command(options, config),
        cwd=options.config.parent,  # wrangler's .wrangler/ scratch stays in the work dir
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )

    def stop(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    assert process.stdout is not None
    relay = threading.Thread(target=_relay, args=(process.stdout, recorder), daemon=True)
    relay.start()
    code = process.wait()
    relay.join(timeout=STOP_GRACE_S)
    recorder.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
