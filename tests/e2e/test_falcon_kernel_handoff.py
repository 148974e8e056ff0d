"""The kernel-held hand-off through Airflow against fleetsim (the seed paper's 6.2: pin the kernel, upgrade
the sensor): a cycle holds a host's kernel because its Falcon sensor does not support the planned kernel and
hands the sensor upgrade to the tenant's roll-out; the roll-out upgrades it; the next cycle patches the host
with its kernel and its evidence shows the hand-off resolved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devtools.local import fleetsim_get, run_cycle
from tests.conftest import REPO
from tests.e2e.conftest import fleet_with
from tests.e2e.test_patch_cycle import NOV
from tests.e2e.test_three_clouds import FIRST_SEEN

pytestmark = pytest.mark.e2e

CYCLE = "patch_cycle__cu_alpha"
ROLLOUT_DAG = "falcon_rollout__cu_alpha"
DEC = "2026-12-27T02:00:00+00:00"
ROLLOUT = {
    "host_groups": {"nonprod": "tag-nonprod", "staging": "tag-staging", "prod": "tag-prod"},
    "install": {"aws": {"installer_bucket": "patchcycle-falcon-installers-cu-alpha"}},
}
PLANNED = "5.10.230-223.885.amzn2.x86_64"


def with_rollout(alpha: dict[str, Any]) -> None:
    alpha["falcon"] = {**alpha.get("falcon", {}), "rollout": ROLLOUT}


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(row["name"]): row for row in rows}


def test_a_kernel_held_host_gets_its_sensor_upgraded_and_its_kernel_in_the_next_cycle(
    airflow_home: Path, tmp_path: Path
) -> None:
    with fleet_with(
        airflow_home,
        tmp_path,
        scenario="alpha_sensor_handoff.yaml",
        tenants_from=REPO / "include" / "tenants",
        edit_alpha=with_rollout,
    ) as fleet:
        fleet.seed_first_seen(FIRST_SEEN)
        november = fleet.run(CYCLE, NOV)
        rc = run_cycle(fleet.env, ROLLOUT_DAG, "2026-11-23T06:00:00+00:00", {}, tmp_path / "rollout.log")
        packs = november_rollout(fleet)
        rollout = json.loads(next(v for k, v in packs.items() if k.endswith("rollout.json")))
        upgraded = fleetsim_get(fleet.url, "/fleetsim/ground-truth")["hosts"]
        december = fleet.run(CYCLE, DEC)

    # November: both old sensors lack the planned kernel; each host got the rest of the plan, kept its
    # kernel, and its sensor upgrade was handed to the roll-out, due before the December cycle.
    hosts = by_name(november.evidence["hosts"])
    assert hosts["t-dev-old-01"]["install_variant"] == "no_kernel", hosts["t-dev-old-01"]
    handoff = november.evidence["sensor_upgrades"]
    assert handoff["rollout_dag_id"] == ROLLOUT_DAG and handoff["followed_up"] == []
    handed = by_name(handoff["handed_off"])
    assert set(handed) == {"t-dev-old-01", "t-arc-prd-old-01"}
    assert handed["t-dev-old-01"]["kernel"] == PLANNED
    assert handed["t-dev-old-01"]["upgrade_to"] == "7.14.16703"
    assert handed["t-dev-old-01"]["due_before"] == DEC

    # The roll-out read the hand-off: the AWS host's sensor was upgraded through the Falcon install
    # document and validated; the Arc host is reported, its upgrade not done (the extension does not
    # upgrade an installed sensor), so the run fails after its pack.
    assert rc != 0
    needs = by_name(rollout["needs"])
    assert needs["t-dev-old-01"]["action"] == "upgrade"
    assert f"does not support the planned kernel {PLANNED}" in needs["t-dev-old-01"]["reason"]
    assert needs["t-dev-old-01"]["target_version"] == "7.14.16703"
    assert rollout["installs"][needs["t-dev-old-01"]["host_id"]]["result"] == "sent_succeeded"
    checked = by_name(rollout["validation"]["validations"])
    assert checked["t-dev-old-01"]["passed"], checked["t-dev-old-01"]
    assert set(rollout["kernel_handoff"].values()) == {PLANNED, "5.15.0-126-generic"}
    old = next(h for h in upgraded if h["name"] == "t-dev-old-01")
    assert old["falcon"]["version"] == "7.14.16703.0" and old["kernel"] != PLANNED

    # December: the host is patched with its kernel, and the hand-off is resolved; the Arc host is not.
    after = by_name(december.evidence["hosts"])
    assert after["t-dev-old-01"]["final_state"] == "patched", after["t-dev-old-01"]
    assert after["t-dev-old-01"]["install_variant"] != "no_kernel"
    assert december.truth["t-dev-old-01"]["kernel"] == PLANNED
    followed = by_name(december.evidence["sensor_upgrades"]["followed_up"])
    assert december.evidence["sensor_upgrades"]["previous_cycle_date"] == NOV[:10]
    assert followed["t-dev-old-01"]["status"] == "resolved", followed["t-dev-old-01"]
    assert followed["t-arc-prd-old-01"]["status"] == "open"
    assert "still 7.10.16303" in followed["t-arc-prd-old-01"]["reason"]


def november_rollout(fleet: Any) -> dict[str, bytes]:
    """The roll-out's pack files, by key."""
    s3 = fleet.s3()
    bucket = "patchcycle-evidence-cu-alpha"
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="falcon-rollout/")
        for o in page.get("Contents", [])
        if "/pack/" in o["Key"]
    ]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}
