"""Starting, supervising and stopping the stack's processes, and their pid files (``status``, ``down``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.local import REPO
from devtools.stack.settings import COMPONENT_COMMANDS

# Under the work directory: ``<name>.pid`` for every process the stack started, removed when it stops.
PID_DIR = "run"
# What ``up`` starts, in start order: itself (the supervisor), fleetsim, then the stack.
STACK_PROCESSES: tuple[str, ...] = ("up", "fleetsim", "postgres", "redis", *COMPONENT_COMMANDS)


class StackError(RuntimeError):
    """The stack could not start, or a component died; the message names the log to read."""


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
        signal_group(component.proc.pid, signal.SIGTERM)
    for proc in tree:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for component in components:
        signal_group(component.proc.pid, signal.SIGKILL)
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


def signal_group(pid: int, sig: signal.Signals) -> None:
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
