"""The roll-out's Azure Arc install task driven through execute against fleetsim: the find task's needs
(SensorNeedsOperator, for real), then CrowdStrike's Falcon extension put on each Arc machine with no sensor
through the unmodified azure-mgmt-hybridcompute SDK, a bounded number at a time, polled with the
``arc_extensions`` check in the worker (``deferrable=False``: the same check and events as the triggerer),
and ``records/install-azure.json`` in the shape validate and evidence read. The connections are the ones a
local run gets (``devtools.local.tenant_connections``), so the API client handed to the extension is one
fleetsim's Falcon accepts. The client's secret appears in no record, event or XCom."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleetsim"))

from fleetsim_testkit import Fleet, group, running, scenario_dict  # noqa: E402

from devtools.local import FLEETSIM_FALCON_SECRET, tenant_connections  # noqa: E402
from patchcycle.config.models import RateControl  # noqa: E402
from patchcycle.operators.falcon_rollout import RolloutContext  # noqa: E402
from patchcycle.reports.store import EvidenceStore  # noqa: E402
from tests.operators.stand_ins import CONTEXT, MemoryBucket  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operators-falcon-arc")]

REPO = Path(__file__).resolve().parents[2]
TENANT = "cu_arcx"
SUB = "7a1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a77"
RG = "rg-arcx"
KERNEL = "5.15.0-119-generic"
BUCKET_NAME = "patchcycle-evidence-cu-arcx"
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": TENANT,
            "azure": {
                "subscription_id": SUB,
                "resource_group": RG,
                "location": "westeurope",
                "groups": [
                    group("lx", 5, "ubuntu_22_04", kernel=KERNEL, falcon_sensor=None),
                    group("wn", 1, "windows_2022", falcon_sensor=None),
                    group("old", 1, "ubuntu_22_04", kernel=KERNEL, falcon_sensor="7.13.16606"),
                ],
            },
            "faults": {"falcon_install_fails": ["lx-02"], "agent_offline": ["lx-04"]},
        }
    ],
    catalog=[],
    falcon={
        "default_sensor_version": "7.13.16606",
        "kernels": [
            {
                "release": KERNEL,
                "vendor": "ubuntu",
                "base_package_supported_sensor_versions": ["7.13.16606", "7.14.16703", "7.15.16807"],
            }
        ],
    },
)

# Sensors installed here never register during the module: a second run finds them again as needing an
# install, and the extension then finds a sensor and installs nothing.
SCENARIO["timings"].update(falcon_registration_seconds=3600)


@pytest.fixture(scope="module")
def fleet():
    with running(SCENARIO) as f:
        yield f


@pytest.fixture(scope="module")
def tenants_dir(tmp_path_factory) -> Path:
    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_alpha.yaml").read_text())
    data.update(id=TENANT, display_name="Arc Extension Credit Union")
    data["clouds"] = {"azure": {"subscriptions": [{"subscription_id": SUB, "resource_groups": [RG]}]}}
    data["evidence"] = {"bucket": BUCKET_NAME, "region": "us-east-1"}
    data["falcon"] = {
        "required": True,
        "rollout": {
            "host_groups": {"nonprod": "arcx-nonprod", "staging": "arcx-staging", "prod": "arcx-prod"},
            "sensor_version": {"max_versions_behind": 0},
            "install": {"azure": {"rate_control": {"max_concurrency": "2", "max_errors": "5"}}},
        },
    }
    folder = tmp_path_factory.mktemp("tenants")
    (folder / f"{TENANT}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def windows_policy(fleet: Fleet) -> str:
    """An enabled Windows sensor-update policy on the 7.13 build: the only Windows build listed, so the
    roll-out's target; without it the extension would install the newest Windows installer (7.15)."""
    from falconpy import SensorUpdatePolicy

    policies = SensorUpdatePolicy(
        client_id=TENANT, client_secret=FLEETSIM_FALCON_SECRET, base_url=fleet.url, timeout=10
    )
    builds = policies.query_combined_builds(platform="windows")["body"]["resources"]
    build = next(b["build"] for b in builds if b["sensor_version"] == "7.13.16606" and "|" not in b["build"])
    created = policies.create_policies_v2(
        name="arcx-windows-7.13", platform_name="Windows", settings={"build": build}
    )["body"]["resources"][0]
    policies.perform_policies_action(action_name="enable", ids=[created["id"]])
    return "arcx-windows-7.13"


@pytest.fixture
def env(fleet: Fleet, tenants_dir: Path, windows_policy: str, monkeypatch) -> None:
    monkeypatch.setenv("PATCHCYCLE_TENANTS_DIR", str(tenants_dir))
    for name, value in tenant_connections(fleet.url, tenants_dir).items():
        monkeypatch.setenv(name, value)


def find_then_install(bucket: MemoryBucket, **install: Any) -> tuple[Any, Any]:
    """Run the find task, then the Azure install task (polling in the worker); the install's XCom and
    the task itself."""
    from airflow.sdk import DAG

    from patchcycle.operators.falcon_install_azure import InstallSensorsArcOperator
    from patchcycle.operators.falcon_rollout import SensorNeedsOperator

    with DAG(f"falcon_rollout__{TENANT}", schedule=None):
        find = SensorNeedsOperator(task_id="find", tenant_id=TENANT)
        op = InstallSensorsArcOperator(
            task_id="install_azure", tenant_id=TENANT, deferrable=False, waiter_delay=0.2, **install
        )
    store = EvidenceStore(bucket, BUCKET_NAME)
    find.__dict__["store"] = store
    op.__dict__["store"] = store
    find.execute(CONTEXT)
    return op.execute(CONTEXT), op


