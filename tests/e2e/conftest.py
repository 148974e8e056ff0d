"""End-to-end harness: real Airflow (``airflow dags test``) running real cycles against a fleetsim process."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from devtools.local import airflow_env, fleetsim_get, migrate_db, run_cycle, running_fleetsim

HERE = Path(__file__).parent
ALPHA_BUCKET = "patchcycle-evidence-cu-alpha"


# What a host's ground truth may show without the cycle having changed it: the plan's SSM Scan, which
# assesses the host against the tenant's baseline and never installs ("Scan doesn't prompt updates to be
# installed or managed nodes to be rebooted": AWS-RunPatchBaseline, "Parameter name: Operation").
READ_ONLY_ACTIONS = frozenset({"ssm.scan"})


def changes(truth_host: dict[str, Any]) -> list[dict[str, Any]]:
    """The actions that changed a host (its ground truth's actions but the read-only ones)."""
    return [a for a in truth_host["actions"] if a["action"] not in READ_ONLY_ACTIONS]


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

    def seed_first_seen(self, entries: dict[str, str], bucket: str = ALPHA_BUCKET) -> None:
        """Write the tenant's first-seen ledger as earlier cycles would have left it (the plan ages
        updates no source dates from it; see patchcycle.domain.plan.age_by_ledger)."""
        from patchcycle.domain.plan import LEDGER_PREFIX

        key = f"{LEDGER_PREFIX}earlier-cycles.json"
        self.s3().put_object(Bucket=bucket, Key=key, Body=json.dumps(entries).encode())

    def mail(self) -> list[dict[str, Any]]:
        return fleetsim_get(self.url, "/fleetsim/mail")["messages"]

    def run(
        self, dag_id: str, logical_date: str, conf: dict[str, Any] | None = None, bucket: str = ALPHA_BUCKET
    ) -> CycleResult:
        conf = {
            "soak_hours_override": 0,
            "soak_override_reason": "e2e test",
            "window_override_reason": "e2e test: prod outside its change window",
            **(conf or {}),
        }
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

    def xcom_text(self, dag_id: str) -> str:
        """Every XCom value of the DAG's runs, as stored (what anyone who can view the DAG can read)."""
        db = Path(self.env["AIRFLOW_HOME"]) / "airflow.db"
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT value FROM xcom WHERE dag_id = ?", (dag_id,)).fetchall()
        assert rows, f"no XCom of {dag_id} found"
        return "\n".join(str(value) for (value,) in rows)

    def asset_event_extra(self, asset_name: str) -> dict[str, Any]:
        """The extra of the asset's latest event (what the Assets view shows)."""
        import json

        db = Path(self.env["AIRFLOW_HOME"]) / "airflow.db"
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "WHERE a.name = ? ORDER BY e.id DESC LIMIT 1",
                (asset_name,),
            ).fetchone()
        assert row is not None, f"no event of asset {asset_name}"
        return json.loads(row[0]) if isinstance(row[0], str) else dict(row[0] or {})

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


REPO = HERE.parents[1]


@pytest.fixture(scope="session")
def aws_only_tenants(tmp_path_factory) -> Path:
    """The demo tenants, with cu_alpha as the AWS-only tenant the AWS scenarios were written for.

    (The demo's cu_alpha also spans Azure and GCP and runs Falcon's gates; the three-cloud tests use it.)
    """
    folder = tmp_path_factory.mktemp("tenants")
    for path in (REPO / "include" / "tenants").glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    (folder / "cu_alpha.yaml").write_text((HERE / "tenants" / "aws_only" / "cu_alpha.yaml").read_text())
    return folder


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
def fleet(request, airflow_home: Path, aws_only_tenants: Path, tmp_path: Path) -> Iterator[CycleRunner]:
    """A fleetsim running the scenario named by ``@pytest.mark.scenario(file)`` (default alpha_small).

    Tenants are the AWS-only set unless the test is marked ``@pytest.mark.tenants("demo")``: the
    demo's own tenant files, where cu_alpha spans AWS, Azure and GCP.
    """
    marker = request.node.get_closest_marker("scenario")
    scenario = Path(marker.args[0]) if marker else HERE / "scenarios" / "alpha_small.yaml"
    if not scenario.is_absolute():
        scenario = HERE / "scenarios" / scenario
    tenants = request.node.get_closest_marker("tenants")
    tenants_dir = REPO / "include" / "tenants" if tenants and tenants.args[0] == "demo" else aws_only_tenants
    with running_fleetsim(scenario, tmp_path / "fleetsim") as url:
        env = airflow_env(airflow_home, url, poll_seconds=0.5, tenants_dir=tenants_dir)
        yield CycleRunner(url, env, tmp_path)


@contextmanager
def fleet_with(
    airflow_home: Path,
    workdir: Path,
    *,
    scenario: str = "alpha_small.yaml",
    tenants_from: Path,
    faults: dict[str, Any] | None = None,
    edit_alpha: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[CycleRunner]:
    """A fleetsim of ``scenario`` with cu_alpha's ``faults`` replaced, and Airflow seeing the tenants of
    ``tenants_from`` with cu_alpha's file changed by ``edit_alpha`` (a function of its YAML data)."""
    data = yaml.safe_load((HERE / "scenarios" / scenario).read_text())
    if faults is not None:
        data["tenants"][0]["faults"] = faults
    path = write_scenario(workdir / "scenario.yaml", scenario, tenants=data["tenants"])
    tenants = workdir / "tenants"
    tenants.mkdir(parents=True, exist_ok=True)
    for source in tenants_from.glob("*.yaml"):
        (tenants / source.name).write_text(source.read_text())
    if edit_alpha is not None:
        alpha = yaml.safe_load((tenants / "cu_alpha.yaml").read_text())
        edit_alpha(alpha)
        (tenants / "cu_alpha.yaml").write_text(yaml.safe_dump(alpha, sort_keys=False))
    with running_fleetsim(path, workdir / "fleetsim") as url:
        env = airflow_env(airflow_home, url, poll_seconds=0.5, tenants_dir=tenants)
        yield CycleRunner(url, env, workdir)
