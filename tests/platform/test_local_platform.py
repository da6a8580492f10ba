"""The local platform as a specification, with tiny real subprocesses: it waits for
readiness, reports start failures with the log tail, restarts what it must, and
leaves nothing running."""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import ComponentError
from harness.platform.local import ComponentSpec, LocalPlatform, free_port

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


def test_stop_all_leaves_no_process_alive(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with LocalPlatform(tmp_path / "platform") as local:
        plain = local.start(http_spec("plain"))
        phoenix = local.start(http_spec("phoenix", restart=True))
        parent_spec = http_spec("parent", script=SPAWNS_A_GRANDCHILD)
        parent = local.start(
            ComponentSpec(
                name=parent_spec.name,
                role=parent_spec.role,
                argv=(*parent_spec.argv, str(pid_file)),
                port=parent_spec.port,
                health_url=parent_spec.health_url,
            )
        )
        grandchild = int(pid_file.read_text())
        pids = [plain.pid, phoenix.pid, parent.pid]
        assert all(alive(pid) for pid in [*pids, grandchild])
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert local.components() == []
    assert wait_until_dead(grandchild)


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
