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

The package, by what it holds: ``settings`` (component commands, the deployment's settings,
``stack_env``), ``processes`` (starting, supervising and stopping processes, pid files, ``stack_status``,
``stop_recorded``), ``services`` (PostgreSQL and Redis), ``client`` (``AirflowClient``, the REST
client), ``deployment`` (``Stack`` and ``running_stack``) and ``cli`` (``main``: up, status, down).
``devtools.stack`` re-exports every public name the single module had: importers need not change.
"""

from devtools.stack.cli import main
from devtools.stack.client import TERMINAL_RUN_STATES, AirflowClient
from devtools.stack.deployment import Stack, running_stack
from devtools.stack.processes import (
    PID_DIR,
    STACK_PROCESSES,
    Component,
    StackError,
    free_port,
    recorded_process,
    stack_status,
    start_component,
    stop_components,
    stop_recorded,
    wait_until,
    write_pid_file,
)
from devtools.stack.services import (
    INSTALL_HINT,
    Postgres,
    postgres_bin,
    redis_server,
    running_postgres,
    running_redis,
)
from devtools.stack.settings import (
    ADMIN_USER,
    AUTH_MANAGER,
    COMPONENT_COMMANDS,
    DB_NAME,
    DB_PASSWORD,
    DB_USER,
    EXECUTOR,
    FIXED_SETTINGS,
    FLEETSIM_TUNING,
    INIT_COMMANDS,
    LOCAL_FLAGS,
    LOCAL_SETTINGS,
    PER_DEPLOYMENT_SETTINGS,
    deployment_settings,
    stack_env,
)

__all__ = [
    "ADMIN_USER",
    "AUTH_MANAGER",
    "AirflowClient",
    "COMPONENT_COMMANDS",
    "Component",
    "DB_NAME",
    "DB_PASSWORD",
    "DB_USER",
    "EXECUTOR",
    "FIXED_SETTINGS",
    "FLEETSIM_TUNING",
    "INIT_COMMANDS",
    "INSTALL_HINT",
    "LOCAL_FLAGS",
    "LOCAL_SETTINGS",
    "PER_DEPLOYMENT_SETTINGS",
    "PID_DIR",
    "Postgres",
    "STACK_PROCESSES",
    "Stack",
    "StackError",
    "TERMINAL_RUN_STATES",
    "deployment_settings",
    "free_port",
    "main",
    "postgres_bin",
    "recorded_process",
    "redis_server",
    "running_postgres",
    "running_redis",
    "running_stack",
    "stack_env",
    "stack_status",
    "start_component",
    "stop_components",
    "stop_recorded",
    "wait_until",
    "write_pid_file",
]
