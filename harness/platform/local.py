"""The local platform: every component is a real subprocess on a 127.0.0.1 port.

Components are started in their own process group, wait until they answer, log to
`<workdir>/logs/<name>.log`, and are all stopped on exit (also on Ctrl-C, and,
through PR_SET_PDEATHSIG, when durabench itself is killed). Components marked
`restart` are restarted when they die, as Kubernetes restarts a pod.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness.errors import ComponentError
from harness.heal_entry import HealEntry, process_start_time, same_process
from harness.platform.base import ComponentSpec, Handle, find_component, free_port, with_role
from harness.platform.supervisor import Supervisor

__all__ = [
    "Component",
    "ComponentSpec",
    "LocalPlatform",
    "ProcessStarted",
    "ProcessStopped",
    "free_port",
    "process_tree",
]

POLL_INTERVAL_S = 0.05
PAUSE_ROUNDS = 5  # rescans for processes forked while their parent was being stopped
STOP_GRACE_S = 5.0
TREE_EXIT_S = 5.0  # how long a stop waits for a SIGKILLed descendant to be gone
LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessStarted(HealEntry, tag="process"):
    """A component process durabench started: its process group is ended on heal."""

    counter = "killed"
    pid: int
    start_time: int | None

    def undo(self) -> bool:
        if not same_process(self.pid, self.start_time):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        return True


@dataclass(frozen=True)
class ProcessStopped(HealEntry, tag="stopped"):
    """Processes stopped with SIGSTOP, each (pid, kernel start time): SIGCONT undoes it,
    for each one that is still the same process."""

    counter = "continued"
    thaw_first = True
    processes: tuple[tuple[int, int | None], ...]

    def cont(self) -> bool:
        """SIGCONT every recorded process that is still the same one; True if any was."""
        continued = False
        for pid, start_time in self.processes:
            if same_process(pid, start_time):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    continued = True
        return continued

    def undo(self) -> bool:
        return self.cont()


def process_tree(root: int) -> list[int]:
    """`root` and every descendant, parents before children, found by parent pid in
    /proc (not by process group or session: Postgres backends call setsid())."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        tree.append(pid)
        queue.extend(sorted(children.get(pid, ())))
    return tree


ProcessTree = list[tuple[int, int | None]]  # (pid, kernel start time), parents first


def tree_of(root: int) -> ProcessTree:
    """A component's processes as they are now, each with its start time."""
    return [(pid, process_start_time(pid)) for pid in process_tree(root)]


def _living(pid: int, start_time: int | None) -> bool:
    """Still that process and not a zombie (a zombie holds no port, file or directory)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == start_time


def end_tree(tree: ProcessTree, timeout_s: float = TREE_EXIT_S) -> None:
    """SIGKILL what is left of a component's process tree, and wait until it is gone.

    Signals to the process group do not reach a descendant in a group of its own, and a
    runtime's child that dies with its parent (PR_SET_PDEATHSIG) is still tearing down
    when the parent has been reaped: without this, such a process outlives stop(),
    holding its port, its files and its working directory a moment longer."""
    for pid, start_time in tree:
        if _living(pid, start_time):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while any(_living(*entry) for entry in tree) and time.monotonic() < deadline:
        time.sleep(0.01)


@dataclass
class Component:
    spec: ComponentSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    restarts: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ident(self) -> str:
        return str(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if durabench dies, so nothing leaks."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _ready(spec: ComponentSpec) -> bool:
    if spec.health_url is not None:
        try:
            with urllib.request.urlopen(spec.health_url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False
    if spec.port is not None:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", spec.port)) == 0
    return True


def wait_ready(
    spec: ComponentSpec, what: str, died: Callable[[], str | None], log_tail: Callable[[], str]
) -> None:
    """Poll the spec's readiness (`health_url`, else `port`) until its timeout; a
    ComponentError with the log tail when the component died while starting (`died`
    says how) or never became ready. Every platform whose components answer on this
    machine's loopback waits this way."""
    deadline = time.monotonic() + spec.ready_timeout_s
    while time.monotonic() < deadline:
        how = died()
        if how is not None:
            raise ComponentError(f"{what} {how} while starting; log tail{log_tail()}")
        if _ready(spec):
            return
        time.sleep(POLL_INTERVAL_S)
    raise ComponentError(
        f"{what} was not ready after {spec.ready_timeout_s:g}s; log tail{log_tail()}"
    )


