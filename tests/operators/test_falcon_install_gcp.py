"""The roll-out's GCP install task against fleetsim's OS Config (google-cloud-os-config over REST): one OS
policy assignment per project and zone whose exec resources run falcon-installer with the project's Secret
Manager (``--gcp-project-id``), a Linux OS policy with shell scripts and a Windows one with PowerShell
scripts, the wait on each assignment's operation, and each host's result from the per-instance reports,
read from the OS policy of its OS (``records/install-gcp.json``, the shape validate and evidence read).

Vendor behaviour relied on: OSPolicyAssignment ids unique in the project, the exec validate/enforce exit
codes 100/101, the 1,024-character scripts, the POWERSHELL interpreter and UpdateOSPolicyAssignment's new
revision (google-cloud-os-config ``types/os_policy.py``, ``types/os_policy_assignments.py``);
falcon-installer's ``--gcp-project-id``, ``--sensor-version`` and ``--update`` and its release assets
(``falcon-installer-<v>-windows-<arch>.exe`` in ``checksums.txt``, github.com/CrowdStrike/falcon-installer
``.goreleaser.yaml``, ``scripts/install.ps1``).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from google.cloud import osconfig_v1

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.operators.falcon_install_gcp import (
    ENFORCE,
    INSTALLER_RELEASE,
    POLICY_ID,
    REINSTALL_REASON,
    SCRIPT_MAX,
    VALIDATE,
    WINDOWS_POLICY_ID,
    InstallSensorsGcpOperator,
    SensorTarget,
    assignment_body,
    assignment_id,
)
from patchcycle.operators.falcon_rollout import NEEDS_RECORD, RolloutContext, install_record
from patchcycle.reports.store import EvidenceStore
from patchcycle.triggers import checks
from patchcycle.triggers.waits import CHECKS

from .stand_ins import CONTEXT, MemoryBucket, attempt, recorded_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleetsim"))
from fleetsim_testkit import Fleet, group, running, scenario_dict  # noqa: E402

pytestmark = [pytest.mark.integration]

PROJECT = "alpha-dr-standby"
ZONE_A, ZONE_B = "us-central1-a", "us-central1-b"
KERNEL = "4.18.0-477.10.1.el8_8.x86_64"
SECRET = "fleetsim-falcon-secret"
TARGET = "7.14.16703"
CONN_ID = "gcp_cu_alpha"


def rhel(prefix: str, count: int, environment: str, zone: str, **kw: Any) -> dict[str, Any]:
    return group(prefix, count, "rhel_8", zone=zone, kernel=KERNEL, environment=environment, **kw)


SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "cu_alpha",
            "gcp": {
                "project_id": PROJECT,
                "groups": [
                    rhel("new", 2, "nonprod", ZONE_A, falcon_sensor=None),
                    rhel("cur", 1, "nonprod", ZONE_A, falcon_sensor=TARGET),
                    rhel("newer", 1, "nonprod", ZONE_A, falcon_sensor="7.15.16807"),
                    rhel("bad", 1, "staging", ZONE_A, falcon_sensor=None),
                    rhel("old", 1, "nonprod", ZONE_B, falcon_sensor="7.10.16303"),
                    rhel("prd", 1, "prod", ZONE_B, falcon_sensor=None),
                    rhel("rfm", 1, "nonprod", ZONE_B, falcon_sensor=TARGET),
                    group("win", 1, "windows_2022", zone=ZONE_A, environment="nonprod", falcon_sensor=None),
                    group(
                        "wold",
                        1,
                        "windows_2019",
                        zone=ZONE_B,
                        environment="nonprod",
                        falcon_sensor="7.10.16303",
                    ),
                ],
                # What falcon-installer reads on the VM (internal/vault/gcp.go): never seen by Airflow.
                "secrets": {"falcon-client-id": "cu_alpha", "falcon-client-secret": SECRET},
            },
            "faults": {"falcon_install_fails": ["bad-01"]},
        }
    ],
    catalog=[],
    falcon={
        "kernels": [
            {
                "release": KERNEL,
                "vendor": "rhel",
                "distro": "rhel8",
                "base_package_supported_sensor_versions": ["7.10.16303", TARGET, "7.15.16807"],
            }
        ]
    },
)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with running(SCENARIO) as served:
        yield served


BODY_ARGS: dict[str, Any] = {
    "tenant_id": "t",
    "project": "p",
    "linux": None,
    "windows": None,
    "labels": [{"env": "x"}],
    "budget": {"fixed": 1},
    "min_wait_seconds": 0,
}


def tenant_file(tmp_path: Path) -> Any:
    data = yaml.safe_load((default_tenants_dir() / "cu_alpha.yaml").read_text())
    data["falcon"] = {
        **data.get("falcon", {}),
        "rollout": {
            "host_groups": {"nonprod": "g-nonprod", "staging": "g-staging", "prod": "g-prod"},
            "install": {
                "gcp": {
                    "rate_control": {"max_concurrency": "50%", "max_errors": "50%"},
                    "min_wait_seconds": 0,
                }
            },
        },
    }
    path = tmp_path / "cu_alpha.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_tenant(path)


def host(name: str, zone: str, environment: str, family: str = "rhel_8") -> dict[str, Any]:
    host_id = f"id-{name}"
    return {
        "host_id": host_id,
        "name": name,
        "cloud": "gcp",
        "account": PROJECT,
        "region": zone,
        "private_ip": None,
        "environment": environment,
        "os_family": family,
        "platform": "windows" if family.startswith("windows") else "linux",
    }


def need(row: dict[str, Any], action: str, sensor: str | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "host_id": row["host_id"],
        "name": row["name"],
        "cloud": "gcp",
        "environment": row["environment"],
        "action": action,
        "reason": "test",
        "platform": row["platform"],
        "sensor_version": sensor,
        "target_version": kw.pop("target", TARGET),
        **kw,
    }


def needs_record(fleet: Fleet) -> dict[str, Any]:
    """What the find task would record for the scenario's hosts (their instance ids from fleetsim)."""
    truth = fleet.truth("cu_alpha")
    rows = {
        "new-01": host("new-01", ZONE_A, "nonprod"),
        "new-02": host("new-02", ZONE_A, "nonprod"),
        "bad-01": host("bad-01", ZONE_A, "staging"),
        "old-01": host("old-01", ZONE_B, "nonprod"),
        "prd-01": host("prd-01", ZONE_B, "prod"),
        "rfm-01": host("rfm-01", ZONE_B, "nonprod"),
        "win-01": host("win-01", ZONE_A, "nonprod", family="windows_2022"),
        "wold-01": host("wold-01", ZONE_B, "nonprod", family="windows_2019"),
    }
    for name, row in rows.items():
        row["host_id"] = str(truth[name]["host_id"])
    needs = [
        need(rows["new-01"], "install"),
        need(rows["new-02"], "install"),
        need(rows["bad-01"], "install"),
        need(rows["old-01"], "upgrade", "7.10.16303"),
        need(rows["rfm-01"], "rfm", TARGET, remedy="reinstall"),
        need(rows["win-01"], "install"),
        need(rows["wold-01"], "upgrade", "7.10.16303"),
        need(rows["prd-01"], "install", target=None),
    ]
    return {"needs": needs, "hosts": list(rows.values())}


