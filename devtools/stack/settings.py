"""The deployment's settings: what each component runs, the settings every deployment shares, and the
one environment of every component of the one-host stack (``stack_env``)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from devtools.local import SESSION_FACTORY, airflow_env
from patchcycle.domain.cycle_gate import GATE_POOL, GATE_POOL_DESCRIPTION

EXECUTOR = "CeleryExecutor"
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
ADMIN_USER = "admin"

# What each component runs, after ``airflow`` (the image's entrypoint prepends it in compose).
# Init, once before the others: migrate the database, then create the pool the cycle gates run in (a task
# in a pool that does not exist is never scheduled: the scheduler only logs a warning).
INIT_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("db", "migrate"),
    ("pools", "set", GATE_POOL, "1", GATE_POOL_DESCRIPTION),
)
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

# The metadata database in the stack's private PostgreSQL cluster (services.running_postgres).
DB_USER = DB_PASSWORD = DB_NAME = "airflow"


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