class LocalPlatform:
    """Starts, supervises and stops component processes. Use as a context manager."""

    name = "local"
    shares_host_filesystem = True

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._components: dict[str, Component] = {}
        self._listeners: list[Callable[[Handle], None]] = []
        self._lock = threading.RLock()
        self._supervisor = Supervisor(
            "durabench-supervisor",
            self._components,
            self._lock,
            died=lambda c: not c.alive(),
            start_again=self._start_again,
            wait_ready=self._wait_ready,
            poll_s=POLL_INTERVAL_S,
        )

    def __enter__(self) -> LocalPlatform:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    # -- lifecycle -------------------------------------------------------------------

    def start(self, spec: ComponentSpec) -> Component:
        """Start a component and wait until it is ready; raise ComponentError with its log tail."""
        with self._lock:
            if spec.name in self._components:
                raise ComponentError(f"component {spec.name!r} is already running")
            component = self._spawn(spec)
            self._components[spec.name] = component
        try:
            self._wait_ready(component)
        except ComponentError:
            with self._lock:
                if self._components.get(spec.name) is component:
                    del self._components[spec.name]
            raise
        if spec.restart:
            self._supervisor.watch()
        return component

    def _start_again(self, component: Component) -> Component:
        """A new process for a component that died (the supervisor holds the lock)."""
        replacement = self._spawn(component.spec, component.restarts + 1)
        self._components[component.spec.name] = replacement
        return replacement

    def _spawn(self, spec: ComponentSpec, restarts: int = 0) -> Component:
        log_path = self.log_dir / f"{spec.name}.log"
        with log_path.open("ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')} restarts={restarts}\n".encode())
            log.flush()
            process = subprocess.Popen(
                spec.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **spec.env},
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        component = Component(spec, process, log_path, restarts)
        for listener in self._listeners:
            listener(component)  # before it is waited for: a death now still finds it
        return component

    def _wait_ready(self, component: Component) -> None:
        def died() -> str | None:
            code = component.process.poll()
            return None if code is None else f"exited with code {code}"

        try:
            wait_ready(
                component.spec,
                component.spec.name,
                died,
                lambda: f" ({component.log_path}):\n{tail(component.log_path)}",
            )
        except ComponentError:
            self._terminate(component)
            raise

    def stop(self, name: str) -> None:
        with self._lock:
            component = self._components.pop(name, None)
        if component is not None:
            self._terminate(component)

    def stop_all(self) -> None:
        """Stop every component: SIGTERM to its process group, then SIGKILL after a grace."""
        self._supervisor.stop(timeout_s=0)
        with self._lock:
            components = list(self._components.values())
            self._components.clear()
        trees = [tree_of(component.pid) for component in components]
        for component in components:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for component in components:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                component.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                self._terminate(component, grace_s=0)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.pid, signal.SIGKILL)  # leftovers in its group
        for tree in trees:
            end_tree(tree)
        self._supervisor.stop()

    @staticmethod
    def _terminate(component: Component, grace_s: float = STOP_GRACE_S) -> None:
        tree = tree_of(component.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.pid, signal.SIGTERM if grace_s else signal.SIGKILL)
        try:
            component.process.wait(timeout=grace_s or None)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.pid, signal.SIGKILL)
            component.process.wait()
        end_tree(tree)

    # -- inspection and signals ----------------------------------------------------------

    def component(self, name: str) -> Component:
        with self._lock:
            return find_component(self._components, name)

    def components(self, role: str | None = None) -> list[Component]:
        with self._lock:
            return with_role(self._components, role)

    def signal(self, name: str, signum: int) -> int:
        """Send a real signal to a component's process; returns the pid signalled."""
        component = self.component(name)
        os.kill(component.pid, signum)
        return component.pid

    def delay_next_restart(self, name: str, delay_s: float) -> None:
        """The supervisor waits `delay_s` before restarting this component next time."""
        self._supervisor.delay_next_restart(name, delay_s)

    def restart(self, name: str, down_s: float = 0.0) -> Component:
        """Kill a component at once (no shutdown), keep it down `down_s`, start it again
        with the same spec: same port, same data directory."""
        component = self.component(name)
        with self._lock:
            self._components.pop(name, None)
        self._terminate(component, grace_s=0)
        if down_s > 0:
            time.sleep(down_s)
        return self.start(component.spec)

    def kill_now(self, name: str) -> Component:
        """SIGKILL a component's process group and forget it (for outages); see `revive`."""
        component = self.component(name)
        with self._lock:
            self._components.pop(name, None)
        self._terminate(component, grace_s=0)
        return component

    def revive(self, handle: Handle) -> Component:
        return self.start(handle.spec)

    # -- process faults (capabilities Kill, Evict, Pause, Restart, Outage) ---------------

    def kill(self, name: str, restart_delay_s: float) -> str:
        """SIGKILL; the supervisor restarts the component after the delay."""
        self.delay_next_restart(name, restart_delay_s)
        return str(self.signal(name, signal.SIGKILL))

    def evict(self, name: str, grace_s: float) -> str:
        """SIGTERM, up to `grace_s` to drain, then SIGKILL for the whole group."""
        component = self.component(name)
        os.kill(component.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and component.alive():
            time.sleep(POLL_INTERVAL_S)
        if component.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(component.pid, signal.SIGKILL)
        return component.ident

    def pause(self, name: str, record: Callable[[HealEntry], None]) -> None:
        """SIGSTOP every process of the component (the process and all its descendants,
        parents first, so none forks a new one meanwhile). Each batch is handed to
        `record` before it is stopped, so a death in between leaves nothing unrecorded;
        descendants forked while the batch was stopped are found and stopped in turn."""
        root = self.component(name).pid
        stopped: set[int] = set()
        for turn in range(PAUSE_ROUNDS):
            # the root at once (it forks no more then), its descendants next
            tree = [root] if turn == 0 else process_tree(root)
            batch = [p for p in tree if p not in stopped]
            if not batch:
                return
            record(ProcessStopped(tuple((p, process_start_time(p)) for p in batch)))
            for pid in batch:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            stopped.update(batch)

    def resume(self, entry: HealEntry) -> None:
        if not isinstance(entry, ProcessStopped):
            raise TypeError(f"the local platform cannot resume a {type(entry).__name__}")
        entry.cont()

    def on_start(self, listener: Callable[[Handle], None]) -> None:
        """`listener` hears of every process started from now on: a first start, the
        supervisor's restart, a restart fault, a deploy."""
        with self._lock:
            self._listeners.append(listener)

    def started_entry(self, handle: Handle) -> ProcessStarted:
        pid = int(handle.ident)
        return ProcessStarted(pid, process_start_time(pid))
