"""Pods of the stub API server run as Docker containers, for the end-to-end contract
test of `durabench run --platform kubernetes` (no cluster can run here).

What a kubelet and a controller would do, done small and on loopback only:

- One sandbox container with `network_mode="none"` (its network namespace holds only
  loopback); every pod container joins it (`network_mode="container:<sandbox>"`), so
  all pods share one loopback. durabench picks free ports, so pods never collide, and
  no Docker bridge, no private address, is ever used. A Service's DNS names resolve
  to 127.0.0.1 through the sandbox's hosts file, which every joined container shares
  (`hosts: files` in nsswitch.conf, so no resolver is ever asked).
- A container is what the pod template says (`command`, `env`) on the image, with
  what `harness.platform.docker.host_mounts` gives a component with no paths of its
  own (the host's Python, the virtualenv, the project, read-only: the image's
  contents), and the pod's volumes: a PersistentVolumeClaim is a host directory the
  stub owns, a ConfigMap key (`subPath`) a host file holding its value. Nothing of
  the harness's own work directory is mounted: what workers write reaches the
  harness only through the platform's `collect`, as on a cluster. A pod sharing its
  process namespace gets docker-init as PID 1 (there the pause container is PID 1,
  never the command).
- Ready means the readinessProbe's `exec` command succeeds by `docker exec` (or the
  container runs, without a probe); once ready, a pod stays ready until its container
  stops or restarts (it is not probed again: that would only cost CPU here).
- Delete with grace 0 kills and removes the container; with a grace, SIGTERM and
  SIGKILL after it (`docker stop`). The stub starts the replacement.
- A portforward connection is a tiny relay run in the pod's container (`docker exec
  -i`): it dials 127.0.0.1:PORT in the shared loopback and carries stdin and stdout,
  as kubelets once did with nsenter and socat.

Every container carries the stub's label: `close` removes whatever is left.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.platform.base import ComponentSpec
from harness.platform.docker import host_mounts

__all__ = ["LABEL", "DockerPods", "ExecRelay"]

LABEL = "durabench.stub-pods"  # value: this DockerPods' id
POD_LABEL = "durabench.stub-pod"  # value: the pod's name
PROJECT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.prefix) / "bin"  # this virtualenv: the "image" has python, temporal
PROBE_INTERVAL_S = 0.3
WATCH_INTERVAL_S = 1.0
DEFAULT_GRACE_S = 30  # Kubernetes' terminationGracePeriodSeconds default
RELAY = """
import socket, sys, threading
remote = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def upstream():
    while data := sys.stdin.buffer.read1(65536):
        remote.sendall(data)
    remote.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := remote.recv(65536):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
