"""The distributed deployment as real processes on loopback: PostgreSQL, Redis and every Airflow component.

The same shape as ``docker-compose.yaml`` (CeleryExecutor): ``airflow db migrate`` once, then
``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and ``celery worker``, each its own
process group with one shared environment, all under one work directory (``var/stack/`` for humans, a
pytest tmp dir in the tests). The compose file and this module share their component commands and
setting names (``COMPONENT_COMMANDS``, ``FIXED_SETTINGS``, ``PER_DEPLOYMENT_SETTINGS``);
``tests/deploy/test_compose.py`` holds them equal.

    .venv/bin/python -m devtools.stack up            # fleetsim (demo scenario) + the stack, until Ctrl-C
    .venv/bin/python -m devtools.stack status        # each process `up` started: running or not
    .venv/bin/python -m devtools.stack down          # stop them: SIGTERM, then SIGKILL after a grace

Every process the stack starts has a pid file in ``<workdir>/run/`` (``up`` itself, fleetsim, postgres,
redis and each Airflow component) while it runs; ``status`` and ``down`` read them.

From code (tests, benchmarks)::

    with running_fleetsim(scenario, work / "fleetsim") as url, running_stack(work, url) as stack:
        stack.client.unpause("patch_cycle__cu_alpha")
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devtools.local import REPO, SESSION_FACTORY, VENV_BIN, airflow_env, running_fleetsim

EXECUTOR = "CeleryExecutor"
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
ADMIN_USER = "admin"

# What each component runs, after ``airflow`` (the image's entrypoint prepends it in compose).
INIT_COMMAND: tuple[str, ...] = ("db", "migrate")
COMPONENT_COMMANDS: dict[str, tuple[str, ...]] = {
    "apiserver": ("api-server",),
    "scheduler": ("scheduler",),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer",),
    "worker": ("celery", "worker"),
}
# Flags only the one-host stack adds: its components share one log folder, so the api-server reads task
# and trigger logs from disk and nothing needs Airflow's log servers (which bind every interface).
# In compose each container serves its own logs to the api-server over the compose network.
LOCAL_FLAGS: dict[str, tuple[str, ...]] = {
    "worker": ("--skip-serve-logs",),
    "triggerer": ("--skip-serve-logs",),
}

# Settings every deployment has with these very values (compose's shared environment says the same).
FIXED_SETTINGS: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
    "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
    # One cache of botocore's service models per process for every AWS hook (patchcycle.hooks.aws_session).
    "AIRFLOW__AWS__SESSION_FACTORY": SESSION_FACTORY,
    # Workers import the task modules and cloud SDKs once, before forking (patchcycle.deploy.celery_worker).
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "patchcycle.deploy.celery_worker.CELERY_CONFIG",
}
# Settings every deployment has, with values of its own (hosts, secrets, paths).
PER_DEPLOYMENT_SETTINGS: tuple[str, ...] = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    # Where the DAGs and the package are (devtools.local.airflow_env sets them to the repository's).
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
)
# Settings only the one-host stack sets: loopback addresses and ports, and sizes for a 2-core machine.
LOCAL_SETTINGS: tuple[str, ...] = (
    "AIRFLOW__API__HOST",
    "AIRFLOW__API__PORT",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__API__WORKERS",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL",
)
# Settings every local run gets from devtools.local.airflow_env to suit fleetsim (fast polls and
# retries); a deployment keeps Patchcycle's and Airflow's defaults.
FLEETSIM_TUNING: tuple[str, ...] = (
    "AIRFLOW__PATCHCYCLE__POLL_SECONDS",
    "AIRFLOW__PATCHCYCLE__RETRY_DELAY_SECONDS",
    "AIRFLOW__LOGGING__LOGGING_LEVEL",
)

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
# Under the work directory: ``<name>.pid`` for every process the stack started, removed when it stops.
PID_DIR = "run"
# What ``up`` starts, in start order: itself (the supervisor), fleetsim, then the stack.
STACK_PROCESSES: tuple[str, ...] = ("up", "fleetsim", "postgres", "redis", *COMPONENT_COMMANDS)
DB_USER = DB_PASSWORD = DB_NAME = "airflow"


class StackError(RuntimeError):
    """The stack could not start, or a component died; the message names the log to read."""


def deployment_settings(
    *,
    db_url: str,
    broker_url: str,
    api_url: str,
    jwt_secret: str,
    secret_key: str,
    fernet_key: str,
    passwords_file: str,
) -> dict[str, str]:
    """The settings every component of one deployment shares: ``FIXED_SETTINGS`` plus its endpoints."""
    settings = {
        **FIXED_SETTINGS,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        # The driver stays explicit: a bare postgresql:// means psycopg 3 to newer SQLAlchemy.
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db_url}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__API__SECRET_KEY": secret_key,
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": passwords_file,
    }
    return settings


# --- prerequisites ------------------------------------------------------------------------------------

INSTALL_HINT = "run `make install` (scripts/install-services.sh installs it from Debian's packages)"


def postgres_bin() -> Path:
    """The PostgreSQL server binaries: ``$PATCHCYCLE_PG_BIN``, else Debian's newest, else the PATH."""
    candidates = []
    if configured := os.environ.get("PATCHCYCLE_PG_BIN"):
        candidates.append(Path(configured))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found).parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise StackError(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; {INSTALL_HINT}")


def redis_server() -> Path:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if not found:
        raise StackError(f"redis-server not found; {INSTALL_HINT}")
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy; raise ``StackError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except StackError:
            raise
        except Exception as exc:  # noqa: BLE001 - not up yet; the last error goes into the message
            last_error = exc
        time.sleep(interval)
    raise StackError(
        f"{what} not ready within {timeout:.0f}s" + (f" (last error: {last_error})" if last_error else "")
    )


# --- processes ----------------------------------------------------------------------------------------


@dataclass
class Component:
    """One long-running process, in its own process group, logging to one file."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    pid_file: Path | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            raise StackError(
                f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n{self.log_tail()}"
            )


def start_component(
    name: str,
    argv: list[str],
    env: dict[str, str],
    log_dir: Path,
    *,
    pid_dir: Path | None = None,
    **popen: Any,
) -> Component:
    """Start ``argv`` in its own process group, logging to ``log_dir/<name>.log`` (and with a pid file in
    ``pid_dir``, when given, until ``stop_components`` stops it)."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, never by name
            **popen,
        )
    return Component(name, proc, log_path, write_pid_file(pid_dir, name, proc.pid))


