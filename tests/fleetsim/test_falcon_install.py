"""Installing the Falcon sensor through a cloud's agent: ``FleetState.install_falcon_sensor``, and what the
Falcon API shows of it (through FalconPy's ``Hosts``).

The cloud install paths (an SSM document run, an Arc extension, an OS Config OS policy) end in that
method; these tests call it as they will, on the running server's state, and check the ground truth and
the device record: registration after the delay with the host's cloud identity, the host groups and
policies it falls into, the ``falcon_install_fails`` and ``falcon_registers_other_cid`` faults, and
upgrades that change the version and re-evaluate reduced-functionality mode from the kernel table.
"""

from __future__ import annotations

from typing import Any

import pytest
from falconpy import HostGroup, Hosts, PreventionPolicy
from fleetsim_testkit import Fleet, group, scenario_dict, wait_for

from fleetsim.fleet import SimHost
from fleetsim.seed import falcon_cid

SECRET = "fleetsim-falcon-secret"
OLD_KERNEL = "5.15.0-119-generic"  # supported by 7.14 and 7.15
NEW_KERNEL = "5.15.0-131-generic"  # supported by 7.15 only
REGISTRATION_SECONDS = 1.5
APPLY_SECONDS = 1.0

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "t_in",
            "aws": {
                "account_id": "161616161616",
                "region": "eu-west-1",
                "groups": [
                    group("bare", 6, "ubuntu_22_04", kernel=OLD_KERNEL, falcon_sensor=None),
                    group("old", 3, "ubuntu_22_04", kernel=NEW_KERNEL, falcon_sensor="7.14.16703"),
                    group("wbare", 1, "windows_2022", falcon_sensor=None),
                ],
                "databases": [{"prefix": "db", "count": 1, "environment": "prod"}],
            },
            "faults": {
                "falcon_install_fails": ["bare-04"],
                "falcon_registers_other_cid": ["bare-05"],
                "falcon_rfm": ["old-01", "old-02"],
            },
        }
    ],
    catalog=[],
    falcon={
        "kernels": [
            {
                "release": OLD_KERNEL,
                "vendor": "ubuntu",
                "base_package_supported_sensor_versions": ["7.14.16703", "7.15.16807"],
            },
            {
                "release": NEW_KERNEL,
                "vendor": "ubuntu",
                "base_package_supported_sensor_versions": ["7.15.16807"],
            },
        ]
    },
)
SCENARIO["timings"].update(
    falcon_registration_seconds=REGISTRATION_SECONDS, falcon_policy_apply_seconds=APPLY_SECONDS
)
CID = falcon_cid("t_in")


@pytest.fixture(scope="module")
def hosts(fleet: Fleet) -> Hosts:
    return Hosts(client_id="t_in", client_secret=SECRET, base_url=fleet.url, timeout=10)


def sim_host(fleet: Fleet, name: str) -> SimHost:
    state = fleet.server.state
    with state.lock:
        return next(h for h in state.hosts.values() if h.tenant == "t_in" and h.name == name)


def install(fleet: Fleet, name: str, version: str, cid: str = CID) -> dict[str, Any]:
    return fleet.server.state.install_falcon_sensor(sim_host(fleet, name), version, cid, via="test")


def records(hosts: Hosts, name: str) -> list[dict[str, Any]]:
    ids = hosts.query_devices_by_filter(filter=f"hostname:'{name}'")["body"]["resources"]
    return hosts.get_device_details(ids=ids)["body"]["resources"] if ids else []


def registered(hosts: Hosts, name: str) -> dict[str, Any]:
    [record] = wait_for(lambda: records(hosts, name), bool, timeout=15)
    return record


