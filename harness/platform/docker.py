"""The Docker platform: every component is a container on the host network.

Containers run the host's own Python, project and virtualenv, bind-mounted read-only
at the same paths (so `sys.executable` and every path in a ComponentSpec mean the
same inside and out); the component's work directory is mounted read-write. Host
networking keeps every port on 127.0.0.1, so readiness checks, the fault proxy and
the results directory work exactly as on the local platform and no traffic leaves
loopback. The image needs no Python of its own: `deploy/docker/build-local-image.sh`
builds one from busybox-static without pulling anything. A spec's `image` (a deploy
fault's new tag) replaces the platform's image for that component.

Every container carries the labels `durabench.run=<bench id>`,
`durabench.component=<name>` and `durabench.role=<role>`; `stop_all` removes every
container of the run, and `durabench heal` only ever touches containers whose run
label matches its state file. Components marked `restart` are restarted by a
supervisor thread (the same container, started again, as a pod restarts), so a
kill is followed by a restart after the fault's delay and the restarts are counted.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from harness.errors import ComponentError
from harness.heal_entry import HealEntry
from harness.platform.base import ComponentSpec, Handle, find_component, with_role
from harness.platform.local import wait_ready
from harness.platform.supervisor import Supervisor

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container as DockerContainer

__all__ = [
    "DEFAULT_IMAGE",
    "IMAGE_ENV",
    "LABEL_COMPONENT",
    "LABEL_ROLE",
    "LABEL_RUN",
    "Container",
    "ContainerPaused",
    "ContainerStarted",
    "DockerPlatform",
    "docker_client",
    "heal_container",
    "host_mounts",
    "sweep_containers",
]

IMAGE_ENV = "DURABENCH_DOCKER_IMAGE"
DEFAULT_IMAGE = "durabench-local:latest"
LABEL_RUN = "durabench.run"
LABEL_COMPONENT = "durabench.component"
LABEL_ROLE = "durabench.role"
POLL_INTERVAL_S = 0.1
STOP_GRACE_S = 5
LOG_TAIL_LINES = 30
SYSTEM_MOUNTS = ("/usr",)  # shared libraries, the dynamic loader, Postgres binaries and data
ACCOUNT_FILES = ("/etc/passwd", "/etc/group")  # Postgres drops root to a named user
# Servers and stores run as PID 1 themselves, as in their official images (Postgres
# handles its signals and reaps its children, and `harness.postgres serve` takes a
# parent pid of 1 as "durabench died"); everything else gets docker-init as PID 1,
# which forwards SIGTERM to Python, so an evict drains like a process would.
SELF_INIT_ROLES = frozenset({"server", "store"})
ENV_DENYLIST = frozenset({"HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "DISPLAY"})
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass(frozen=True)
class ContainerStarted(HealEntry, tag="container"):
    """A container durabench started: removed on heal if it still carries `run`."""

    counter = "containers_removed"
    id: str
    run: str

    def undo(self) -> bool:
        return _undone(heal_container(self))


@dataclass(frozen=True)
class ContainerPaused(HealEntry, tag="docker_paused"):
    """A container paused by a fault: unpaused on heal if it still carries `run`."""

    counter = "containers_unpaused"
    thaw_first = True
    id: str
    run: str

    def undo(self) -> bool:
        return _undone(heal_container(self))


def _undone(outcome: str) -> bool:
    if outcome == "unreachable":
        raise ConnectionError("no Docker engine answers")
    return outcome in ("unpaused", "removed")


def docker_client() -> DockerClient:
    """A client for the engine at $DOCKER_HOST (default: /var/run/docker.sock) that answers."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        raise ComponentError(
            "the docker platform needs the docker SDK: pip install 'durabench[docker]'"
        ) from None
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise ComponentError(
            f"no Docker engine answers at {where} ({exc}); install and start one "
            "(apt-get install -y docker.io && dockerd &), or use --platform local"
        ) from None
    return client


def _covered(path: Path, mounts: dict[str, dict[str, str]], mode: str | None = None) -> bool:
    return any(
        (path == Path(m) or Path(m) in path.parents) and (mode is None or b["mode"] == mode)
        for m, b in mounts.items()
    )


