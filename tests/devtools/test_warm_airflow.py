"""The warm ``airflow`` runner: each run is Airflow's own CLI in a fork, with the run's environment,
arguments and log, and the command's exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.local import REPO, airflow_env
from devtools.warm_airflow import warm_airflow

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("warm-airflow")]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return airflow_env(tmp_path_factory.mktemp("warm-home"), "http://127.0.0.1:9")


def test_each_run_sees_its_own_environment(env, tmp_path: Path) -> None:
    server = warm_airflow(env, REPO)
    for seconds in ("0.5", "7"):
        log = tmp_path / f"{seconds}.log"
        argv = ["config", "get-value", "patchcycle", "poll_seconds"]
        assert server.run(argv, {**env, "AIRFLOW__PATCHCYCLE__POLL_SECONDS": seconds}, REPO, log) == 0
        assert log.read_text().strip().splitlines()[-1] == seconds


def test_a_failing_command_returns_its_exit_code_and_its_error_is_in_the_log(env, tmp_path: Path) -> None:
    log = tmp_path / "missing.log"
    code = warm_airflow(env, REPO).run(["no-such-command"], env, REPO, log)
    assert code == 2  # argparse's, as the airflow command exits
    assert "invalid choice: 'no-such-command'" in log.read_text()


def test_one_server_per_airflow_home(env, tmp_path: Path) -> None:
    other = airflow_env(tmp_path / "other-home", "http://127.0.0.1:9")
    assert warm_airflow(env, REPO) is warm_airflow(env, REPO)
    assert warm_airflow(other, REPO) is not warm_airflow(env, REPO)
