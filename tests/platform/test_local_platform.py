"""The local platform as a specification, with tiny real subprocesses: it waits for
readiness, reports start failures with the log tail, restarts what it must, and
leaves nothing running."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import ComponentError
from harness.platform.local import ComponentSpec, LocalPlatform, ProcessStopped, free_port

LIVENESS_BOUND_S = 20.0  # how long a poll may wait for something that must happen

HTTP_SERVER = """
import http.server, sys

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""

SPAWNS_A_GRANDCHILD = HTTP_SERVER.replace(
    'print("serving", flush=True)',
    "import subprocess\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "open(sys.argv[2], 'w').write(str(child.pid))\n"
    'print("serving", flush=True)',
)


SPAWNS_A_GRANDCHILD_IN_ITS_OWN_SESSION = SPAWNS_A_GRANDCHILD.replace(
    "'import time; time.sleep(600)'])", "'import time; time.sleep(600)'], start_new_session=True)"
)


def http_spec(name: str, *, restart: bool = False, script: str = HTTP_SERVER) -> ComponentSpec:
    port = free_port()
    return ComponentSpec(
        name=name,
        role="server",
        argv=(sys.executable, "-c", script, str(port)),
        port=port,
        health_url=f"http://127.0.0.1:{port}/health",
        restart=restart,
        restart_delay_s=0.05,
        ready_timeout_s=LIVENESS_BOUND_S,
    )


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_dead(pid: int) -> bool:
    deadline = time.monotonic() + LIVENESS_BOUND_S
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[LocalPlatform]:
    with LocalPlatform(tmp_path / "platform") as local:
        yield local


def test_start_returns_once_the_health_url_answers(platform: LocalPlatform) -> None:
    spec = http_spec("web")
    component = platform.start(spec)
    assert spec.health_url is not None
    with urllib.request.urlopen(spec.health_url, timeout=5) as response:
        assert response.status == 200
    assert component.process.poll() is None
    assert platform.component("web") is component
    assert component.log_path == platform.log_dir / "web.log"
    assert "serving" in component.log_path.read_text()


def test_a_port_only_component_is_ready_when_it_accepts(platform: LocalPlatform) -> None:
    spec = http_spec("tcp")
    spec = ComponentSpec(name=spec.name, role=spec.role, argv=spec.argv, port=spec.port)
    component = platform.start(spec)
    assert component.process.poll() is None


def test_components_are_listed_by_role(platform: LocalPlatform) -> None:
    web = platform.start(http_spec("web"))
    assert platform.components() == [web]
    assert platform.components("server") == [web]
    assert platform.components("llm") == []


def test_a_component_that_exits_while_starting_raises_with_its_log_tail(
    platform: LocalPlatform,
) -> None:
    port = free_port()
    script = (
        "import sys\n"
        "print('config file /etc/zebra.conf: unreadable (zebra-canary-42)', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    spec = ComponentSpec(
        name="crasher",
        role="server",
        argv=(sys.executable, "-c", script),
        port=port,
        health_url=f"http://127.0.0.1:{port}/health",
        ready_timeout_s=LIVENESS_BOUND_S,
    )
    with pytest.raises(ComponentError) as info:
        platform.start(spec)
    message = str(info.value)
    assert "crasher" in message
    assert "exited with code 3" in message
    assert "zebra-canary-42" in message
    assert str(platform.log_dir / "crasher.log") in message


