"""docker-compose.yaml runs the components, commands and settings that devtools/stack/ proves as processes.

No Docker here: the file is parsed and held against the stack module (the single source of the component
commands and setting names), so the two cannot drift apart.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import stack

REPO = Path(__file__).resolve().parents[2]
SERVICES = {f"airflow-{name}" for name in stack.COMPONENT_COMMANDS}
MOUNTS = {
    "./dags": "/opt/airflow/dags",
    "./plugins": "/opt/airflow/plugins",
    "./include": "/opt/airflow/include",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def common_env(compose) -> dict[str, str]:
    return compose["x-airflow-common"]["environment"]


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory) -> dict[str, str]:
    """The environment devtools.stack gives every component (no process is started)."""
    return stack.stack_env(
        tmp_path_factory.mktemp("airflow"),
        "http://127.0.0.1:9",  # nothing listens: only the settings are wanted
        db_url="postgresql+psycopg2://airflow:airflow@127.0.0.1:5432/airflow",
        broker_url="redis://127.0.0.1:6379/0",
        api_port=8080,
        scheduler_health_port=8974,
    )


def command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def test_every_component_is_a_service_running_the_stacks_command(compose) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init"} | SERVICES <= set(services)
    for name, argv in stack.COMPONENT_COMMANDS.items():
        assert command(services[f"airflow-{name}"]) == list(argv), name


def test_init_migrates_the_database_and_creates_the_gate_pool_as_the_stack_does(compose) -> None:
    script = command(compose["services"]["airflow-init"])[-1].strip().splitlines()
    assert script[0] == "set -e"
    runs = [shlex.split(line.removeprefix("exec ")) for line in script[-len(stack.INIT_COMMANDS) :]]
    assert runs == [["/entrypoint", "airflow", *argv] for argv in stack.INIT_COMMANDS]
    assert script[-1].startswith("exec ")
    assert compose["services"]["airflow-init"]["restart"] == "no"


def test_every_airflow_service_shares_the_common_environment_and_image(compose, common_env) -> None:
    for name in SERVICES | {"airflow-init"}:
        service = compose["services"][name]
        assert service["build"] == "."
        env = service["environment"]
        assert {k: env[k] for k in common_env} == common_env, name


@pytest.mark.parametrize(
    ("service", "probe"),
    [
        ("postgres", "pg_isready"),
        ("redis", "redis-cli ping"),
        ("airflow-apiserver", "http://localhost:8080/api/v2/version"),
        ("airflow-scheduler", "http://localhost:8974/health"),
        ("airflow-dag-processor", "airflow jobs check --job-type DagProcessorJob"),
        ("airflow-triggerer", "airflow jobs check --job-type TriggererJob"),
        ("airflow-worker", "celery_executor.app inspect ping"),
    ],
)
def test_each_long_running_service_has_a_healthcheck(compose, service, probe) -> None:
    check = compose["services"][service]["healthcheck"]
    assert probe in " ".join(check["test"]), check
    assert {"interval", "retries"} <= set(check)


def test_services_start_in_order(compose) -> None:
    services = compose["services"]
    healthy = {"condition": "service_healthy"}
    for name in SERVICES | {"airflow-init"}:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == healthy and deps["redis"] == healthy, name
    for name in SERVICES:
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    # Tasks talk to the api-server's Execution API; a worker without it cannot run one.
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == healthy


def test_the_shared_settings_are_the_stacks(common_env, stack_env) -> None:
    for key, value in stack.FIXED_SETTINGS.items():
        assert str(common_env[key]) == value, key
    per_deployment = set(stack.PER_DEPLOYMENT_SETTINGS)
    assert per_deployment <= set(common_env)
    # Every Airflow setting the process stack runs with is in compose, except the loopback-only ones
    # and fleetsim's tuning; compose has none the stack lacks.
    proven = {k for k in stack_env if k.startswith("AIRFLOW__")}
    proven -= set(stack.LOCAL_SETTINGS) | set(stack.FLEETSIM_TUNING)
    assert proven == {k for k in common_env if k.startswith("AIRFLOW__")}


def test_the_endpoints_name_the_compose_services(common_env, stack_env) -> None:
    assert common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres/" in common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    # Same scheme as the stack's: the driver explicit in both (a bare postgresql:// means psycopg 3).
    scheme = stack_env["AIRFLOW__CELERY__RESULT_BACKEND"].split("://")[0]
    assert common_env["AIRFLOW__CELERY__RESULT_BACKEND"].split("://")[0] == scheme
    assert (
        common_env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:" in common_env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert common_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert stack_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"


@pytest.mark.parametrize(
    "key", ["AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"]
)
def test_secrets_come_from_the_environment_and_are_required(common_env, key) -> None:
    # ${VAR:?message}: compose refuses to start without it; nothing secret in the file.
    assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", common_env[key]), common_env[key]


def test_dags_plugins_and_include_are_mounted_where_the_settings_point(compose, common_env) -> None:
    mounts = dict(v.split(":")[:2] for v in compose["x-airflow-common"]["volumes"])
    for source, target in MOUNTS.items():
        assert mounts[source] == target
        assert (REPO / source).is_dir()
    assert common_env["AIRFLOW__CORE__DAGS_FOLDER"] == MOUNTS["./dags"]
    assert common_env["AIRFLOW__CORE__PLUGINS_FOLDER"] == MOUNTS["./plugins"]


def test_the_image_is_airflow_3_3_2_with_the_locked_requirements() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert base.startswith("apache/airflow:3.3.2")
    assert "-r /requirements.txt" in dockerfile and "COPY requirements.txt" in dockerfile
    pins = (REPO / "requirements.txt").read_text()
    for package in (
        "apache-airflow==3.3.2",
        "apache-airflow-providers-celery==",
        "psycopg2-binary==",
        "redis==",
    ):
        assert re.search(rf"^{re.escape(package)}", pins, re.MULTILINE), package


def test_the_emulator_and_the_test_tools_stay_out_of_the_image() -> None:
    """fleetsim (moto's server, the mail relay) and the test tools are dependency groups of a checkout,
    never in the image's requirements (exported with --no-default-groups)."""
    pins = {
        line.split("==", 1)[0].lower()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    for package in ("moto", "aiosmtpd", "flask", "werkzeug", "pytest", "playwright", "mypy", "ruff"):
        assert package not in pins, package
    assert "--no-default-groups" in (REPO / "requirements.txt").read_text().splitlines()[1]
