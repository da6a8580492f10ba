"""The embedded Postgres server, and the DSN and schema every Postgres backend uses.

With no `--pg-dsn`, a backend asks `postgres_components` for one `store` component:
a real Postgres on a free 127.0.0.1 port, its data directory under the backend's
work dir, `fsync=on` and `synchronous_commit=on` (durability numbers must be
honest), password (scram) authentication on 127.0.0.1 only. The component runs
`python -m harness.postgres serve`, which runs initdb on the first start only and
then execs `postgres` in the foreground, so a restart (the fault issue: immediate
shutdown, then start) reuses the same data directory. The platform's readiness
check is the TCP port; a server that accepts TCP may still be starting, so callers
also `wait_ready` (SELECT 1) before use.

Postgres refuses to run as root. As root, `serve` makes the data directory belong
to an unprivileged user (`$DURABENCH_PG_USER`, else `postgres` when it exists, else
a `durabench` system user it creates, as the pgserver wheel does), adds search
permission (o+x, not listing) to its parent directories, and drops to that user
before initdb and postgres.

With `--pg-dsn`, durabench uses that server: each run gets its own schema
(`schema_for`) and touches nothing else. Workers reach it through
`with_search_path(dsn, schema)`.

Binaries come from `$DURABENCH_PG_BIN`, else PATH, else
`/usr/lib/postgresql/<highest>/bin`, else the `pgserver` wheel
(`pip install 'durabench[postgres]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import glob
import hashlib
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import BackendError, ComponentError
from harness.masking import mask_dsn, mask_text
from harness.platform.local import ComponentSpec, free_port

if TYPE_CHECKING:
    from backends.base import BackendEnv

__all__ = [
    "DEFAULT_SETTINGS",
    "PG_BIN_ENV",
    "PG_USER_ENV",
    "EmbeddedServer",
    "backend_dsn",
    "check_connection",
    "create_schema",
    "embedded_server",
    "find_postgres_bin",
    "postgres_components",
    "schema_for",
    "schema_name",
    "server_user_problem",
    "wait_ready",
    "wait_ready_async",
    "with_search_path",
]

BINARIES = ("pg_ctl", "initdb", "postgres")
SYSTEM_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_USER_ENV = "DURABENCH_PG_USER"
PG_BIN_ENV = "DURABENCH_PG_BIN"
PASSWORD_ENV = "DURABENCH_PG_PASSWORD"  # the wrapper reads the superuser password here
FALLBACK_PG_USER = "durabench"
SUPERUSER = "postgres"  # the role initdb creates; scram password on 127.0.0.1
DATABASE = "postgres"
CONNECT_TIMEOUT_S = 5
READY_TIMEOUT_S = 90.0  # first start includes initdb, on a loaded 2-core machine
MAX_IDENTIFIER = 63
DEFAULT_SETTINGS: Mapping[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "300",
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",  # TCP only: socket paths under deep work dirs are too long
}
_PR_SET_PDEATHSIG = 1


# -- binaries --------------------------------------------------------------------------


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in BINARIES)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in re.findall(r"\d+", version)) or (0,)


def find_postgres_bin() -> Path:
    """The directory holding pg_ctl, initdb and postgres: `$DURABENCH_PG_BIN` when set,
    else PATH, then the highest `/usr/lib/postgresql/*/bin`, then the pgserver wheel."""
    tried = []
    forced = os.environ.get(PG_BIN_ENV)
    if forced:
        if _complete(Path(forced)):
            return Path(forced)
        raise ComponentError(
            f"${PG_BIN_ENV}={forced}: expected {', '.join(BINARIES)} in that directory"
        )
    on_path = shutil.which("postgres") or shutil.which("pg_ctl")
    if on_path:
        directory = Path(on_path).resolve().parent  # symlinks: postgres finds share/ next to it
        if _complete(directory):
            return directory
        tried.append(f"PATH ({directory} lacks some of {', '.join(BINARIES)})")
    else:
        tried.append("PATH")
    for candidate in sorted(glob.glob(SYSTEM_BIN_GLOB), key=_version_key, reverse=True):
        if _complete(Path(candidate)):
            return Path(candidate)
    tried.append(SYSTEM_BIN_GLOB)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if _complete(bundled):
            return bundled
        tried.append(f"pgserver wheel ({bundled} incomplete)")
    else:
        tried.append("pgserver wheel (not installed)")
    raise ComponentError(
        "no Postgres binaries (pg_ctl, initdb, postgres) found; tried "
        + ", ".join(tried)
        + ". Fix: pip install 'durabench[postgres]' (bundled binaries via pgserver), "
        "or apt-get install postgresql, or pass --pg-dsn to use an existing server"
    )


# -- DSNs and schemas ------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedServer:
    """One embedded server: its directory (data in `<dir>/data`), port and superuser
    password (scram on 127.0.0.1, so other local users cannot walk in)."""

    directory: Path
    port: int
    password: str

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def component(
        self, name: str = "store", settings: Mapping[str, str] | None = None
    ) -> ComponentSpec:
        """The `store` component that runs it (restartable on the same data directory)."""
        argv = [
            sys.executable,
            "-m",
            "harness.postgres",
            "serve",
            "--datadir",
            str(self.directory),
            "--port",
            str(self.port),
        ]
        for key, value in (settings or {}).items():
            argv += ["--set", f"{key}={value}"]
        return ComponentSpec(
            name=name,
            role="store",
            argv=tuple(argv),
            port=self.port,
            env={PASSWORD_ENV: self.password},
            ready_timeout_s=READY_TIMEOUT_S,
        )


_servers: dict[Path, EmbeddedServer] = {}  # directory -> server, in this process


def embedded_server(directory: Path) -> EmbeddedServer:
    """The embedded server for a directory: a free port and a fresh password, chosen
    once per directory in this process (so components() and the DSN agree)."""
    directory = directory.resolve()
    if directory not in _servers:
        _servers[directory] = EmbeddedServer(directory, free_port(), secrets.token_hex(16))
    return _servers[directory]


def postgres_components(
    env: BackendEnv, name: str = "store", settings: Mapping[str, str] | None = None
) -> list[ComponentSpec]:
    """The embedded server as one `store` component, or [] when `--pg-dsn` is set.
    `settings` override DEFAULT_SETTINGS (e.g. {"synchronous_commit": "off"})."""
    if env.external.pg_dsn:
        return []
    find_postgres_bin()  # fail now, with the fix, rather than in the component log
    return [embedded_server(env.workdir / name).component(name, settings)]


def backend_dsn(env: BackendEnv, name: str = "store") -> str:
    """The DSN workers use: the external server's, or the embedded server's."""
    if env.external.pg_dsn:
        return env.external.pg_dsn
    return embedded_server(env.workdir / name).dsn


def worker_dsn(env: BackendEnv, dsn: str) -> str:
    """The DSN a WORKER dials: host and port routed over the `worker->store` link (through
    the fault proxy when the scenario cuts that link). The harness's own reads dial `dsn`."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "127.0.0.1")
    if host.startswith("/"):
        return dsn  # a Unix socket: no TCP link to cut
    port = int(params.get("port") or 5432)
    dial_host, dial_port = env.dial("worker->store", host, port)
    params.update(host=dial_host, port=str(dial_port))
    return make_conninfo("", **params)


