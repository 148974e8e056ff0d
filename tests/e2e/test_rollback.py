"""Rollback end to end: a three-cloud cycle patches hosts, then ``patchcycle_rollback__cu_alpha`` (through
Airflow, against fleetsim) restores one EC2, one Arc and one GCE host from that cycle's backups.

fleetsim's ground truth must show them back at their pre-patch packages and kernel and online, and the
rollback record must be in the evidence bucket. A request naming a host the cycle never backed up is
refused, naming it, before any host is touched."""

from __future__ import annotations

import json

import pytest

from devtools.local import fleetsim_get, run_cycle
from tests.e2e.conftest import ALPHA_BUCKET
from tests.e2e.test_patch_cycle import DAG_ID, NOV
from tests.e2e.test_three_clouds import FIRST_SEEN

pytestmark = [pytest.mark.e2e, pytest.mark.tenants("demo"), pytest.mark.scenario("alpha_three_clouds.yaml")]

ROLLBACK_DAG = "patchcycle_rollback__cu_alpha"
CYCLE = NOV[:10]
HOSTS = {"aws": "t-prd-web-01", "azure": "t-arc-prd-web-01", "gcp": "t-gce-stg-db-01"}
RESTORE_ACTIONS = {
    "aws": "ec2.replace_root_volume",
    "azure": "backup.restore",
    "gcp": "gcp.restore_boot_disk",
}
BACKED_UP_STATE = ("kernel", "missing", "installed", "failed", "agent_status")


def truth(fleet) -> dict[str, dict]:
    return {h["name"]: h for h in fleetsim_get(fleet.url, "/fleetsim/ground-truth?tenant=cu_alpha")["hosts"]}


def rollback(fleet, logical_date: str, hosts: list[str], reason: str) -> tuple[int, str]:
    log_path = fleet.workdir / f"rollback-{logical_date[:13]}.log"
    conf = {"cycle": CYCLE, "hosts": hosts, "reason": reason}
    rc = run_cycle(fleet.env, ROLLBACK_DAG, logical_date, conf, log_path)
    return rc, log_path.read_text()


def restores(host: dict) -> list[dict]:
    return [a for a in host["actions"] if a["action"] in RESTORE_ACTIONS.values()]


def test_failed_hosts_roll_back_from_the_cycles_backups_on_every_cloud(fleet) -> None:
    before = truth(fleet)
    fleet.seed_first_seen(FIRST_SEEN)  # the Arc machines' Ubuntu updates, as earlier cycles saw them
    result = fleet.run(DAG_ID, NOV)
    for name in HOSTS.values():
        assert result.host(name)["final_state"] == "patched", name
        assert result.truth[name]["kernel"] != before[name]["kernel"], f"{name}'s patch changed no kernel"
        assert result.host(name)["backup_id"], name

    # A host the cycle never backed up (held by pre-flight) refuses the whole request, naming it; the other
    # host named is not touched.
    rc, log = rollback(
        fleet, "2026-11-23T09:00:00+00:00", ["t-prd-web-02", "t-gce-dev-db-02"], "test refusal"
    )
    assert rc != 0
    assert "t-gce-dev-db-02" in log and "has no backup from cycle 2026-11-22" in log
    assert fleet.task_states(ROLLBACK_DAG) == {"select": "failed", "restore": "upstream_failed",
                                               "verify": "upstream_failed"}  # fmt: skip
    after_refusal = truth(fleet)
    for name in ("t-prd-web-02", "t-gce-dev-db-02"):
        assert after_refusal[name]["actions"] == result.truth[name]["actions"], f"{name} was touched"

    # One host per cloud, by name (the Arc machine by its id): each restored through its cloud's API.
    arc_id = result.truth[HOSTS["azure"]]["host_id"]
    rc, log = rollback(
        fleet, "2026-11-23T10:00:00+00:00", [HOSTS["aws"], arc_id, HOSTS["gcp"]], "app errors after patching"
    )
    assert rc == 0, log[-4000:]
    assert fleet.task_states(ROLLBACK_DAG) == {"select": "success", "restore": "success", "verify": "success"}
    now = truth(fleet)
    for cloud, name in HOSTS.items():
        for key in BACKED_UP_STATE:
            assert now[name][key] == before[name][key], (name, key)
        (restore,) = restores(now[name])
        assert restore["action"] == RESTORE_ACTIONS[cloud] and restore["rebooted"] is True
    assert now["t-gce-stg-db-01"]["actions"][-1]["snapshot"] == result.host("t-gce-stg-db-01")["backup_id"]
    assert now["t-prd-web-01"]["actions"][-1]["image_id"] == result.host("t-prd-web-01")["backup_id"]
    for name, host in now.items():  # no other host was restored
        if name not in HOSTS.values():
            assert not restores(host), name

    # The record: written under the cycle, beside (never over) what the cycle wrote.
    s3 = fleet.s3()
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=ALPHA_BUCKET, Prefix=f"cycles/{CYCLE}/"
        )
        for o in page.get("Contents", [])
    ]
    assert {k for k in result.keys if k.startswith(f"cycles/{CYCLE}/")} <= set(keys)
    (record_key,) = [k for k in keys if k.endswith("/rollback/rollback.try-1.json")]
    record = json.loads(s3.get_object(Bucket=ALPHA_BUCKET, Key=record_key)["Body"].read())
    assert record["outcome"] == "succeeded" and record["trigger"] == "manual"
    assert record["reason"] == "app errors after patching" and record["cycle_date"] == CYCLE
    assert record["summary"] == {"hosts": 3, "rolled_back": 3, "failed": 0}
    by_name = {h["name"]: h for h in record["hosts"]}
    for cloud, name in HOSTS.items():
        entry = by_name[name]
        assert entry["result"] == "rolled_back" and entry["online"] is True
        assert entry["backup_id"] == result.host(name)["backup_id"], name
        assert entry["kernel_after"] == (None if cloud == "aws" else before[name]["kernel"]), name
    assert any(k.endswith("/events/verify.try-1.json") for k in keys if "/runs/" in k)