def test_a_component_never_ready_raises_after_its_ready_timeout_and_is_stopped(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    port = free_port()  # nobody will listen here
    pid_file = tmp_path / "sloth.pid"
    script = (
        "import os, sys, time\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "print('warming up forever', flush=True)\n"
        "time.sleep(600)\n"
    )
    spec = ComponentSpec(
        name="sloth",
        role="server",
        argv=(sys.executable, "-c", script, str(pid_file)),
        port=port,
        health_url=f"http://127.0.0.1:{port}/health",
        ready_timeout_s=1.0,
    )
    with pytest.raises(ComponentError) as info:
        platform.start(spec)
    message = str(info.value)
    assert "sloth was not ready after 1s" in message
    assert "warming up forever" in message
    assert not alive(int(pid_file.read_text()))


def test_a_failed_start_can_be_retried_under_the_same_name(platform: LocalPlatform) -> None:
    spec = http_spec("flaky")
    broken = ComponentSpec(
        name=spec.name,
        role=spec.role,
        argv=(sys.executable, "-c", "raise SystemExit(3)"),
        port=spec.port,
        health_url=spec.health_url,
    )
    with pytest.raises(ComponentError, match="exited with code 3"):
        platform.start(broken)
    component = platform.start(spec)
    assert component.process.poll() is None


def test_a_restart_component_killed_with_sigkill_comes_back_with_a_new_pid(
    platform: LocalPlatform,
) -> None:
    spec = http_spec("phoenix", restart=True)
    first = platform.start(spec)
    killed = platform.signal("phoenix", signal.SIGKILL)
    assert killed == first.pid
    deadline = time.monotonic() + LIVENESS_BOUND_S
    while platform.component("phoenix").pid == first.pid and time.monotonic() < deadline:
        time.sleep(0.05)
    second = platform.component("phoenix")
    assert second.pid != first.pid
    assert second.restarts == 1
    assert first.process.returncode == -signal.SIGKILL
    assert "restarts=1" in second.log_path.read_text()


def test_a_component_without_restart_stays_dead(platform: LocalPlatform) -> None:
    first = platform.start(http_spec("mortal"))
    platform.signal("mortal", signal.SIGKILL)
    assert first.process.wait(timeout=LIVENESS_BOUND_S) == -signal.SIGKILL
    assert platform.component("mortal") is first


def parent_spec(script: str, pid_file: Path) -> ComponentSpec:
    """A component named `parent` that writes its grandchild's pid to `pid_file`."""
    spec = http_spec("parent", script=script)
    return dataclasses.replace(spec, argv=(*spec.argv, str(pid_file)))


def test_stop_all_leaves_no_process_alive(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with LocalPlatform(tmp_path / "platform") as local:
        plain = local.start(http_spec("plain"))
        phoenix = local.start(http_spec("phoenix", restart=True))
        parent = local.start(parent_spec(SPAWNS_A_GRANDCHILD, pid_file))
        grandchild = int(pid_file.read_text())
        pids = [plain.pid, phoenix.pid, parent.pid]
        assert all(alive(pid) for pid in [*pids, grandchild])
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert local.components() == []
    assert wait_until_dead(grandchild)


def _running(pid: int) -> bool:
    """Alive and not a zombie: a zombie holds no port, file or directory."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["stop", "stop_all"])
def test_a_descendant_in_a_session_of_its_own_is_gone_when_stop_returns(
    how: str, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with LocalPlatform(tmp_path / "platform") as local:
        local.start(parent_spec(SPAWNS_A_GRANDCHILD_IN_ITS_OWN_SESSION, pid_file))
        grandchild = int(pid_file.read_text())
        assert os.getpgid(grandchild) == grandchild  # beyond a signal to the group
        if how == "stop":
            local.stop("parent")
        else:
            local.stop_all()
        assert not _running(grandchild)  # at once: stop waited for it


def test_stop_removes_one_component_and_leaves_the_others(platform: LocalPlatform) -> None:
    keep = platform.start(http_spec("keep"))
    gone = platform.start(http_spec("gone"))
    platform.stop("gone")
    assert gone.process.returncode is not None
    assert keep.process.poll() is None
    assert platform.components() == [keep]
    platform.stop("gone")  # stopping twice is harmless


def test_signal_to_an_unknown_name_raises_naming_the_running_components(
    platform: LocalPlatform,
) -> None:
    platform.start(http_spec("alpha"))
    platform.start(http_spec("beta"))
    with pytest.raises(ComponentError) as info:
        platform.signal("gamma", signal.SIGTERM)
    message = str(info.value)
    assert "gamma" in message
    assert "alpha, beta" in message


def test_starting_a_running_name_twice_is_refused(platform: LocalPlatform) -> None:
    spec = http_spec("once")
    platform.start(spec)
    with pytest.raises(ComponentError, match="already running"):
        platform.start(spec)


# -- pause: every process, recorded first; every start reported (issue 17, items 8, 9) ---


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def wait_for_state(pid: int, states: str) -> str | None:
    deadline = time.monotonic() + LIVENESS_BOUND_S
    while (state := proc_state(pid)) not in states and time.monotonic() < deadline:
        time.sleep(0.01)
    return state


def test_pause_stops_every_descendant_even_in_its_own_session_and_resume_continues_them(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    """The grandchild calls setsid() (as a Postgres backend does): stopping the process
    group would miss it; the parent pid in /proc finds it."""
    marker = tmp_path / "grandchild.pid"
    script = SPAWNS_A_GRANDCHILD.replace(
        "[sys.executable, '-c', 'import time; time.sleep(600)']",
        "[sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True",
    )
    port = free_port()
    spec = ComponentSpec(
        name="tree",
        role="store",
        argv=(sys.executable, "-c", script, str(port), str(marker)),
        port=port,
        ready_timeout_s=LIVENESS_BOUND_S,
    )
    tree = platform.start(spec)
    deadline = time.monotonic() + LIVENESS_BOUND_S
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(marker.read_text())
    assert os.getsid(grandchild) != os.getsid(tree.pid), "it left the component's session"

    recorded: list[ProcessStopped] = []
    platform.pause("tree", recorded.append)  # type: ignore[arg-type]
    assert wait_for_state(tree.pid, "T") == "T"
    assert wait_for_state(grandchild, "T") == "T"
    stopped = {pid for entry in recorded for pid, _ in entry.processes}
    assert {tree.pid, grandchild} <= stopped, "each process is in a heal entry"

    for entry in recorded:
        platform.resume(entry)
    assert wait_for_state(tree.pid, "RS") in ("R", "S")
    assert wait_for_state(grandchild, "RS") in ("R", "S")


def test_a_pause_is_recorded_before_anything_is_stopped(platform: LocalPlatform) -> None:
    """If the record cannot be made (durabench dies there), nothing was stopped."""
    component = platform.start(http_spec("web"))
    seen: list[str | None] = []

    def record(entry: object) -> None:
        seen.append(proc_state(component.pid))
        raise OSError("the state file could not be written")

    with pytest.raises(OSError):
        platform.pause("web", record)
    assert seen and seen[0] != "T"
    assert proc_state(component.pid) != "T"


def test_every_start_is_reported_a_supervisors_restart_too_with_its_new_pid(
    platform: LocalPlatform,
) -> None:
    started: list[tuple[str, int]] = []
    platform.on_start(lambda c: started.append((c.spec.name, int(c.ident))))
    first = platform.start(http_spec("phoenix", restart=True))
    assert started == [("phoenix", first.pid)]
    platform.signal("phoenix", signal.SIGKILL)
    deadline = time.monotonic() + LIVENESS_BOUND_S
    while len(started) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started == [("phoenix", first.pid), ("phoenix", platform.component("phoenix").pid)]
    assert started[1][1] != first.pid


def test_a_paused_embedded_postgres_serves_no_query_on_an_existing_connection(
    tmp_path: Path,
) -> None:
    """A store pause is a pause: the backend serving an open connection is stopped too,
    and it answers again once resumed."""
    import psycopg

    from harness.postgres import embedded_server, wait_ready

    server = embedded_server(tmp_path / "store")
    with LocalPlatform(tmp_path / "platform") as local:
        local.start(server.component())
        wait_ready(server.dsn)
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            recorded: list[ProcessStopped] = []
            local.pause("store", lambda entry: recorded.append(entry))  # type: ignore[arg-type]
            backends = {pid for entry in recorded for pid, _ in entry.processes}
            assert len(backends) > 2, "the postmaster and its children, each recorded"
            answers: list[object] = []
            query = threading.Thread(
                target=lambda: answers.append(conn.execute("SELECT 2").fetchone()), daemon=True
            )
            query.start()
            query.join(timeout=1.5)
            assert answers == [], "a paused store serves no query"
            for entry in recorded:
                local.resume(entry)
            query.join(timeout=LIVENESS_BOUND_S)
            assert answers == [(2,)], "and serves it once resumed"