"""


@dataclass
class _Pod:
    name: str
    grace_s: int
    claims: set[str]
    container: Any = None
    deleted: threading.Event = field(default_factory=threading.Event)
    created: threading.Event = field(default_factory=threading.Event)
    delete_grace_s: int | None = None
    thread: threading.Thread | None = None
    exit_code: int | None = None  # after a graceful delete: 143 = its SIGTERM ended it


class ExecRelay:
    """One connection to a port of the pods' loopback, through a relay in a pod: the
    socket-like end `_port_forward` pipes websocket bytes to and from."""

    def __init__(self, container_id: str, port: int) -> None:
        self._process = subprocess.Popen(
            ["docker", "exec", "-i", container_id, "python", "-c", RELAY, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def sendall(self, data: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(data)
        self._process.stdin.flush()

    def recv(self, size: int) -> bytes:
        assert self._process.stdout is not None
        return self._process.stdout.read1(size)

    def close(self) -> None:
        """End of the client's stream: the relay sees EOF and closes its side."""
        with contextlib.suppress(OSError):
            assert self._process.stdin is not None
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class DockerPods:
    """Runs the stub's pods as containers in one loopback-only sandbox."""

    def __init__(self, client: Any, image: str, root: Path) -> None:
        self.client = client
        self.image = image
        self.id = uuid.uuid4().hex[:8]
        self.root = root
        (root / "claims").mkdir(parents=True, exist_ok=True)
        (root / "pods").mkdir(exist_ok=True)
        self._nsswitch = root / "nsswitch.conf"
        self._nsswitch.write_text("hosts: files\n")  # Service names: the hosts file only
        self._pods: dict[str, _Pod] = {}
        self.started: list[str] = []  # every pod run, in order
        self._ending: list[_Pod] = []
        self._condemned: set[str] = set()  # claims deleted while a pod may still use them
        self._lock = threading.Lock()
        self.sandbox = client.containers.run(
            image,
            ["sleep", "86400"],
            name=f"stub-{self.id}-sandbox",
            labels={LABEL: self.id},
            network_mode="none",
            detach=True,
        )
        self.sandbox.reload()
        self._hosts = Path(self.sandbox.attrs["HostsPath"])

    # -- what the stub calls ---------------------------------------------------------

    def add_service(self, name: str, namespace: str) -> None:
        """The Service's DNS names resolve to the shared loopback in every pod (appended
        in place: the file is bind-mounted into each container)."""
        names = f"{name} {name}.{namespace} {name}.{namespace}.svc.cluster.local"
        with self._lock, self._hosts.open("a") as hosts:
            hosts.write(f"127.0.0.1 {names}\n")

    def delete_claim(self, name: str) -> None:
        """The claim's directory goes once no pod mounts it (see `settle`)."""
        with self._lock:
            self._condemned.add(name)

    def run(
        self,
        name: str,
        template: dict[str, Any],
        config_maps: dict[str, dict[str, str]],
        set_ready: Callable[[bool], None],
    ) -> None:
        """Start the pod's container in the background; `set_ready` follows its probe."""
        spec = template["spec"]
        container = spec["containers"][0]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {
            volumes[m["name"]]["persistentVolumeClaim"]["claimName"]
            for m in container.get("volumeMounts", [])
            if "persistentVolumeClaim" in volumes.get(m["name"], {})
        }
        pod = _Pod(name, int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)), claims)
        binds = self._binds(name, container, volumes, config_maps)
        shared_pids = bool(spec.get("shareProcessNamespace"))
        pod.thread = threading.Thread(
            target=self._live, args=(pod, container, binds, set_ready, shared_pids), daemon=True
        )
        with self._lock:
            self._pods[name] = pod
            self.started.append(name)
        pod.thread.start()

    def delete(self, name: str, grace_s: int | None = None) -> None:
        """Terminate the pod: kill (grace 0) or stop with the grace, then remove."""
        with self._lock:
            pod = self._pods.pop(name, None)
            if pod is None:
                return
            self._ending.append(pod)
        pod.delete_grace_s = pod.grace_s if grace_s is None else grace_s
        pod.deleted.set()

    def relay(self, name: str, port: int) -> ExecRelay:
        with self._lock:
            pod = self._pods.get(name)
        if pod is None or not pod.created.wait(30) or pod.container is None:
            raise OSError(f"pod {name} has no container")
        return ExecRelay(str(pod.container.id), port)

    def logs(self, name: str, tail: int) -> str:
        with self._lock:
            pod = self._pods.get(name)
        if pod is None or pod.container is None:
            return ""
        from docker.errors import DockerException

        try:
            return bytes(pod.container.logs(tail=tail)).decode(errors="replace")
        except DockerException as exc:
            return f"(no logs: {exc})"

    # -- what tests look at ----------------------------------------------------------

    def exit_codes(self) -> dict[str, int]:
        """How each gracefully deleted pod's container ended (128 + the ending signal)."""
        with self._lock:
            return {p.name: p.exit_code for p in self._ending if p.exit_code is not None}

    def containers(self) -> list[str]:
        """Names of this stub's pod containers the engine still has (the sandbox aside)."""
        found = self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.id}"})
        return sorted(c.name for c in found if c.id != self.sandbox.id)

    def claims(self) -> list[str]:
        return sorted(p.name for p in (self.root / "claims").iterdir())

    def settle(self, timeout_s: float = 60.0) -> None:
        """Wait until every deleted pod's container is gone, then remove the directories
        of deleted claims no running pod mounts (a claim in use outlives its delete)."""
        with self._lock:
            ending = list(self._ending)
        for pod in ending:
            if pod.thread is not None:
                pod.thread.join(timeout_s)
        with self._lock:
            in_use = {c for p in self._pods.values() for c in p.claims}
            gone = self._condemned - in_use
            self._condemned -= gone
        for claim in gone:
            shutil.rmtree(self.root / "claims" / claim, ignore_errors=True)

    def close(self) -> None:
        """Kill every pod, then remove every container carrying this stub's label."""
        from docker.errors import DockerException

        with self._lock:
            names = list(self._pods)
        for name in names:
            self.delete(name, 0)
        self.settle(timeout_s=30)
        for container in self.client.containers.list(
            all=True, filters={"label": f"{LABEL}={self.id}"}
        ):
            with contextlib.suppress(DockerException):
                container.remove(force=True)

    # -- a pod's life ----------------------------------------------------------------

    def _binds(
        self,
        pod: str,
        container: dict[str, Any],
        volumes: dict[str, dict[str, Any]],
        config_maps: dict[str, dict[str, str]],
    ) -> list[str]:
        """`host:container:mode` binds: the image's contents, then the pod's volumes."""
        image = host_mounts(ComponentSpec(pod, "pod", ("python",)), self.root, PROJECT)
        del image[str(self.root)]  # host_mounts' work directory: a pod has its claim instead
        binds = [f"{host}:{b['bind']}:{b['mode']}" for host, b in image.items()]
        binds.append(f"{self._nsswitch}:/etc/nsswitch.conf:ro")
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            target = mount["mountPath"]
            if "persistentVolumeClaim" in volume:
                source = self.root / "claims" / volume["persistentVolumeClaim"]["claimName"]
                source.mkdir(exist_ok=True)
                binds.append(f"{source}:{target}:rw")
            elif "configMap" in volume:
                data = config_maps[volume["configMap"]["name"]]
                keys = [mount["subPath"]] if "subPath" in mount else sorted(data)
                directory = self.root / "pods" / pod / mount["name"]
                directory.mkdir(parents=True, exist_ok=True)
                for key in keys:
                    (directory / key).write_text(data[key])
                source = directory / mount["subPath"] if "subPath" in mount else directory
                binds.append(f"{source}:{target}:ro")
            elif "emptyDir" in volume:
                source = self.root / "pods" / pod / mount["name"]
                source.mkdir(parents=True, exist_ok=True)
                binds.append(f"{source}:{target}:rw")
            else:
                raise ValueError(f"pod {pod}: volume {mount['name']} of an unsupported type")
        return binds

    def _live(
        self,
        pod: _Pod,
        container: dict[str, Any],
        binds: list[str],
        set_ready: Callable[[bool], None],
        shared_pids: bool,
    ) -> None:
        """Create the container, follow its readiness until the pod is deleted, then
        terminate it as the delete asked."""
        from docker.errors import DockerException

        environment = {e["name"]: e["value"] for e in container.get("env", [])}
        environment.update(
            PATH=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",  # the image's python and temporal
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",  # the project is read-only
        )
        try:
            pod.container = self.client.containers.run(
                self.image,
                list(container["command"]),
                name=f"stub-{self.id}-{pod.name}",
                labels={LABEL: self.id, POD_LABEL: pod.name},
                environment=environment,
                volumes=binds,
                working_dir=str(PROJECT),
                network_mode=f"container:{self.sandbox.id}",
                restart_policy={"Name": "always"},  # restartPolicy: Always, as in a pod
                init=shared_pids,  # shareProcessNamespace: PID 1 is not the command
                detach=True,
            )
        except DockerException:
            return  # never ready: the platform's wait reports it with the (empty) log
        finally:
            pod.created.set()
        probe = (container.get("readinessProbe") or {}).get("exec", {}).get("command")
        ready, restarts = False, 0
        while not pod.deleted.wait(WATCH_INTERVAL_S if ready else PROBE_INTERVAL_S):
            try:
                pod.container.reload()
            except DockerException:
                break
            running = pod.container.status == "running"
            now = int(pod.container.attrs.get("RestartCount", 0))
            if ready and running and now == restarts:
                continue
            ok = running and (probe is None or self._probe(pod.container, probe))
            if ok != ready:
                set_ready(ok)
            ready, restarts = ok, now
        self._terminate(pod)

    @staticmethod
    def _probe(container: Any, command: list[str]) -> bool:
        from docker.errors import DockerException

        try:
            return int(container.exec_run(command).exit_code) == 0
        except DockerException:
            return False

    @staticmethod
    def _terminate(pod: _Pod) -> None:
        from docker.errors import DockerException

        if pod.container is None:
            return
        with contextlib.suppress(DockerException):
            if pod.delete_grace_s:
                pod.container.stop(timeout=pod.delete_grace_s)
                pod.container.reload()
                pod.exit_code = int(pod.container.attrs["State"]["ExitCode"])
            pod.container.remove(force=True)
