"""Falcon records matched to hosts by cloud identity, and the sensor and kernel gates as pure functions."""

from __future__ import annotations

import pytest

from patchcycle.domain.preflight import evaluate_preflight
from patchcycle.domain.sensor import (
    MATCH_CONFLICT,
    MATCH_HOSTNAME_IP,
    MATCH_INSTANCE,
    MATCH_NONE,
    attach_falcon,
    kernel_gate,
    sensor_gate,
)


def device(aid: str, hostname: str, **kw):
    return {
        "device_id": aid,
        "hostname": hostname,
        "agent_version": kw.pop("agent_version", "7.14.16703.0"),
        "reduced_functionality_mode": kw.pop("rfm", "no"),
        "last_seen": kw.pop("last_seen", "2026-11-20T10:00:00Z"),
        **kw,
    }


def host(host_id: str, name: str, cloud: str = "aws", account: str = "111111111111", **kw):
    return {"host_id": host_id, "name": name, "cloud": cloud, "account": account, **kw}


EC2 = {"service_provider": "AWS_EC2_V2", "service_provider_account_id": "111111111111"}


# --- matching ---------------------------------------------------------------------------------------


def test_ec2_and_gce_hosts_match_on_instance_id_and_account():
    devices = [
        device("aid-1", "web-01", instance_id="i-01", **EC2),
        device(
            "aid-2", "db-01", instance_id="7001", service_provider="GCP", service_provider_account_id="proj-a"
        ),
    ]
    rows = attach_falcon(
        [host("i-01", "web-01"), host("7001", "db-01", cloud="gcp", account="proj-a")], devices
    )
    assert [(r["falcon_device_id"], r["falcon_match"]) for r in rows] == [
        ("aid-1", MATCH_INSTANCE),
        ("aid-2", MATCH_INSTANCE),
    ]


def test_same_hostname_in_another_account_is_not_a_match():
    other_account = {**EC2, "service_provider_account_id": "999999999999"}
    rows = attach_falcon(
        [host("i-01", "web-01")], [device("aid-9", "web-01", instance_id="i-01", **other_account)]
    )
    assert rows[0]["falcon_device_id"] is None
    assert rows[0]["falcon_match"] == MATCH_CONFLICT
    assert "not matched on hostname alone" in sensor_gate(rows[0]).reason


def test_arc_machine_matches_on_hostname_and_ip_together():
    arc = host(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/app-01", "APP-01"
    )
    arc = {**arc, "cloud": "azure", "private_ip": "10.1.2.3"}
    right = device("aid-1", "app-01", local_ip="10.1.2.3")
    wrong_ip = device("aid-2", "app-01", local_ip="10.9.9.9")
    rows = attach_falcon([arc], [wrong_ip, right])
    assert (rows[0]["falcon_device_id"], rows[0]["falcon_match"]) == ("aid-1", MATCH_HOSTNAME_IP)
    alone = attach_falcon([arc], [wrong_ip])[0]
    assert alone["falcon_device_id"] is None and alone["falcon_match"] == MATCH_CONFLICT


def test_reinstalled_sensor_stale_record_loses_to_the_latest_seen():
    stale = device(
        "aid-old",
        "web-01",
        instance_id="i-01",
        last_seen="2026-10-01T00:00:00Z",
        agent_version="7.10.1.0",
        **EC2,
    )
    fresh = device("aid-new", "web-01", instance_id="i-01", last_seen="2026-11-20T00:00:00Z", **EC2)
    row = attach_falcon([host("i-01", "web-01")], [fresh, stale])[0]
    assert row["falcon_device_id"] == "aid-new"
    assert row["falcon_records"] == 2
    assert row["falcon_sensor_version"] == "7.14.16703.0"


def test_host_without_any_record_is_unmatched_and_held():
    row = attach_falcon([host("i-01", "web-01")], [])[0]
    assert row["falcon_match"] == MATCH_NONE and row["falcon_rfm"] is None
    assert sensor_gate(row).action == "hold"
    assert sensor_gate(row).reason == "no Falcon sensor record for this host"


def test_rfm_is_a_string_field_and_holds_the_host():
    row = attach_falcon(
        [host("i-01", "web-01")], [device("a", "web-01", instance_id="i-01", rfm="yes", **EC2)]
    )[0]
    assert row["falcon_rfm"] is True
    verdict = sensor_gate(row)
    assert verdict.action == "hold" and "reduced-functionality mode" in verdict.reason
    healthy = attach_falcon([host("i-01", "web-01")], [device("a", "web-01", instance_id="i-01", **EC2)])[0]
    assert sensor_gate(healthy).action == "patch"


# --- the kernel gate --------------------------------------------------------------------------------

TARGET = "5.15.0-126-generic"
RECORD = {
    "release": TARGET,
    "base_package_supported_sensor_versions": ["7.14.16703"],
    "ztl_supported_sensor_versions": ["7.13.16606"],
    "ztl_module_supported_sensor_versions": [],
}


def linux(version: str | None = "7.14.16703.0", kernel: str = "5.15.0-119-generic"):
    return {"host_id": "h", "kernel": kernel, "falcon_sensor_version": version}