def schema_name(bench_id: str, backend_name: str) -> str:
    """`db_<bench id>_<backend>`, lower case, a valid unquoted identifier of at most 63
    characters (a hash of the full name keeps long names unique)."""
    raw = f"db_{bench_id}_{backend_name}".lower()
    name = re.sub(r"[^a-z0-9_]", "_", raw)
    if len(name) > MAX_IDENTIFIER:
        digest = hashlib.blake2b(raw.encode(), digest_size=5).hexdigest()
        name = f"{name[: MAX_IDENTIFIER - len(digest) - 1]}_{digest}"
    return name


def schema_for(env: BackendEnv, backend_name: str) -> str:
    """This run's schema for one backend (see `schema_name`)."""
    return schema_name(env.bench_id, backend_name)


def with_search_path(dsn: str, schema: str) -> str:
    """The DSN (as key=value conninfo) with `search_path` set to `schema` on connect."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(dsn)
    except Exception as exc:
        raise BackendError(f"invalid Postgres DSN {_mask(dsn)}: {exc}") from None
    options = str(params.get("options") or "")
    options = f"{options} -csearch_path={schema}".strip()
    return make_conninfo(dsn, options=options)


def _mask(dsn: str) -> str:
    return mask_dsn(dsn)


def _target(dsn: str) -> str:
    """host:port as user U, database D — what a connection attempt tried."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return "(unparsable DSN)"
    host = params.get("host") or params.get("hostaddr") or "localhost (default socket)"
    port = params.get("port") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or pwd.getpwuid(os.getuid()).pw_name
    dbname = params.get("dbname") or user
    return f"{host}:{port} as user {user!r}, database {dbname!r}"


