"""BackupAttestationHook against fleetsim's backup system, configured only by an Airflow http connection."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlparse

import pytest
from fleetsim_testkit import group, patch, scenario_dict, wait_for

from patchcycle.hooks.backup_attestation import (
    ATTESTATION_BATCH,
    BackupAttestationError,
    BackupAttestationHook,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-backup-attestation")]

CONN = "backup_fleetsim"
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "bk",
            "azure": {
                "subscription_id": "00000000-0000-0000-0000-00000000c401",
                "resource_group": "rg-backup",
                "groups": [group("bk", 4, "ubuntu_22_04")],
            },
            "faults": {"backup_fails": ["bk-02"], "backup_slow_seconds": {"bk-03": 1.0}},
        }
    ],
    catalog=[patch("USN-1", "ubuntu_22_04", title="openssl 3.0.2-0ubuntu1.19")],
)


def _day_ago() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=1)


@pytest.fixture
def connect(fleet, monkeypatch):
    def _connect(**fields: object) -> None:
        conn = {"conn_type": "http", "host": fleet.url, "password": "backup-api-token"} | fields
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))

    _connect()
    return _connect


def test_attestations_by_machine_id(fleet, connect):
    truth = fleet.truth("bk")
    ids = [truth[f"bk-0{i}"]["host_id"] for i in range(1, 5)]
    got = BackupAttestationHook(CONN).attestations(ids, _day_ago())
    assert list(got) == ids
    assert [got[i]["status"] for i in ids] == ["succeeded", "failed", "running", "succeeded"]
    assert got[ids[0]]["backupId"].startswith("bk-") and got[ids[0]]["completedAt"]
    json.dumps(got)
    slow = wait_for(
        lambda: BackupAttestationHook(CONN).attestations([ids[2]], _day_ago())[ids[2]],
        lambda row: row["status"] != "running",
        timeout=5,
    )
    assert slow["status"] == "succeeded"
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert BackupAttestationHook(CONN).attestations([ids[0]], future)[ids[0]]["status"] == "none"


def test_more_than_a_batch_of_machines_takes_one_query_per_batch(fleet, connect):
    ids = [
        f"/subscriptions/x/resourceGroups/y/providers/Microsoft.HybridCompute/machines/m{i}"
        for i in range(1500)
    ]
    before = fleet.calls().get("backup.attestations.query", 0)
    got = BackupAttestationHook(CONN).attestations(ids + ids[:10], _day_ago())  # repeats asked once
    assert len(got) == 1500 and {row["status"] for row in got.values()} == {"none"}
    assert fleet.calls()["backup.attestations.query"] == before + -(-1500 // ATTESTATION_BATCH)


def test_a_host_name_with_schema_and_port_reaches_the_same_api(fleet, connect):
    url = urlparse(fleet.url)
    connect(host=url.hostname, schema="http", port=url.port)
    machine = fleet.truth("bk")["bk-04"]["host_id"]
    assert BackupAttestationHook(CONN).attestations([machine], _day_ago())[machine]["status"] == "succeeded"


def test_a_refused_token_names_the_answer(fleet, connect):
    connect(password=" ")
    with pytest.raises(BackupAttestationError) as exc:
        BackupAttestationHook(CONN).attestations(["m"], _day_ago())
    assert "401" in str(exc.value) and fleet.url in str(exc.value)


def test_connection_and_arguments_are_checked(fleet, connect):
    connect(password=None)
    with pytest.raises(ValueError, match="API token"):
        BackupAttestationHook(CONN).attestations(["m"], _day_ago())
    connect()
    with pytest.raises(ValueError, match="timezone-aware"):
        BackupAttestationHook(CONN).attestations(["m"], dt.datetime(2026, 11, 1))


def test_an_unreachable_backup_system_is_an_error_naming_it(fleet, connect):
    connect(host="http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(BackupAttestationError) as exc:
        BackupAttestationHook(CONN).attestations(["m"], _day_ago())
    assert "127.0.0.1:9" in str(exc.value)