def _absolute_paths(spec: ComponentSpec) -> list[Path]:
    tokens = [*spec.argv, *spec.env.values()]
    found = []
    for token in tokens:
        value = token.split("=", 1)[1] if token.startswith("--") and "=" in token else token
        if value.startswith("/") and "\n" not in value:
            found.append(Path(value))
    return found


def host_mounts(spec: ComponentSpec, workdir: Path, cwd: Path) -> dict[str, dict[str, str]]:
    """The bind mounts one component needs, at the same paths as on the host: the system's
    /usr, the Python installation, the virtualenv and the project read-only; the work
    directory read-write; any other absolute path the spec names (read-only when it
    exists, its nearest existing directory read-write when it is an output)."""
    import harness

    mounts: dict[str, dict[str, str]] = {}

    def add(path: Path, mode: str) -> None:
        key = str(path)
        if key == "/":
            raise ComponentError(f"{spec.name}: refusing to bind-mount / into a container")
        if key not in mounts or mode == "rw":
            mounts[key] = {"bind": key, "mode": mode}

    for system in SYSTEM_MOUNTS:
        add(Path(system), "ro")
    for account in ACCOUNT_FILES:
        if Path(account).exists():
            add(Path(account), "ro")
    project = Path(harness.__file__).resolve().parents[1]
    for path in (Path(sys.base_prefix), Path(sys.prefix), project):
        if not _covered(path.resolve(), mounts):
            add(path.resolve(), "ro")
    if str(cwd) != "/" and not _covered(cwd, mounts):
        add(cwd, "ro")
    add(workdir, "rw")
    for path in _absolute_paths(spec):
        if path.exists():
            if not _covered(path, mounts):
                add(path.resolve() if path.is_symlink() else path, "ro")
            continue
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        if not _covered(parent, mounts, "rw"):
            add(parent, "rw")
    return mounts


@dataclass
class Container:
    """A running component: its spec and its container."""

    spec: ComponentSpec
    container: DockerContainer
    restarts: int = 0

    @property
    def ident(self) -> str:
        return str(self.container.short_id)

    @property
    def id(self) -> str:
        return str(self.container.id)

    def status(self) -> str:
        """created | running | paused | restarting | exited | dead | removed."""
        from docker.errors import NotFound

        try:
            self.container.reload()
        except NotFound:
            return "removed"
        return str(self.container.status)

    def logs_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        from docker.errors import DockerException

        try:
            data: bytes = self.container.logs(tail=lines)
        except DockerException as exc:
            return f"(no logs: {exc})"
        return data.decode(errors="replace").rstrip() or "(empty log)"


