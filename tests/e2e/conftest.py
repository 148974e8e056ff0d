"""End-to-end harness: real Airflow (``airflow dags test``) running real cycles against a fleetsim process."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from devtools.local import airflow_env, fleetsim_get, migrate_db, run_cycle, running_fleetsim

HERE = Path(__file__).parent
ALPHA_BUCKET = "patchcycle-evidence-cu-alpha"


@dataclass
class CycleResult:
    returncode: int
    log: str
    keys: list[str]
    files: dict[str, bytes]
    truth: dict[str, dict[str, Any]]
    task_states: dict[str, str] = field(default_factory=dict)

    @property
    def evidence(self) -> dict[str, Any]:
        return json.loads(self.files["evidence.json"])

    def host(self, name: str) -> dict[str, Any]:
        return next(h for h in self.evidence["hosts"] if h["name"] == name)


class CycleRunner:
    """Runs one tenant cycle through Airflow against the fleetsim it was started with."""

    def __init__(self, url: str, env: dict[str, str], workdir: Path) -> None:
        self.url = url
        self.env = env
        self.workdir = workdir

    def s3(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def mail(self) -> list[dict[str, Any]]:
        return fleetsim_get(self.url, "/fleetsim/mail")["messages"]

    def run(
        self, dag_id: str, logical_date: str, conf: dict[str, Any] | None = None, bucket: str = ALPHA_BUCKET
    ) -> CycleResult:
        conf = {"soak_hours_override": 0, "soak_override_reason": "e2e test", **(conf or {})}
        log_path = self.workdir / f"{dag_id}-{logical_date[:10]}.log"
        rc = run_cycle(self.env, dag_id, logical_date, conf, log_path)
        s3 = self.s3()
        keys = sorted(
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
        )
        pack = [k for k in keys if "/pack/" in k]
        files = {k.rsplit("/", 1)[1]: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in pack}
        truth = {h["name"]: h for h in fleetsim_get(self.url, "/fleetsim/ground-truth")["hosts"]}
        return CycleResult(rc, log_path.read_text(), keys, files, truth, self.task_states(dag_id))

    def task_states(self, dag_id: str) -> dict[str, str]:
        db = Path(self.env["AIRFLOW_HOME"]) / "airflow.db"
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr "
                "ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
                "WHERE ti.dag_id = ? AND dr.id = (SELECT MAX(id) FROM dag_run WHERE dag_id = ?)",
                (dag_id, dag_id),
            ).fetchall()
        return dict(rows)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("airflow")
    migrate_db(airflow_env(home, "http://127.0.0.1:9"))
    return home


def write_scenario(path: Path, base: str, **overrides: Any) -> Path:
    data = yaml.safe_load((HERE / "scenarios" / base).read_text())
    data.update(overrides)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def fleet(request, airflow_home: Path, tmp_path: Path) -> Iterator[CycleRunner]:
    """A fleetsim running the scenario named by ``@pytest.mark.scenario(file)`` (default alpha_small)."""
    marker = request.node.get_closest_marker("scenario")
    scenario = Path(marker.args[0]) if marker else HERE / "scenarios" / "alpha_small.yaml"
    if not scenario.is_absolute():
        scenario = HERE / "scenarios" / scenario
    with running_fleetsim(scenario, tmp_path / "fleetsim") as url:
        env = airflow_env(airflow_home, url, poll_seconds=0.5)
        yield CycleRunner(url, env, tmp_path)
