"""A warm ``airflow dags test``: one interpreter that has imported Airflow, the DAGs' packages and the cloud
SDKs and built Airflow's in-process execution API, forked once for each run.

Each ``airflow dags test`` in a fresh interpreter spent 15 to 20 s before its first task did anything on
this project's 2-core machine: importing Airflow, then building the FastAPI execution API that ``dags
test`` runs tasks against in-process (``airflow.sdk.execution_time.supervisor.in_process_api_server``,
cached for the life of the process). The end-to-end tests and the demo run dozens of cycles. Here a
server process does that work once; each run is a fork of it that calls Airflow's own CLI entry point
(``airflow.__main__.main``) with the run's arguments, environment and working folder, its output in the
run's log file, and exits with the command's exit code. The run is the same command; only its start is
shared.

What a run may change is read when the run needs it: connections (``AIRFLOW_CONN_*``), Patchcycle's
settings (``AIRFLOW__PATCHCYCLE__*``), the tenants and exceptions folders. What Airflow fixes at import
(``AIRFLOW_HOME``, the DAGs and plugins folders, the database) must be the same for every run of one
server, so a server serves one Airflow home: ``run_cycle`` keeps one per home.

Protocol (the server's stdin and its stdout as it started, one JSON document per line):
``{"argv", "env", "cwd", "log"}`` in, ``{"returncode"}`` out.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

# What the server's environment must share with every run it forks.
FIXED_AT_IMPORT: tuple[str, ...] = (
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__AWS__SESSION_FACTORY",
    "AIRFLOW__CORE__UNIT_TEST_MODE",
)


class WarmAirflow:
    """A running server (``python -m devtools.warm_airflow``) and the runs sent to it, one at a time."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.fixed = {key: env.get(key) for key in FIXED_AT_IMPORT}
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.warm_airflow"],
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def serves(self, env: dict[str, str]) -> bool:
        return self._proc.poll() is None and all(env.get(k) == v for k, v in self.fixed.items())

    def run(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> int:
        """Run ``airflow <argv>`` in a fork of the server; its output goes to ``log_path``."""
        request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log_path)}
        with self._lock:
            stdin, stdout = self._streams()
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            answer = stdout.readline()
        if not answer:
            raise RuntimeError(f"the warm Airflow server exited ({self._proc.poll()}); run {argv} by hand")
        return int(json.loads(answer)["returncode"])

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def _streams(self) -> tuple[IO[str], IO[str]]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        return self._proc.stdin, self._proc.stdout


_SERVERS: dict[tuple[Any, ...], WarmAirflow] = {}


def warm_airflow(env: dict[str, str], cwd: Path) -> WarmAirflow:
    """This process's server for ``env``'s Airflow home (started on first use, stopped at exit)."""
    key = tuple(env.get(k) for k in FIXED_AT_IMPORT)
    server = _SERVERS.get(key)
    if server is None or not server.serves(env):
        server = _SERVERS[key] = WarmAirflow(env, cwd)
        atexit.register(server.close)
    return server


# --- the server ----------------------------------------------------------------------------------------


def _warm() -> None:
    """Import what every run imports and build the in-process execution API (not its transport: that
    starts a thread, which must be the run's own)."""
    import airflow.__main__  # noqa: F401 - Airflow's CLI and its configuration
    from airflow.cli.commands import dag_command  # noqa: F401
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    import patchcycle.deploy.warm_start  # noqa: F401 - the task modules, cloud SDKs and AWS models

    app = in_process_api_server().app  # cached for the forks to inherit
    # The API's versioned routes are generated on its first request (Cadwyn, 9 s here): make that request
    # through the ASGI interface on a loop that is closed again before any fork (no thread outlives it).
    asyncio.run(_first_request(app))


async def _first_request(app: Any) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/health",
        "raw_path": b"/health",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 0),
        "server": ("in-process", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


def _run_forked(request: dict[str, Any], answers: int) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    code = 1
    try:
        os.close(answers)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = ["airflow", *request["argv"]]
        from airflow.__main__ import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the fork reports every failure as its exit code
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    # Answers go out on a copy of stdout; whatever Airflow prints (it logs to stdout) goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _warm()
    for line in sys.stdin:
        returncode = _run_forked(json.loads(line), answers.fileno())
        answers.write(json.dumps({"returncode": returncode}) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
