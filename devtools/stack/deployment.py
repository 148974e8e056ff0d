"""The whole stack: PostgreSQL, Redis and every Airflow component started, healthy, and stopped again."""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.local import REPO, VENV_BIN
from devtools.stack.client import AirflowClient
from devtools.stack.processes import (
    PID_DIR,
    Component,
    StackError,
    free_port,
    start_component,
    stop_components,
    wait_until,
)
from devtools.stack.services import running_postgres, running_redis
from devtools.stack.settings import ADMIN_USER, COMPONENT_COMMANDS, INIT_COMMANDS, LOCAL_FLAGS, stack_env


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
        with (log_dir / "init.log").open("w") as init_log:
            for init in INIT_COMMANDS:
                done = subprocess.run(
                    [airflow, *init], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
                )
                init_log.write(done.stdout + done.stderr)
                if done.returncode:
                    raise StackError(
                        f"airflow {' '.join(init[:2])} failed; see {log_dir / 'init.log'}:\n"
                        f"{done.stderr[-3000:]}"
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