def stop_components(components: Iterable[Component], grace: float = 20.0) -> None:
    """SIGTERM every component's process group (and any descendant that left it), then SIGKILL leftovers."""
    import psutil

    components = list(components)
    tree: list[psutil.Process] = []
    for component in components:
        try:
            root = psutil.Process(component.proc.pid)
            tree.extend([root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass
        _signal_group(component.proc.pid, signal.SIGTERM)
    for proc in tree:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for component in components:
        _signal_group(component.proc.pid, signal.SIGKILL)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    for component in components:
        try:
            component.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if component.pid_file:
            component.pid_file.unlink(missing_ok=True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the group id is the leader's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


# --- pid files: what `status` and `down` know about a stack started elsewhere -------------------------


def write_pid_file(pid_dir: Path | None, name: str, pid: int) -> Path | None:
    """``pid_dir/<name>.pid`` holding ``pid`` (nothing when ``pid_dir`` is None); its path."""
    if pid_dir is None:
        return None
    pid_dir.mkdir(parents=True, exist_ok=True)
    path = pid_dir / f"{name}.pid"
    path.write_text(f"{pid}\n")
    return path


def recorded_process(pid_file: Path) -> Any:
    """The live process ``pid_file`` names (a ``psutil.Process``), or None.

    None too when the pid now belongs to a process started after the file was written: the recorded
    one is gone and its pid was reused (the file is written once its process exists).
    """
    import psutil

    try:
        pid = int(pid_file.read_text().split()[0])
        written = pid_file.stat().st_mtime
        proc = psutil.Process(pid)
        if proc.create_time() > written + 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def stack_status(workdir: Path) -> list[tuple[str, int | None, bool]]:
    """``(name, recorded pid or None, running)`` for every process ``up`` starts (``STACK_PROCESSES``)."""
    rows = []
    for name in STACK_PROCESSES:
        pid_file = Path(workdir) / PID_DIR / f"{name}.pid"
        try:
            pid: int | None = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        rows.append((name, pid, pid is not None and recorded_process(pid_file) is not None))
    return rows


def stop_recorded(workdir: Path, grace: float = 20.0, supervisor_grace: float = 120.0) -> list[str]:
    """Stop what the pid files in ``workdir/run`` name; what was done, one line each. Idempotent.

    ``up`` first (SIGTERM: it stops everything in order, as Ctrl-C does, within ``supervisor_grace``),
    then whatever is left, the Airflow components before the services they use: SIGTERM to each process
    group and its descendants (to PostgreSQL's postmaster only, SIGINT: a fast shutdown), SIGKILL after
    ``grace`` seconds. Pid files of processes no longer running are removed.
    """
    pid_dir = Path(workdir) / PID_DIR
    done: list[str] = []
    up = recorded_process(pid_dir / "up.pid")
    if up is not None:
        up.terminate()
        if not _wait_gone([up], supervisor_grace):
            done.append(f"up (pid {up.pid}) stopped the stack")
        else:
            up.kill()
            done.append(f"up (pid {up.pid}) did not stop within {supervisor_grace:.0f}s: killed")
    for names in (tuple(COMPONENT_COMMANDS), ("redis", "postgres", "fleetsim")):
        recorded = {name: recorded_process(pid_dir / f"{name}.pid") for name in names}
        done.extend(_terminate({n: proc for n, proc in recorded.items() if proc is not None}, grace))
    for name in STACK_PROCESSES:
        pid_file = pid_dir / f"{name}.pid"
        if pid_file.exists() and recorded_process(pid_file) is None:
            pid_file.unlink(missing_ok=True)
    # As root, PostgreSQL's cluster lives in a temp folder of its own, normally removed by `up`.
    location = Path(workdir) / "postgres.location"
    if location.exists() and not (pid_dir / "postgres.pid").exists():
        folder = Path(location.read_text().strip())
        if folder.name.startswith("patchcycle-pg-") and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"removed PostgreSQL's folder {folder}")
    return done


def _terminate(procs: dict[str, Any], grace: float) -> list[str]:
    """SIGTERM each process (its group and descendants; SIGINT to postgres), SIGKILL after ``grace``."""
    import psutil

    tree: list[Any] = []
    for name, proc in procs.items():
        try:
            descendants = proc.children(recursive=True)  # also those that left its process group
        except psutil.Error:
            descendants = []
        tree.extend([proc, *descendants])
        if name == "postgres":  # the postmaster stops its own processes
            _send(proc, signal.SIGINT)
            continue
        _signal_own_group(proc.pid, signal.SIGTERM)
        for member in [proc, *descendants]:
            _send(member, signal.SIGTERM)
    alive = _wait_gone(tree, grace)
    for proc in procs.values():
        if proc in alive:
            _signal_own_group(proc.pid, signal.SIGKILL)
    for proc in alive:
        _send(proc, signal.SIGKILL)
    survivors = _wait_gone(alive, 5)
    return [
        f"{name} (pid {proc.pid}) "
        + ("did not stop" if proc in survivors else "killed" if proc in alive else "stopped")
        for name, proc in procs.items()
    ]


def _send(proc: Any, sig: signal.Signals) -> None:
    import psutil

    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def _wait_gone(procs: list[Any], timeout: float) -> list[Any]:
    """Wait until every process has exited (a zombie has: only its parent can reap it); those left."""
    import psutil

    def alive(proc: Any) -> bool:
        try:
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    deadline = time.monotonic() + timeout
    while (left := [p for p in procs if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _signal_own_group(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid``'s process group when it leads one of its own (never this process's group)."""
    try:
        if os.getpgid(pid) == pid and pid != os.getpgrp():
            os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --- PostgreSQL and Redis -----------------------------------------------------------------------------


@dataclass
class Postgres:
    """A private PostgreSQL cluster: initdb into its own folder, loopback TCP and a socket in that folder."""

    folder: Path
    port: int
    bin: Path
    log_copy: Path
    run_as: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, *argv: str | Path, timeout: float) -> None:
        result = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **self.run_as
        )
        if result.returncode:
            raise StackError(f"{Path(str(argv[0])).name} failed: {result.stdout}{result.stderr}")

    def start(self, timeout: float = 60.0) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(DB_PASSWORD)
        self._chown(pwfile)
        self._run(
            self.bin / "initdb", "-D", self.data, "-U", DB_USER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions",
            timeout=timeout,
        )  # fmt: skip
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.folder}",
                "-c max_connections=200",
                # A throwaway cluster: durability buys nothing and costs the 2-core machine time.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            ]
        )
        self._run(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.folder / "postgres.log", "-o", options,
            "-w", "-t", str(int(timeout)), "start",
            timeout=timeout + 10,
        )  # fmt: skip
        self._run(
            self.bin / "createdb", "-h", self.folder, "-p", str(self.port), "-U", DB_USER, DB_NAME,
            timeout=30,
        )  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(
                    self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop", timeout=40
                )
            except (StackError, subprocess.TimeoutExpired):
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                _signal_group(pid, signal.SIGKILL)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if (self.folder / "postgres.log").exists():
            shutil.copyfile(self.folder / "postgres.log", self.log_copy)

    def _chown(self, path: Path) -> None:
        if "user" in self.run_as:
            shutil.chown(path, self.run_as["user"], self.run_as["group"])


@contextmanager
def running_postgres(workdir: Path, log_dir: Path) -> Iterator[Postgres]:
    """PostgreSQL in ``workdir/postgres`` (PostgreSQL refuses root: as root it runs as ``postgres``).

    As root the cluster goes into a fresh folder that user can reach (pytest's tmp dirs are private to
    root), removed afterwards; its log is copied into ``log_dir`` either way.
    """
    bin_dir = postgres_bin()
    run_as: dict[str, Any] = {}
    cleanup: Path | None = None
    if os.geteuid() == 0:
        import pwd

        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None:
            raise StackError("running as root and no `postgres` or `nobody` user to run PostgreSQL as")
        entry = pwd.getpwnam(user)
        run_as = {"user": entry.pw_uid, "group": entry.pw_gid}
        folder = Path(tempfile.mkdtemp(prefix="patchcycle-pg-"))
        cleanup = folder
        shutil.chown(folder, entry.pw_uid, entry.pw_gid)
        (workdir / "postgres.location").write_text(f"{folder}\n")
    else:
        folder = workdir / "postgres"
        folder.mkdir(parents=True, exist_ok=True)
    pg = Postgres(folder, free_port(), bin_dir, log_dir / "postgres.log", run_as)
    pid_file: Path | None = None
    try:
        pg.start()
        try:  # the postmaster's pid is the first line of its pid file
            postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
            pid_file = write_pid_file(workdir / PID_DIR, "postgres", postmaster)
        except (OSError, ValueError, IndexError):
            pass  # `status` shows it as not started; the stack itself does not need the file
        yield pg
    finally:
        pg.stop()
        if pid_file:
            pid_file.unlink(missing_ok=True)
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@contextmanager
def running_redis(workdir: Path, log_dir: Path, timeout: float = 20.0) -> Iterator[str]:
    """A private Redis on a free loopback port, no persistence; yields its URL."""
    import redis

    folder = workdir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        str(redis_server()), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
    ]  # fmt: skip
    component = start_component("redis", argv, dict(os.environ), log_dir, pid_dir=workdir / PID_DIR)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

        def pong() -> bool:
            component.check_alive()
            return bool(client.ping())

        wait_until("redis", pong, timeout, interval=0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_components([component], grace=10)


# --- the stack ----------------------------------------------------------------------------------------


@dataclass
class Stack:
    """A running deployment: its components, the REST client, and where everything is."""

    workdir: Path
    api_url: str
    env: dict[str, str]
    components: dict[str, Component]
    client: AirflowClient
    broker_url: str
    scheduler_health_url: str
    started_in: float = 0.0

    def check_alive(self) -> None:
        for component in self.components.values():
            component.check_alive()

    def pids(self) -> dict[str, int]:
        return {name: c.proc.pid for name, c in self.components.items()}

    def unhealthy(self) -> list[str]:
        """What is not healthy right now (empty when every component is): compose's healthchecks, here."""
        problems = [f"{n} exited ({c.proc.returncode})" for n, c in self.components.items() if not c.alive()]
        health = self.client.health()
        for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
            status = (health.get(part) or {}).get("status")
            if status != "healthy":
                problems.append(f"{part}: {status}")
        try:
            if httpx.get(self.scheduler_health_url, timeout=5).status_code != 200:
                problems.append("scheduler health endpoint not 200")
        except httpx.HTTPError as exc:
            problems.append(f"scheduler health endpoint: {exc}")
        if not self.celery_workers():
            problems.append("no Celery worker answers ping")
        return problems

    def celery_workers(self) -> list[str]:
        """Worker node names that answer a Celery ping through the broker."""
        return sorted(self._inspect().ping() or {})

    def celery_active_tasks(self) -> int:
        """Tasks the Celery workers are executing right now (each holds one worker slot)."""
        return sum(len(tasks) for tasks in (self._inspect().active() or {}).values())

    def _inspect(self):
        from celery import Celery

        app = Celery(broker=self.broker_url)
        return app.control.inspect(timeout=2.0)


def stack_env(
    home: Path,
    fleetsim_url: str,
    *,
    db_url: str,
    broker_url: str,
    api_port: int,
    scheduler_health_port: int,
    tenants_dir: Path | None = None,
    poll_seconds: float = 1.0,
    worker_concurrency: int = 4,
) -> dict[str, str]:
    """The one environment of every component: the local run's (connections to fleetsim, folders),
    the deployment's shared settings, and this machine's loopback addresses and sizes."""
    api_url = f"http://127.0.0.1:{api_port}"
    env = airflow_env(home, fleetsim_url, poll_seconds=poll_seconds, tenants_dir=tenants_dir)
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)  # set by the test session; not a deployment's
    env.update(
        deployment_settings(
            db_url=db_url,
            broker_url=broker_url,
            api_url=api_url,
            jwt_secret=secrets.token_urlsafe(32),
            secret_key=secrets.token_urlsafe(32),
            fernet_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            passwords_file=str(home / "passwords.json"),
        )
    )
    local = {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(scheduler_health_port),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        # Parse each DAG file every 2 minutes, not Airflow's 30 s ("Keeping this number low will increase
        # CPU usage": the option's description): on two cores re-parses took a sixth of a core during cycles.
        # A tenant file edited on a running stack shows in its DAG within 2 minutes.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
    }
    assert set(local) == set(LOCAL_SETTINGS)
    env.update(local)
    return env


@contextmanager
def running_stack(
    workdir: Path,
    fleetsim_url: str,
    *,
    tenants_dir: Path | None = None,
    poll_seconds: float = 1.0,
    worker_concurrency: int = 4,
    extra_env: dict[str, str] | None = None,
    expect_dags: Iterable[str] = (),
    timeout: float = 240.0,
) -> Iterator[Stack]:
    """Start PostgreSQL, Redis, migrate, start every Airflow component; yield when all are healthy.

    Everything stops on exit (also on failure): every component's process group, then Redis and
    PostgreSQL. ``expect_dags`` must be visible through the API before the stack counts as ready.
    ``extra_env`` goes over everything else (e.g. ``AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE``).
    """
    started = time.monotonic()
    workdir = Path(workdir).resolve()
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    home = workdir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        pg = stack.enter_context(running_postgres(workdir, log_dir))
        broker_url = stack.enter_context(running_redis(workdir, log_dir))
        api_port, scheduler_port = free_port(), free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        password = secrets.token_urlsafe(12)
        env = stack_env(
            home,
            fleetsim_url,
            db_url=pg.url,
            broker_url=broker_url,
            api_port=api_port,
            scheduler_health_port=scheduler_port,
            tenants_dir=tenants_dir,
            poll_seconds=poll_seconds,
            worker_concurrency=worker_concurrency,
        )
        env.update(extra_env or {})
        Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).write_text(
            json.dumps({ADMIN_USER: password}) + "\n"
        )
        # For running the airflow CLI against this stack by hand (`set -a; . stack.env`); holds secrets.
        settings_file = workdir / "stack.env"
        settings_file.touch(mode=0o600)
        settings_file.write_text(
            "".join(
                f"{k}={shlex.quote(v)}\n"
                for k, v in sorted(env.items())
                if k.startswith(("AIRFLOW", "PATCHCYCLE_"))
            )
        )
        airflow = str(VENV_BIN / "airflow")
        migrate = subprocess.run(
            [airflow, *INIT_COMMAND], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
        )
        (log_dir / "init.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode:
            raise StackError(
                f"airflow db migrate failed; see {log_dir / 'init.log'}:\n{migrate.stderr[-3000:]}"
            )
        components: dict[str, Component] = {}
        stack.callback(lambda: stop_components(components.values()))
        for name, command in COMPONENT_COMMANDS.items():
            argv = [airflow, *command, *LOCAL_FLAGS.get(name, ())]
            components[name] = start_component(name, argv, env, log_dir, pid_dir=workdir / PID_DIR)
        client = AirflowClient(api_url, ADMIN_USER, password)
        stack.callback(client.close)
        running = Stack(
            workdir=workdir,
            api_url=api_url,
            env=env,
            components=components,
            client=client,
            broker_url=broker_url,
            scheduler_health_url=f"http://127.0.0.1:{scheduler_port}/health",
        )
        deadline = started + timeout

        def remaining() -> float:
            return max(1.0, deadline - time.monotonic())

        def api_up() -> bool:
            running.check_alive()
            return client.version() is not None

        wait_until("api-server /api/v2/version", api_up, remaining())

        def all_healthy() -> bool:
            running.check_alive()
            return not running.unhealthy()

        try:
            wait_until("every component healthy", all_healthy, remaining(), interval=1.0)
        except StackError as exc:
            raise StackError(f"{exc}; unhealthy: {running.unhealthy()}; logs in {log_dir}") from exc
        for dag_id in expect_dags:

            def parsed(dag_id: str = dag_id) -> bool:
                running.check_alive()
                return client.get_dag(dag_id) is not None

            wait_until(f"DAG {dag_id} parsed", parsed, remaining())
        running.started_in = time.monotonic() - started
        yield running


# --- REST client --------------------------------------------------------------------------------------


class AirflowClient:
    """The Airflow 3 public REST API (``/api/v2``), authenticated with a JWT from ``/auth/token``."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def _authenticate(self) -> None:
        resp = self._http.post("/auth/token", json=self._credentials)
        resp.raise_for_status()
        self._token = resp.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._token is None:
            self._authenticate()
        for attempt in (1, 2):
            resp = self._http.request(
                method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs
            )
            if resp.status_code == 401 and attempt == 1:
                self._authenticate()  # expired token
                continue
            break
        if resp.is_error:
            raise httpx.HTTPStatusError(
                f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}",
                request=resp.request,
                response=resp,
            )
        return resp

    def _paged(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.request(
                "GET", path, params={**(params or {}), "limit": 100, "offset": len(items)}
            ).json()
            items.extend(page[key])
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    # The server and its components.
    def version(self) -> dict[str, Any] | None:
        resp = self._http.get("/api/v2/version")
        return resp.json() if resp.status_code == 200 else None

    def health(self) -> dict[str, Any]:
        return self._http.get("/api/v2/monitor/health").json()

    # DAGs.
    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", f"/api/v2/dags/{dag_id}").json()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                return None
            raise

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused}).json()

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self.set_paused(dag_id, False)

    # Runs.
    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        *,
        logical_date: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body).json()

    def create_backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        *,
        conf: dict[str, Any] | None = None,
        max_active_runs: int = 1,
        reprocess_behavior: str = "none",
        run_backwards: bool = False,
    ) -> dict[str, Any]:
        body = {
            "dag_id": dag_id,
            "from_date": from_date,
            "to_date": to_date,
            "dag_run_conf": conf or {},
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess_behavior,
            "run_backwards": run_backwards,
        }
        return self.request("POST", "/api/v2/backfills", json=body).json()

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/backfills/{backfill_id}").json()

    def dag_runs(self, dag_id: str, *, run_type: str | None = None) -> list[dict[str, Any]]:
        params = {"run_type": run_type} if run_type else {}
        return self._paged(f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs", params)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()

    def wait_for_runs(
        self,
        dag_id: str,
        *,
        count: int,
        run_type: str | None = None,
        timeout: float,
        interval: float = 3.0,
        on_poll: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Poll until ``count`` runs (of ``run_type``) exist and all are terminal; the runs, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            runs = sorted(self.dag_runs(dag_id, run_type=run_type), key=lambda r: r["logical_date"] or "")
            if on_poll:
                on_poll(runs)
            if len(runs) >= count and all(r["state"] in TERMINAL_RUN_STATES for r in runs):
                return runs
            if time.monotonic() > deadline:
                states = {r["dag_run_id"]: r["state"] for r in runs}
                raise TimeoutError(f"{dag_id}: runs not terminal within {timeout:.0f}s: {states}")
            time.sleep(interval)

    def wait_for_run(
        self, dag_id: str, run_id: str, *, timeout: float, interval: float = 3.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (run := self.dag_run(dag_id, run_id))["state"] not in TERMINAL_RUN_STATES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}/{run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(interval)
        return run

    # Task instances.
    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._paged(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``task_id`` (``task_id[i]`` for mapped ones) -> state."""
        return {
            ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"]
            for ti in self.task_instances(dag_id, run_id)
        }

    def task_instances_in(self, *states: str) -> list[dict[str, Any]]:
        """Task instances of every DAG and run in any of ``states`` (e.g. ``running``, ``deferred``)."""
        return self._paged(
            "/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances", {"state": list(states)}
        )

    # Human-in-the-loop.
    def hitl_details(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's Human-in-the-loop requests (one per waiting or answered HITL task)."""
        return self._paged(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails", "hitl_details")

    def respond_hitl(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: list[str],
        params_input: dict[str, Any] | None = None,
        *,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Answer a waiting HITL task (an approval, say) as the client's user; the task resumes."""
        return self.request(
            "PATCH",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails",
            json={"chosen_options": chosen_options, "params_input": params_input or {}},
        ).json()


# --- command line -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.stack",
        description=__doc__.split("\n")[0],
        epilog="exit codes: up 0 stopped by Ctrl-C/SIGTERM, 1 could not start or a component died; "
        "status 0 all running, 1 otherwise; down 0 nothing left running, 1 a process survived SIGKILL; "
        "2 bad usage",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start fleetsim and the whole stack; stop everything on Ctrl-C")
    up.add_argument("--workdir", type=Path, default=REPO / "var" / "stack")
    up.add_argument("--scenario", type=Path, default=REPO / "fleetsim" / "scenarios" / "demo.yaml")
    up.add_argument("--tenants-dir", type=Path, default=None)
    up.add_argument("--worker-concurrency", type=int, default=4)
    status = sub.add_parser("status", help="each process `up` started, running or not (exit 0: all running)")
    status.add_argument("--workdir", type=Path, default=REPO / "var" / "stack")
    down = sub.add_parser("down", help="stop what `up` started: SIGTERM, SIGKILL after --grace seconds")
    down.add_argument("--workdir", type=Path, default=REPO / "var" / "stack")
    down.add_argument("--grace", type=float, default=20.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    if args.command == "status":
        return _status(workdir)
    if args.command == "down":
        return _down(workdir, args.grace)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Both, explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if running := [name for name, _, alive in stack_status(workdir) if alive]:
        print(
            f"stack: already running in {workdir} ({', '.join(running)}); "
            "`python -m devtools.stack down` stops it",
            file=sys.stderr,
        )
        return 1
    if workdir.exists():
        shutil.rmtree(workdir)  # a fresh deployment each time: the cluster and the broker are throwaway
    pid_dir = workdir / PID_DIR
    write_pid_file(pid_dir, "up", os.getpid())
    try:
        with ExitStack() as started:
            url = started.enter_context(running_fleetsim(args.scenario, workdir / "fleetsim"))
            fleetsim_pid = json.loads((workdir / "fleetsim" / "fleetsim.ready.json").read_text())["pid"]
            write_pid_file(pid_dir, "fleetsim", fleetsim_pid)
            stack = started.enter_context(
                running_stack(
                    workdir, url, tenants_dir=args.tenants_dir, worker_concurrency=args.worker_concurrency
                )
            )
            password = json.loads((workdir / "airflow" / "passwords.json").read_text())[ADMIN_USER]
            print(f"fleetsim     {url}")
            print(f"Airflow UI   {stack.api_url}  (user {ADMIN_USER}, password {password})")
            print(f"started in   {stack.started_in:.0f}s; components {stack.pids()}")
            print(f"logs         {workdir / 'logs'}   (Ctrl-C stops everything)")
            sys.stdout.flush()
            while True:
                time.sleep(5)
                stack.check_alive()
    except KeyboardInterrupt:
        print("stopping")
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    finally:
        for name in ("fleetsim", "up"):
            (pid_dir / f"{name}.pid").unlink(missing_ok=True)
    return 0


def _status(workdir: Path) -> int:
    rows = stack_status(workdir)
    if not any(pid for _, pid, _ in rows):
        print(f"no stack recorded in {workdir} (no pid files in {workdir / PID_DIR})")
        return 1
    for name, pid, alive in rows:
        state = "running" if alive else "not running" if pid else "not started"
        print(f"{name:<14} {state}" + (f" (pid {pid})" if pid else ""))
    return 0 if all(alive for _, _, alive in rows) else 1


def _down(workdir: Path, grace: float) -> int:
    done = stop_recorded(workdir, grace=grace)
    for line in done or [f"nothing running in {workdir}"]:
        print(line)
    left = [name for name, _, alive in stack_status(workdir) if alive]
    if left:
        print(f"still running: {', '.join(left)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