def test_fresh_install_registers_after_the_delay(fleet: Fleet, hosts: Hosts) -> None:
    # The tenant prepared a group for the host by name, and a policy for the group, before the install.
    groups, prevention = HostGroup(auth_object=hosts), PreventionPolicy(auth_object=hosts)
    [grp] = groups.create_host_groups(
        name="rollout", group_type="static", assignment_rule="device_id:[''],hostname:['bare-01']"
    )["body"]["resources"]
    [policy] = prevention.create_policies(name="rollout", platform_name="Linux")["body"]["resources"]
    prevention.perform_policies_action(action_name="add-host-group", ids=[policy["id"]], group_id=grp["id"])
    prevention.perform_policies_action(action_name="enable", ids=[policy["id"]])

    effect = install(fleet, "bare-01", "7.15.16807")
    assert effect["result"] == "installed" and effect["version"] == "7.15.16807.0" and effect["via"] == "test"
    assert records(hosts, "bare-01") == []  # not registered yet
    truth = fleet.truth("t_in")["bare-01"]
    assert truth["falcon"]["device_id"] == effect["device_id"] and truth["falcon"]["cid"] == CID
    assert truth["falcon"]["registered_at"] is not None
    assert truth["actions"][-1]["action"] == "falcon.install"
    record = registered(hosts, "bare-01")
    assert record["device_id"] == effect["device_id"] and record["cid"] == CID
    assert record["instance_id"] == truth["host_id"] and record["service_provider"] == "AWS_EC2_V2"
    assert record["service_provider_account_id"] == "161616161616" and record["hostname"] == "bare-01"
    assert record["agent_version"] == "7.15.16807.0" and record["reduced_functionality_mode"] == "no"
    assert record["first_seen"] == effect["registers_at"][:19] + "Z"
    assert grp["id"] in record["groups"]
    entry = wait_for(
        lambda: records(hosts, "bare-01")[0]["device_policies"]["prevention"],
        lambda e: e["applied"],
        timeout=15,
    )
    assert entry["policy_id"] == policy["id"] and entry["assigned_date"] == record["first_seen"]
    assert entry["applied_date"] > entry["assigned_date"]


def test_install_failure_and_another_cid_never_reach_the_tenant(fleet: Fleet, hosts: Hosts) -> None:
    state = fleet.server.state
    assert state.falcon_install_fails(sim_host(fleet, "bare-04"))
    failed = install(fleet, "bare-04", "7.15.16807")
    assert failed["result"] == "failed" and "device_id" not in failed
    elsewhere = install(fleet, "bare-05", "7.15.16807")
    assert elsewhere["result"] == "installed"
    control = install(fleet, "bare-02", "7.15.16807")  # installed at the same moment: registers
    registered(hosts, "bare-02")
    truth = fleet.truth("t_in")
    assert truth["bare-04"]["falcon"] is None and truth["bare-04"]["actions"][-1]["result"] == "failed"
    assert truth["bare-05"]["falcon"]["cid"] != CID and control["device_id"] != elsewhere["device_id"]
    assert records(hosts, "bare-04") == [] and records(hosts, "bare-05") == []
    parent = Hosts(client_id="fleetsim-falcon", client_secret=SECRET, base_url=fleet.url, timeout=10)
    assert records(parent, "bare-05") == []  # no client of the scenario holds that CID


def test_upgrade_changes_the_version_and_clears_rfm(fleet: Fleet, hosts: Hosts) -> None:
    [before] = records(hosts, "old-01")
    assert (before["agent_version"], before["reduced_functionality_mode"]) == ("7.14.16703.0", "yes")
    effect = install(fleet, "old-01", "7.15.16807", cid="ignored-on-upgrade")
    assert effect["result"] == "upgraded" and effect["from_version"] == "7.14.16703.0"
    assert fleet.truth("t_in")["old-01"]["falcon"]["upgrade_to"] == "7.15.16807.0"
    after = wait_for(
        lambda: records(hosts, "old-01")[0], lambda r: r["agent_version"] == "7.15.16807.0", timeout=15
    )
    assert after["reduced_functionality_mode"] == "no"  # 7.15 supports the host's kernel
    assert after["device_id"] == before["device_id"] and after["cid"] == CID
    truth = fleet.truth("t_in")["old-01"]["falcon"]
    assert (truth["version"], truth["rfm"], truth["upgrade_to"]) == ("7.15.16807.0", False, None)


def test_upgrade_to_a_version_without_kernel_support_stays_in_rfm(fleet: Fleet, hosts: Hosts) -> None:
    assert install(fleet, "old-02", "7.14.16790")["result"] == "upgraded"
    after = wait_for(
        lambda: records(hosts, "old-02")[0], lambda r: r["agent_version"] == "7.14.16790.0", timeout=15
    )
    assert after["reduced_functionality_mode"] == "yes"


def test_same_version_is_unchanged(fleet: Fleet) -> None:
    effect = install(fleet, "old-03", "7.14.16703")
    assert effect["result"] == "unchanged" and "registers_at" not in effect


def test_windows_install_and_what_runs_no_sensor(fleet: Fleet, hosts: Hosts) -> None:
    assert install(fleet, "wbare-01", "7.15.16807")["result"] == "installed"
    record = registered(hosts, "wbare-01")
    assert record["platform_name"] == "Windows" and record["reduced_functionality_mode"] == "no"
    with pytest.raises(ValueError, match="not an instance"):
        install(fleet, "db-01", "7.15.16807")