def _explain(message: str) -> str:
    lowered = message.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return "wrong credentials (password authentication failed)"
    if "does not exist" in lowered and "database" in lowered:
        return "the database does not exist (create it, or name an existing one)"
    if "role" in lowered and "does not exist" in lowered:
        return "the user (role) does not exist"
    if "connection refused" in lowered:
        return "connection refused: no server is listening there"
    if "timeout" in lowered or "timed out" in lowered:
        return f"no answer within {CONNECT_TIMEOUT_S}s (host unreachable or firewalled)"
    if "pg_hba.conf" in lowered:
        return "the server refuses this client (pg_hba.conf)"
    return "cannot connect"


def check_connection(dsn: str) -> None:
    """Connect once and run `SELECT 1`; raise one BackendError naming the masked DSN,
    what was tried and what is wrong (unreachable, credentials, missing database)."""
    import psycopg

    target = _target(dsn)
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split())
        raise BackendError(
            f"Postgres {_mask(dsn)}: {_explain(detail)}; tried to connect to {target} "
            f"and run SELECT 1 (server said: {mask_text(detail)[:300]})"
        ) from None


def wait_ready(dsn: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Block until `SELECT 1` works (a started server accepts TCP before it can serve)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.Error as exc:
            last = " ".join(str(exc).split())
            time.sleep(0.1)
    raise ComponentError(
        f"Postgres {_mask(dsn)} did not answer SELECT 1 within {timeout_s:g}s: {last}"
    )


async def wait_ready_async(dsn: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """`wait_ready` for async callers (backend setup)."""
    await asyncio.to_thread(wait_ready, dsn, timeout_s)


def create_schema(dsn: str, schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS — the only thing durabench creates outside its tables."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


# -- the `serve` wrapper (runs as the store component) ---------------------------------


def _die_with_parent() -> None:
    """Re-arm PR_SET_PDEATHSIG: Linux clears it when the process changes its uid."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        sys.exit("durabench exited before its Postgres started")


def _server_user() -> pwd.struct_passwd:
    """The unprivileged user to run Postgres as when we are root."""
    wanted = os.environ.get(PG_USER_ENV)
    if wanted:
        try:
            return pwd.getpwnam(wanted)
        except KeyError:
            raise ComponentError(f"${PG_USER_ENV}={wanted!r}: no such user") from None
    for name in (SUPERUSER, FALLBACK_PG_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise ComponentError(
            "Postgres refuses to run as root and there is no 'postgres' user nor useradd to "
            f"create one; create an unprivileged user and set ${PG_USER_ENV}"
        )
    done = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_PG_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    try:  # a concurrent start may have created it first
        return pwd.getpwnam(FALLBACK_PG_USER)
    except KeyError:
        raise ComponentError(
            f"cannot create the system user {FALLBACK_PG_USER!r} for Postgres: "
            f"{done.stderr.strip()}; create one and set ${PG_USER_ENV}"
        ) from None


def server_user_problem() -> str | None:
    """Why the embedded server could not drop root here, or None (for `durabench doctor`)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(PG_USER_ENV)
    if wanted:
        try:
            pwd.getpwnam(wanted)
        except KeyError:
            return f"${PG_USER_ENV}={wanted!r}: no such user"
        return None
    for name in (SUPERUSER, FALLBACK_PG_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return None
    if shutil.which("useradd") is None:
        return (
            "running as root with no 'postgres' user and no useradd: create an unprivileged "
            f"user and set ${PG_USER_ENV}"
        )
    return None


def _open_path_for(directory: Path) -> None:
    """Give others search (x) permission on every parent, so the server user can reach
    its data directory; listing stays forbidden."""
    for parent in directory.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _prepare_as_root(base: Path) -> None:
    user = _server_user()
    _open_path_for(base)
    for path in [base, *base.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            os.lchown(path, user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = str(base)
    os.environ["USER"] = os.environ["LOGNAME"] = user.pw_name


def _initdb(bindir: Path, data: Path, password: str) -> None:
    """initdb into a sibling directory, then rename: a killed initdb leaves no half cluster."""
    staging = data.with_name(data.name + ".init")
    shutil.rmtree(staging, ignore_errors=True)
    # the password goes through a private directory of the server user, never argv
    private = Path(tempfile.mkdtemp(prefix="durabench-initdb-"))
    pwfile = private / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    command = [
        str(bindir / "initdb"),
        "-D",
        str(staging),
        "-U",
        SUPERUSER,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        f"--pwfile={pwfile}",
        "--encoding=UTF8",
        "--locale=C",
        "--no-instructions",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=staging.parent
        )
    finally:
        shutil.rmtree(private, ignore_errors=True)
    if done.returncode != 0:
        raise ComponentError(
            f"initdb failed ({' '.join(command)}):\n{done.stdout}\n{done.stderr}".strip()
        )
    staging.rename(data)


NETWORK_HBA = "host all all all scram-sha-256  # durabench --admit-network\n"


def admit_network(data: Path) -> None:
    """Password clients from any host (a pod on Kubernetes: other pods dial its Service)."""
    hba = data / "pg_hba.conf"
    text = hba.read_text()
    if NETWORK_HBA not in text:
        hba.write_text(text + NETWORK_HBA)


def serve(base: Path, port: int, settings: Mapping[str, str], *, network: bool = False) -> None:
    """initdb on the first start only, then exec postgres in the foreground; `network`
    listens on every address and admits password clients from any host."""
    bindir = find_postgres_bin()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ComponentError(f"data directory {base} is not writable: {exc}") from None
    if os.geteuid() == 0:
        _prepare_as_root(base)
    _die_with_parent()
    data = base / "data"
    if not (data / "PG_VERSION").is_file():
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            raise ComponentError(f"${PASSWORD_ENV} must hold the superuser password for initdb")
        _initdb(bindir, data, password)
    data.chmod(0o700)
    if network:
        admit_network(data)
        settings = {"listen_addresses": "*", **settings}
    argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
    for key, value in {**DEFAULT_SETTINGS, **settings}.items():
        argv += ["-c", f"{key}={value}"]
    os.environ.pop(PASSWORD_ENV, None)
    print(f"durabench: exec {' '.join(argv)}", flush=True)
    os.chdir(data)
    os.execv(argv[0], argv)


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=value")
    return key, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.postgres")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run an embedded Postgres in the foreground")
    run.add_argument("--datadir", required=True, type=Path)
    run.add_argument("--port", required=True, type=int)
    run.add_argument("--set", dest="settings", action="append", type=_setting, default=[])
    run.add_argument(
        "--admit-network",
        action="store_true",
        help="listen on every address, password clients from any host (Kubernetes pods)",
    )
    commands.add_parser("bin", help="print the directory of the Postgres binaries")
    args = parser.parse_args(argv)
    try:
        if args.command == "bin":
            print(find_postgres_bin())
            return
        serve(args.datadir.resolve(), args.port, dict(args.settings), network=args.admit_network)
    except ComponentError as exc:
        sys.exit(f"durabench postgres: {exc}")


if __name__ == "__main__":
    main()