@pytest.mark.parametrize(
    ("sensor", "action"),
    [
        ("7.14.16703.0", "patch"),  # base package support
        ("7.13.16606.0", "patch"),  # Zero Touch Linux support counts too
        ("7.10.16303.0", "no_kernel"),  # an older sensor: the kernel update is held
    ],
)
def test_kernel_gate_by_sensor_version(sensor, action):
    assert kernel_gate(linux(sensor), TARGET, {TARGET: RECORD}, "hold_kernel_update").action == action


def test_unknown_kernel_is_as_unsafe_as_an_unsupported_one():
    verdict = kernel_gate(linux(), TARGET, {}, "hold_kernel_update")
    assert verdict.action == "no_kernel"
    assert verdict.reason == (
        f"kernel {TARGET} is unknown to Falcon's support table; kernel update held, other patches installed"
    )


def test_hold_host_policy_holds_the_whole_host():
    verdict = kernel_gate(linux("7.10.16303.0"), TARGET, {TARGET: RECORD}, "hold_host")
    assert verdict.action == "hold"
    assert verdict.reason.startswith("Falcon sensor 7.10.16303.0 does not support kernel 5.15.0-126-generic")


@pytest.mark.parametrize(
    ("row", "target"),
    [
        (linux(), None),  # the plan moves no kernel
        (linux(kernel=TARGET), TARGET),  # already on the target kernel
        (linux(version=None), TARGET),  # no sensor to protect (the sensor gate decides)
    ],
)
def test_kernel_gate_passes_when_nothing_can_go_blind(row, target):
    assert kernel_gate(row, target, {}, "hold_host").action == "patch"


# --- in the pre-flight ------------------------------------------------------------------------------


def _plan(kernel_release: str | None):
    return {
        "approved": {
            "ubuntu_22_04": [
                {
                    "id": "USN-1",
                    "kernel_update": True,
                    "kernel_release": kernel_release,
                    "released": "2026-10-01",
                },
                {"id": "USN-2", "kernel_update": False, "kernel_release": None, "released": "2026-10-02"},
            ]
        }
    }


@pytest.fixture
def falcon_tenant(make_tenant):
    return make_tenant(
        falcon={"required": True},
        baselines=[
            {
                "os_family": "ubuntu_22_04",
                "classifications": ["Security"],
                "severities": ["Critical", "High"],
                "approve_after_days": 7,
            }
        ],
    )


def _row(host_row, host_id, **kw):
    return {
        **host_row(host_id),
        "os_family": "ubuntu_22_04",
        "kernel": "5.15.0-119-generic",
        "falcon_device_id": f"aid-{host_id}",
        "falcon_sensor_version": "7.14.16703.0",
        "falcon_rfm": False,
        "falcon_match": MATCH_INSTANCE,
        **kw,
    }


def test_preflight_applies_sensor_and_kernel_gates(falcon_tenant, host_row):
    rows = [
        _row(host_row, "i-ok"),
        _row(host_row, "i-old", falcon_sensor_version="7.10.16303.0"),
        _row(host_row, "i-rfm", falcon_rfm=True),
        _row(host_row, "i-none", falcon_device_id=None, falcon_sensor_version=None, falcon_match=MATCH_NONE),
    ]
    result = evaluate_preflight(falcon_tenant, rows, plan=_plan(TARGET), kernel_support={TARGET: RECORD})
    by_id = {d.host_id: d for d in result.decisions}
    assert (by_id["i-ok"].verdict, by_id["i-ok"].variant) == ("eligible", "full")
    assert (by_id["i-old"].verdict, by_id["i-old"].variant) == ("eligible", "no_kernel")
    assert "does not support kernel" in by_id["i-old"].reason
    assert by_id["i-rfm"].verdict == "held" and "reduced-functionality" in by_id["i-rfm"].reason
    assert by_id["i-none"].verdict == "held"
    assert [d.host_id for d in result.kernel_held] == ["i-old"]
    assert result.to_dict()["kernel_held"] == 1


def test_tenant_without_falcon_skips_the_sensor_gates(make_tenant, host_row):
    tenant = make_tenant()
    row = {**host_row("i-1"), "falcon_device_id": None, "falcon_match": MATCH_NONE}
    assert evaluate_preflight(tenant, [row]).decisions[0].verdict == "eligible"


# --- a flapping agent -------------------------------------------------------------------------------


def test_an_agent_that_just_reconnected_is_held_until_it_settles(make_tenant, host_row):
    import datetime as dt

    from patchcycle.domain.preflight import agent_flapping

    now = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
    fresh = {**host_row("m-1"), "agent_kind": "arc", "agent_status_changed_at": "2026-11-22T01:55:00Z"}
    settled = {**host_row("m-2"), "agent_kind": "arc", "agent_status_changed_at": "2026-11-22T01:40:00Z"}
    unknown = {**host_row("m-3"), "agent_status_changed_at": None}
    garbled = {**host_row("m-4"), "agent_status_changed_at": "yesterday"}
    assert agent_flapping(fresh, now) == (
        "arc agent changed status 5 min ago (flapping?); not patched until it has been stable for 15 min"
    )
    assert agent_flapping(settled, now) is None and agent_flapping(unknown, now) is None
    assert "unreadable" in agent_flapping(garbled, now)
    result = evaluate_preflight(make_tenant(), [fresh, settled, unknown], now=now)
    assert [d.verdict for d in result.decisions] == ["held", "eligible", "eligible"]