def record(bucket: MemoryBucket, name: str) -> dict[str, Any]:
    keys = sorted(k for k in bucket.objects if k.endswith(".json") and f"/{name}.try-" in k)
    return json.loads(bucket.objects[keys[-1]])


def events(bucket: MemoryBucket) -> list[dict[str, Any]]:
    return [e for key, data in bucket.objects.items() if "/events/" in key for e in json.loads(data)]


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in result["hosts"].values()}


def test_machines_without_a_sensor_get_the_extension_each_result_recorded(env, fleet: Fleet) -> None:
    bucket = MemoryBucket()
    xcom, _ = find_then_install(bucket)
    hosts = by_name(record(bucket, "install-azure"))
    truth = fleet.truth(TENANT)
    assert record(bucket, "install-azure")["wait"] == "done"
    for name in ("lx-01", "lx-03", "lx-05", "wn-01"):
        assert hosts[name]["result"] == "sent_succeeded", hosts[name]
        assert hosts[name]["status"] == "The Falcon Sensor installation process completed"
        assert truth[name]["falcon"]["version"].startswith(hosts[name]["version"]), truth[name]["falcon"]
    assert hosts["wn-01"]["extension"] == "FalconSensorWindows"
    assert hosts["lx-01"]["extension"] == "FalconSensorLinux"
    # The sensor-update policy pinned to the target is named (Windows: 7.13); no Linux policy pins 7.15,
    # the newest build, which platform_default gives by taking the newest installer.
    assert hosts["wn-01"]["sensor_update_policy"] == "arcx-windows-7.13"
    assert (hosts["lx-01"]["version"], hosts["lx-01"]["sensor_update_policy"]) == (
        "7.15.16807",
        "platform_default",
    )
    # The install fault and the disconnected machine fail with the operation's own error.
    assert hosts["lx-02"]["result"] == "failed"
    assert "The Falcon Sensor install failed to complete" in hosts["lx-02"]["reason"]
    assert hosts["lx-04"]["result"] == "failed" and "Disconnected" in hosts["lx-04"]["reason"]
    # The extension never upgrades: the old sensor is not sent to, and the reason says why.
    assert hosts["old-01"]["result"] == "not_sent"
    assert "does not upgrade or reinstall an installed sensor" in hosts["old-01"]["reason"]
    assert truth["old-01"]["falcon"]["version"] == "7.13.16606.0"
    assert xcom == {"hosts": 7, "failed": 3}
    # Bounded: at most MaxConcurrency (2) machines a round (a round refills the slots freed), so the six
    # took three rounds or more.
    sent = [len(e["details"]["hosts"]) for e in events(bucket) if e["action"] == "falcon.install_sent"]
    assert sum(sent) == 6 and max(sent) == 2 and len(sent) >= 3, sent
    (finished,) = [e for e in events(bucket) if e["action"] == "falcon.install_finished"]
    assert finished["details"] == {"hosts": 7, "failed": 3} and finished["result"] == "failed"
    # The API client's secret is in no record, event or XCom the task left.
    everything = b"".join(bucket.objects.values()) + json.dumps(xcom).encode()
    assert FLEETSIM_FALCON_SECRET.encode() not in everything
    extension = [a for a in truth["lx-01"]["actions"] if a["action"] == "azure.machineExtension"]
    assert extension and FLEETSIM_FALCON_SECRET not in json.dumps(truth["lx-01"]["actions"])


def test_failures_over_max_errors_stop_new_machines(env, fleet: Fleet, monkeypatch) -> None:
    bucket = MemoryBucket()
    from patchcycle.operators import falcon_install_azure

    strict = RateControl(max_concurrency="1", max_errors="0")
    original = falcon_install_azure.InstallSensorsArcOperator._round

    def with_rate(self, run: RolloutContext, log, state, finished):
        install = run.rollout.install.azure.model_copy(update={"rate_control": strict})
        rollout = run.rollout.model_copy(
            update={"install": run.rollout.install.model_copy(update={"azure": install})}
        )
        monkeypatch.setattr(RolloutContext, "rollout", property(lambda _: rollout))
        return original(self, run, log, state, finished)

    monkeypatch.setattr(falcon_install_azure.InstallSensorsArcOperator, "_round", with_rate)
    had_sensor = fleet.truth(TENANT)["lx-01"]["falcon"] is not None  # installed by an earlier run
    xcom, _ = find_then_install(bucket)
    hosts = by_name(record(bucket, "install-azure"))
    # One machine at a time, in id order: lx-01, then lx-02 fails (the install fault), which exceeds
    # MaxErrors 0, so no other machine is started.
    assert hosts["lx-02"]["result"] == "failed"
    for name in ("lx-03", "lx-04", "lx-05", "wn-01"):
        assert hosts[name]["result"] == "not_sent", hosts[name]
        assert "more than the 0 the install rate control's MaxErrors allows" in hosts[name]["reason"]
    assert [e["action"] for e in events(bucket)].count("falcon.install_budget_exhausted") == 1
    if had_sensor:  # a sensor that never registered: the extension skips it, which is no install
        assert hosts["lx-01"]["result"] == "failed"
        assert "'The Falcon Sensor is already installed' and installed nothing" in hosts["lx-01"]["reason"]
    else:
        assert hosts["lx-01"]["result"] == "sent_succeeded"
    assert xcom == {"hosts": 7, "failed": 7 if had_sensor else 6}