class DockerPlatform:
    """Starts, supervises and removes component containers. Use as a context manager."""

    name = "docker"
    shares_host_filesystem = True

    def __init__(
        self,
        workdir: Path,
        bench_id: str,
        *,
        image: str | None = None,
        client: DockerClient | None = None,
    ) -> None:
        self.workdir = workdir.resolve()
        self.bench_id = bench_id
        self.image = image or os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.client = client or docker_client()
        self._check_image(self.image)
        self._components: dict[str, Container] = {}
        self._lock = threading.RLock()
        from docker.errors import DockerException

        self._supervisor = Supervisor(
            "durabench-docker-supervisor",
            self._components,
            self._lock,
            died=lambda c: c.status() in ("exited", "dead"),
            start_again=self._start_again,
            wait_ready=self._wait_ready,
            poll_s=POLL_INTERVAL_S,
            transient=(DockerException,),  # removed under us (stop, stop_all)
        )

    def _check_image(self, image: str) -> None:
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(image)
        except ImageNotFound:
            raise ComponentError(
                f"no image {image!r} in the Docker engine; build it with "
                "`sh deploy/docker/build-local-image.sh` (no registry needed) or `docker build -t "
                f"{image} .`, or set ${IMAGE_ENV}"
            ) from None

    def __enter__(self) -> DockerPlatform:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    # -- lifecycle -------------------------------------------------------------------

    def labels(self, spec: ComponentSpec) -> dict[str, str]:
        return {LABEL_RUN: self.bench_id, LABEL_COMPONENT: spec.name, LABEL_ROLE: spec.role}

    def container_name(self, spec: ComponentSpec) -> str:
        return _NAME_UNSAFE.sub("-", f"durabench-{self.bench_id}-{spec.name}")[:200]

    def start(self, spec: ComponentSpec) -> Container:
        """Create and start the container, wait until it is ready; ComponentError with
        the container's log tail when it exits or is not ready in time."""
        with self._lock:
            if spec.name in self._components:
                raise ComponentError(f"component {spec.name!r} is already running")
            component = Container(spec, self._run(spec))
            self._components[spec.name] = component
        try:
            self._wait_ready(component)
        except ComponentError:
            with self._lock:
                if self._components.get(spec.name) is component:
                    del self._components[spec.name]
            self._dispose(component)
            raise
        if spec.restart:
            self._supervisor.watch()
        return component

    @staticmethod
    def _start_again(component: Container) -> Container:
        """Start the same container again, as a pod restarts (the supervisor holds the lock)."""
        component.container.start()
        component.restarts += 1
        return component

    def _run(self, spec: ComponentSpec) -> DockerContainer:
        from docker.errors import DockerException

        environment = {k: v for k, v in os.environ.items() if k not in ENV_DENYLIST}
        environment.update(spec.env)
        environment.setdefault("PYTHONDONTWRITEBYTECODE", "1")  # the project is read-only
        cwd = Path.cwd()
        image = spec.image or self.image
        if image != self.image:
            self._check_image(image)  # the platform's own image was checked at the start
        try:
            container: DockerContainer = self.client.containers.run(
                image,
                command=list(spec.argv),
                name=self.container_name(spec),
                labels=self.labels(spec),
                environment=environment,
                volumes=host_mounts(spec, self.workdir, cwd),
                working_dir=str(cwd),
                network_mode="host",
                init=spec.role not in SELF_INIT_ROLES,
                detach=True,
            )
        except DockerException as exc:
            raise ComponentError(
                f"{spec.name}: docker could not start the container: {exc}"
            ) from None
        return container

    def _wait_ready(self, component: Container) -> None:
        def died() -> str | None:
            if component.status() not in ("exited", "dead", "removed"):
                return None
            return f"exited with code {component.container.attrs.get('State', {}).get('ExitCode')}"

        wait_ready(
            component.spec,
            f"{component.spec.name} (container {component.ident})",
            died,
            lambda: f":\n{component.logs_tail()}",
        )

    def _save_logs(self, component: Container) -> None:
        from docker.errors import DockerException

        with contextlib.suppress(DockerException, OSError):
            data: bytes = component.container.logs()
            with (self.log_dir / f"{component.spec.name}.log").open("ab") as log:
                log.write(
                    f"--- container {component.ident} restarts={component.restarts}\n".encode()
                )
                log.write(data)

    def _dispose(self, component: Container) -> None:
        """Keep its logs under <workdir>/logs, then remove the container (force)."""
        from docker.errors import DockerException

        self._save_logs(component)
        with contextlib.suppress(DockerException):
            component.container.remove(force=True)

    def stop(self, name: str) -> None:
        from docker.errors import DockerException

        with self._lock:
            component = self._components.pop(name, None)
        if component is not None:
            with contextlib.suppress(DockerException):
                component.container.stop(timeout=STOP_GRACE_S)
            self._dispose(component)

    def stop_all(self) -> None:
        """SIGTERM every container, remove them after a grace, then remove anything else
        labelled with this run (a container created by a racing restart)."""
        from docker.errors import DockerException

        self._supervisor.stop(timeout_s=0)
        with self._lock:
            components = list(self._components.values())
            self._components.clear()
        for component in components:
            with contextlib.suppress(DockerException):
                component.container.kill(signal="SIGTERM")
        deadline = time.monotonic() + STOP_GRACE_S
        for component in components:
            while time.monotonic() < deadline and component.status() in ("running", "paused"):
                if component.status() == "paused":
                    with contextlib.suppress(DockerException):
                        component.container.unpause()
                time.sleep(POLL_INTERVAL_S)
            self._dispose(component)
        self._supervisor.stop()
        sweep_containers(self.client, run=self.bench_id)

    # -- inspection --------------------------------------------------------------------

    def component(self, name: str) -> Container:
        with self._lock:
            return find_component(self._components, name)

    def components(self, role: str | None = None) -> list[Container]:
        with self._lock:
            return with_role(self._components, role)

    def signal(self, name: str, signum: int) -> str:
        """Send a real signal to the container's main process; returns the container id."""
        component = self.component(name)
        component.container.kill(signal=signum)
        return component.ident

    def delay_next_restart(self, name: str, delay_s: float) -> None:
        self._supervisor.delay_next_restart(name, delay_s)

    # -- process faults (the nemesis's injectors for this platform) ---------------------

    def kill(self, name: str, restart_delay_s: float) -> str:
        """`docker kill` (SIGKILL); the supervisor starts it again after the delay."""
        self.delay_next_restart(name, restart_delay_s)
        component = self.component(name)
        component.container.kill()
        return component.ident

    def evict(self, name: str, grace_s: float) -> str:
        """`docker stop -t grace`: SIGTERM, then SIGKILL after the grace period (blocking)."""
        component = self.component(name)
        component.container.stop(timeout=math.ceil(grace_s))
        return component.ident

    def pause(self, name: str) -> ContainerPaused:
        """`docker pause` (cgroup freezer); the entry lets `durabench heal` unpause it."""
        component = self.component(name)
        entry = ContainerPaused(component.id, self.bench_id)
        component.container.pause()
        return entry

    def resume(self, entry: HealEntry) -> None:
        from docker.errors import DockerException

        if not isinstance(entry, ContainerPaused):
            raise TypeError(f"the docker platform cannot resume a {type(entry).__name__}")
        with contextlib.suppress(DockerException):
            self.client.containers.get(entry.id).unpause()

    def restart(self, name: str, down_s: float = 0.0) -> Container:
        """Kill and remove the container, stay down `down_s`, start a new one on the same
        spec: same port, same (bind-mounted) data directory."""
        component = self.kill_now(name)
        if down_s > 0:
            time.sleep(down_s)
        return self.start(component.spec)

    def kill_now(self, name: str) -> Container:
        """Kill and remove the container, and forget the component until `revive`."""
        from docker.errors import DockerException

        component = self.component(name)
        with self._lock:
            self._components.pop(name, None)
        with contextlib.suppress(DockerException):
            component.container.kill()
        self._dispose(component)
        return component

    def revive(self, handle: Handle) -> Container:
        return self.start(handle.spec)

    def started_entry(self, handle: Handle) -> ContainerStarted:
        assert isinstance(handle, Container)
        return ContainerStarted(handle.id, self.bench_id)