@pytest.fixture
def task(fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    conn = {"conn_type": "google_cloud_platform", "extra": {"api_endpoint": fleet.url, "anonymous": True}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    tenant = tenant_file(tmp_path)
    bucket = MemoryBucket()
    store = EvidenceStore(bucket, "evidence")
    op = InstallSensorsGcpOperator(
        task_id="install_gcp",
        tenant_id=tenant.id,
        deferrable=False,
        waiter_delay=0.3,
        waiter_max_attempts=100,
    )
    op.__dict__.update(tenant=tenant, store=store)
    run = RolloutContext(CONTEXT, tenant=tenant, store=store, actor="test")
    return op, run, bucket


def test_scripts_fit_the_documented_limit_and_ids_stay_unique_per_zone() -> None:
    enforce = ENFORCE.format(release="10.100.100", project="p" * 30, version="7.99.99999", update=" --update")
    assert len(enforce) <= SCRIPT_MAX and len(VALIDATE.format(version="7.99.99999")) <= SCRIPT_MAX
    assert "secret" not in enforce.lower() and "--client" not in enforce  # the VM reads Secret Manager
    # The Windows OS policy at its longest (a 30-character project id, the longest version, --update).
    target = SensorTarget(version="7.99.99999", update=True, short_names=("windows",))
    body = assignment_body(
        tenant_id="t",
        project="p" * 30,
        linux=None,
        windows=target,
        labels=[{"env": "x"}],
        budget={"fixed": 1},
        min_wait_seconds=0,
    )
    (policy,) = body["osPolicies"]
    (group_,) = policy["resourceGroups"]
    assert policy["id"] == WINDOWS_POLICY_ID and group_["inventoryFilters"] == [{"osShortName": "windows"}]
    stages = group_["resources"][0]["exec"]
    assert {s["interpreter"] for s in stages.values()} == {"POWERSHELL"}
    script = stages["enforce"]["script"]
    assert len(script) <= SCRIPT_MAX and len(stages["validate"]["script"]) <= SCRIPT_MAX, len(script)
    assert f"falcon-installer-{INSTALLER_RELEASE}-windows-$a.exe" in script and "Get-FileHash" in script
    assert "--gcp-project-id " + "p" * 30 + " --sensor-version 7.99.99999 --update" in script
    assert "if($LASTEXITCODE -eq 0){exit 100}" in script and "&&" not in script  # Windows PowerShell 5.1
    assert "secret" not in script.lower() and "--client" not in script
    unchanged = SensorTarget("7.14.16703", update=False, short_names=("windows",))
    (plain,) = assignment_body(**{**BODY_ARGS, "windows": unchanged})["osPolicies"]
    assert "--update" not in plain["resourceGroups"][0]["resources"][0]["exec"]["enforce"]["script"]
    with pytest.raises(ValueError, match="1024"):  # the API would refuse it: refused before it is sent
        assignment_body(**{**BODY_ARGS, "project": "p" * 200, "windows": target})
    long_id = "a" * 60
    ids = {assignment_id(long_id, zone) for zone in ("us-central1-a", "us-central1-b")}
    assert len(ids) == 2 and all(len(i) <= 63 and i[-1].isalnum() for i in ids)
    assert assignment_id("patchcycle-falcon-sensor", ZONE_A) == "patchcycle-falcon-sensor-us-central1-a"
    assert (
        "os_policy_assignments" in CHECKS and CHECKS["os_policy_assignments"] is checks.os_policy_assignments
    )


def test_install_and_upgrade_per_zone_leaving_compliant_vms_untouched(fleet: Fleet, task: Any) -> None:
    op, run, bucket = task
    run.write_record(run.paths.file(NEEDS_RECORD), needs_record(fleet))
    before = copy.deepcopy(fleet.truth("cu_alpha"))

    attempt(op, 1)

    record = run.read_record(run.paths.file(install_record("gcp")))
    by_id = {n["host_id"]: n["name"] for n in needs_record(fleet)["needs"]}
    results = {by_id.get(host_id, host_id): r for host_id, r in record["hosts"].items()}
    assert record["wait"] == "done"
    assert {n: r["result"] for n, r in results.items()} == {
        "new-01": "sent_succeeded",
        "new-02": "sent_succeeded",
        "old-01": "sent_succeeded",
        "bad-01": "failed",
        "rfm-01": "not_sent",
        "win-01": "sent_succeeded",
        "wold-01": "sent_succeeded",
        "prd-01": "not_sent",
    }
    assert "Error installing Falcon sensor" in results["bad-01"]["reason"], results["bad-01"]
    assert results["rfm-01"]["reason"] == REINSTALL_REASON
    # The Windows VMs: installed and upgraded by the PowerShell OS policy, read back from its report.
    assert results["win-01"]["status"] == "COMPLIANT" and results["win-01"]["version"] == TARGET
    assert results["prd-01"]["reason"].startswith("no sensor version to install")
    truth = fleet.truth("cu_alpha")
    assert truth["new-01"]["falcon"]["version"].startswith(TARGET)
    old = truth["old-01"]["falcon"]  # upgraded (--update): the new build runs once it registers
    assert (old["upgrade_to"] or old["version"]).startswith(TARGET), old
    assert truth["win-01"]["falcon"]["version"].startswith(TARGET)
    wold = truth["wold-01"]["falcon"]  # --update: only a Windows host of zone B has a sensor to upgrade
    assert (wold["upgrade_to"] or wold["version"]).startswith(TARGET), wold
    for name in ("win-01", "wold-01"):
        (action,) = [a for a in truth[name]["actions"] if a["action"] == "gcp.osPolicyAssignment"]
        assert action["exit_code"] == 0 and action["secrets_in_clear"] == [], action
    # Selected by the filter but already in the desired state: validate exits 100, enforce never runs.
    for name in ("cur-01", "rfm-01"):
        assert truth[name]["falcon"] == before[name]["falcon"], name
        assert not [a for a in truth[name]["actions"] if a["action"] == "gcp.osPolicyAssignment"], name
    # A newer sensor is kept. (The validate script accepts the target or newer; fleetsim reads a validate
    # step as "at --sensor-version" and runs enforce, which without --update skips an installed sensor.)
    assert truth["newer-01"]["falcon"] == before["newer-01"]["falcon"]
    # No secret anywhere in what the task recorded.
    assert all(SECRET.encode() not in data for data in bucket.objects.values())
    events = recorded_events(bucket)
    sent = [e for e in events if e["action"] == "falcon.install_sent"]
    assert sorted(e["target"] for e in sent) == [f"gcp:{PROJECT}:{ZONE_A}", f"gcp:{PROJECT}:{ZONE_B}"]
    assert {e["details"]["method"] for e in sent} == {"create"}
    assert {e["target"]: e["details"]["versions"] for e in sent} == {
        f"gcp:{PROJECT}:{ZONE_A}": {"linux": TARGET, "windows": TARGET},
        f"gcp:{PROJECT}:{ZONE_B}": {"linux": TARGET, "windows": TARGET},
    }
    # One assignment per zone, with an OS policy per OS family; the Windows one runs PowerShell.
    zonal = osconfig_v1.OsConfigZonalServiceClient(
        transport="rest", credentials=AnonymousCredentials(), client_options={"api_endpoint": fleet.url}
    )
    got = zonal.get_os_policy_assignment(
        name=f"projects/{PROJECT}/locations/{ZONE_A}/osPolicyAssignments/"
        + next(e["details"]["assignment"] for e in sent if e["target"].endswith(ZONE_A))
    )
    policies = {p.id: p for p in got.os_policies}
    assert set(policies) == {POLICY_ID, WINDOWS_POLICY_ID}
    windows = policies[WINDOWS_POLICY_ID].resource_groups[0]
    assert [f.os_short_name for f in windows.inventory_filters] == ["windows"]
    assert windows.resources[0].exec_.enforce.interpreter.name == "POWERSHELL"
    assert "--update" not in windows.resources[0].exec_.enforce.script  # no Windows sensor to upgrade here
    finished = [e for e in events if e["action"] == "falcon.install_finished"]
    assert finished and finished[-1]["result"] == "failed"


def test_a_second_run_updates_the_assignment_it_left(fleet: Fleet, task: Any) -> None:
    op, run, bucket = task
    record = needs_record(fleet)
    # A first run leaves zone A's assignment (it creates it, or updates the one another test left: this
    # test does not depend on which tests ran before it, or where).
    first = dict(record, needs=[n for n in record["needs"] if n["name"] == "new-01"])
    run.write_record(run.paths.file(NEEDS_RECORD), first)
    attempt(op, 1)
    bucket.objects.clear()  # the next run starts with records and events of its own
    # The next run: zone A's staging host again, now asked for a newer version (a new revision).
    record["needs"] = [
        dict(n, action="upgrade", sensor_version=TARGET, target_version="7.15.16807")
        for n in record["needs"]
        if n["name"] == "new-01"
    ]
    run.write_record(run.paths.file(NEEDS_RECORD), record)

    attempt(op, 1)

    events = recorded_events(bucket)
    (sent,) = [e for e in events if e["action"] == "falcon.install_sent"]
    assert sent["details"]["method"] == "update" and sent["details"]["versions"] == {"linux": "7.15.16807"}
    result = run.read_record(run.paths.file(install_record("gcp")))["hosts"]
    assert [r["result"] for r in result.values()] == ["sent_succeeded"]
    sensor = fleet.truth("cu_alpha")["new-01"]["falcon"]
    assert (sensor["upgrade_to"] or sensor["version"]).startswith("7.15.16807"), sensor
