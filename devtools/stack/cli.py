"""``python -m devtools.stack up|status|down``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import devtools.stack as package
from devtools.local import REPO, running_fleetsim
from devtools.stack.deployment import running_stack
from devtools.stack.processes import PID_DIR, StackError, stack_status, stop_recorded, write_pid_file
from devtools.stack.settings import ADMIN_USER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.stack",
        description=package.__doc__.split("\n")[0],
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