def _client_or_none() -> DockerClient | None:
    try:
        return docker_client()
    except ComponentError:
        return None


def heal_container(
    entry: ContainerStarted | ContainerPaused, client: DockerClient | None = None
) -> str:
    """Undo one state-file entry: unpause (paused) or remove (started) the container,
    only when it still carries the run label of the entry. Returns what was done:
    unpaused | removed | gone | foreign | unreachable."""
    from docker.errors import DockerException, NotFound

    client = client or _client_or_none()
    if client is None:
        return "unreachable"
    try:
        container = client.containers.get(entry.id)
    except NotFound:
        return "gone"
    if container.labels.get(LABEL_RUN) != entry.run:
        return "foreign"  # not ours (or a recycled id): never touched
    try:
        if isinstance(entry, ContainerPaused):
            if container.status != "paused":
                return "gone"
            container.unpause()
            return "unpaused"
        container.remove(force=True)
    except NotFound:
        return "gone"
    except DockerException:
        return "gone"
    return "removed"


def sweep_containers(
    client: DockerClient, run: str | None = None, spare: frozenset[str] = frozenset()
) -> int:
    """Remove every container labelled with `run` (or any durabench run when None),
    except runs in `spare` (still owned by a live durabench). Returns how many."""
    from docker.errors import DockerException

    label = f"{LABEL_RUN}={run}" if run is not None else LABEL_RUN
    removed = 0
    try:
        found = client.containers.list(all=True, filters={"label": label})
    except DockerException:
        return 0
    for container in found:
        if container.labels.get(LABEL_RUN) in spare:
            continue
        with contextlib.suppress(DockerException):
            container.remove(force=True)
            removed += 1
    return removed
