"""``python -m devtools.stack status`` and ``down`` on pid files of harmless processes (no stack starts)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from devtools import stack

REPO = Path(__file__).resolve().parents[2]
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "time.sleep(60)"
)


class Fleet:
    """Stand-ins for the stack's processes: one ``sleep 60`` per name, each in its own session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            argv or ["sleep", "60"], start_new_session=True, stdout=subprocess.PIPE, text=True
        )
        if argv:
            assert proc.stdout.readline().strip() == "ready"
        stack.write_pid_file(self.workdir / stack.PID_DIR, name, proc.pid)
        self.procs[name] = proc
        return proc

    def pid_file(self, name: str) -> Path:
        return self.workdir / stack.PID_DIR / f"{name}.pid"

    def running(self) -> set[str]:
        return {name for name, proc in self.procs.items() if proc.poll() is None}


@pytest.fixture
def fleet(tmp_path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path / "stack")
    yield fleet
    for proc in fleet.procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_status_with_every_process_running_exits_0(fleet, capsys) -> None:
    for name in stack.STACK_PROCESSES:
        fleet.start(name)
    assert stack.main(["status", "--workdir", str(fleet.workdir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(stack.STACK_PROCESSES)
    for line, name in zip(lines, stack.STACK_PROCESSES, strict=True):
        assert line.split(None, 1)[1] == f"running (pid {fleet.procs[name].pid})"


def test_status_names_what_is_not_running_and_exits_1(fleet, capsys) -> None:
    for name in stack.STACK_PROCESSES:
        if name != "triggerer":
            fleet.start(name)
    scheduler = fleet.procs["scheduler"]
    scheduler.kill()
    scheduler.wait(timeout=10)
    assert stack.main(["status", "--workdir", str(fleet.workdir)]) == 1
    rows = {line.split()[0]: line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()}
    assert rows["scheduler"] == f"not running (pid {scheduler.pid})"
    assert rows["triggerer"] == "not started"
    assert rows["worker"] == f"running (pid {fleet.procs['worker'].pid})"


def test_status_without_a_stack_exits_1(tmp_path, capsys) -> None:
    assert stack.main(["status", "--workdir", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith(f"no stack recorded in {tmp_path}")


def test_a_reused_pid_is_not_the_recorded_process(fleet, capsys) -> None:
    """A pid file older than the process with that pid: that process is someone else's, left alone."""
    proc = fleet.start("worker")
    long_ago = time.time() - 3600
    os.utime(fleet.pid_file("worker"), (long_ago, long_ago))
    assert stack.recorded_process(fleet.pid_file("worker")) is None
    assert stack.main(["down", "--workdir", str(fleet.workdir), "--grace", "1"]) == 0
    assert proc.poll() is None  # not ours: not signalled
    assert not fleet.pid_file("worker").exists()  # the stale file is gone


def test_down_stops_everything_and_is_idempotent(fleet, capsys) -> None:
    for name in stack.STACK_PROCESSES:
        fleet.start(name)
    assert stack.main(["down", "--workdir", str(fleet.workdir), "--grace", "5"]) == 0
    out = capsys.readouterr().out
    assert f"up (pid {fleet.procs['up'].pid}) stopped the stack" in out
    assert f"worker (pid {fleet.procs['worker'].pid}) stopped" in out
    assert fleet.running() == set()
    assert list((fleet.workdir / stack.PID_DIR).iterdir()) == []
    assert stack.main(["down", "--workdir", str(fleet.workdir)]) == 0
    assert capsys.readouterr().out == f"nothing running in {fleet.workdir}\n"
    assert stack.main(["status", "--workdir", str(fleet.workdir)]) == 1


def test_down_kills_what_ignores_sigterm_after_the_grace(fleet, capsys) -> None:
    fleet.start("redis")
    stubborn = fleet.start("worker", [sys.executable, "-c", IGNORES_SIGTERM])
    started = time.monotonic()
    assert stack.main(["down", "--workdir", str(fleet.workdir), "--grace", "1"]) == 0
    assert time.monotonic() - started < 15
    out = capsys.readouterr().out
    assert f"worker (pid {stubborn.pid}) killed" in out
    assert f"redis (pid {fleet.procs['redis'].pid}) stopped" in out
    assert fleet.running() == set()


def test_the_real_cli_status_down_and_up_refusing_a_running_stack(fleet) -> None:
    for name in stack.STACK_PROCESSES:
        fleet.start(name)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "devtools.stack", *args, "--workdir", str(fleet.workdir)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )

    assert cli("status").returncode == 0
    refused = cli("up")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"stack: already running in {fleet.workdir} ({', '.join(stack.STACK_PROCESSES)}); "
        "`python -m devtools.stack down` stops it"
    ]
    assert fleet.running() == set(stack.STACK_PROCESSES)  # up neither removed nor touched them
    assert cli("down").returncode == 0
    assert fleet.running() == set()
    status = cli("status")
    assert status.returncode == 1 and "Traceback" not in status.stderr


SPAWNS_OUT_OF_GROUP = (
    "import subprocess, time; child = subprocess.Popen(['sleep', '60'], start_new_session=True); "
    "print('ready', flush=True); print(child.pid, flush=True); time.sleep(60)"
)


def test_down_stops_descendants_that_left_the_process_group(fleet) -> None:
    worker = fleet.start("worker", [sys.executable, "-c", SPAWNS_OUT_OF_GROUP])
    grandchild = psutil.Process(int(worker.stdout.readline()))
    assert os.getpgid(grandchild.pid) != os.getpgid(worker.pid)
    assert stack.main(["down", "--workdir", str(fleet.workdir), "--grace", "5"]) == 0
    assert fleet.running() == set()
    try:
        assert grandchild.status() == psutil.STATUS_ZOMBIE  # dead, waiting for its new parent to reap it
    except psutil.NoSuchProcess:
        pass


def test_postgres_and_redis_have_pid_files_while_they_run(tmp_path) -> None:
    """What the stack starts records itself (the Airflow components share ``start_component`` with redis)."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    with stack.running_postgres(tmp_path, log_dir), stack.running_redis(tmp_path, log_dir):
        rows = {name: alive for name, _, alive in stack.stack_status(tmp_path)}
        assert rows == {name: name in ("postgres", "redis") for name in stack.STACK_PROCESSES}
    assert list((tmp_path / stack.PID_DIR).iterdir()) == []
