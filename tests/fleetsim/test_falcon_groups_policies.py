"""fleetsim's Falcon host groups and prevention / sensor-update policies through FalconPy's ``HostGroup``,
``PreventionPolicy`` and ``SensorUpdatePolicy`` over HTTP.

Covers the seeded environment groups, static, staticByID and dynamic groups with their members, the
group action with its filter, each 400 and 404 the endpoints answer, per-CID visibility, the default
policies, created policies (disabled, their settings' shape), host groups on policies, precedence and
enabled state deciding which policy a device gets, ``device_policies`` ``applied`` only after the apply
delay (never under the ``policy_never_applied`` fault), and the members queries.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from falconpy import HostGroup, Hosts, PreventionPolicy, SensorUpdatePolicy
from fleetsim_testkit import Fleet, group, scenario_dict, wait_for

from fleetsim.seed import falcon_cid

SECRET = "fleetsim-falcon-secret"
APPLY_SECONDS = 0.6
KERNEL = "5.15.0-119-generic"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "t_gp",
            "aws": {
                "account_id": "121212121212",
                "region": "us-east-1",
                "groups": [
                    group("grp", 6, "ubuntu_22_04", kernel=KERNEL, environment="nonprod"),
                    group("pol", 4, "ubuntu_22_04", kernel=KERNEL),
                    group("prec", 2, "ubuntu_22_04", kernel=KERNEL),
                    group("upd", 2, "ubuntu_22_04", kernel=KERNEL),
                    group("su", 2, "ubuntu_22_04", kernel=KERNEL),
                    group("mem", 3, "ubuntu_22_04", kernel=KERNEL),
                    group("win", 2, "windows_2022"),
                ],
            },
            "faults": {"policy_never_applied": ["pol-04"]},
        },
        {
            "id": "t_two",
            "gcp": {
                "project_id": "proj-two",
                "groups": [group("gce", 2, "ubuntu_22_04", kernel=KERNEL, zone="us-central1-a")],
            },
        },
    ],
    catalog=[],
    falcon={
        "kernels": [
            {"release": KERNEL, "vendor": "ubuntu", "base_package_supported_sensor_versions": ["7.14.16703"]},
            {
                "release": "5.15.0-131-generic",
                "vendor": "ubuntu",
                "ztl_supported_sensor_versions": ["7.15.16807"],
            },
        ]
    },
)
SCENARIO["timings"]["falcon_policy_apply_seconds"] = APPLY_SECONDS


def client(fleet: Fleet, client_id: str = "t_gp", **kw: Any) -> Hosts:
    return Hosts(client_id=client_id, client_secret=SECRET, base_url=fleet.url, timeout=10, **kw)


@pytest.fixture(scope="module")
def hosts(fleet: Fleet) -> Hosts:
    """The tenant t_gp's own API client."""
    return client(fleet)


@pytest.fixture(scope="module")
def groups(hosts: Hosts) -> HostGroup:
    return HostGroup(auth_object=hosts)


@pytest.fixture(scope="module")
def prevention(hosts: Hosts) -> PreventionPolicy:
    return PreventionPolicy(auth_object=hosts)


@pytest.fixture(scope="module")
def sensor_update(hosts: Hosts) -> SensorUpdatePolicy:
    return SensorUpdatePolicy(auth_object=hosts)


def ok(result: dict[str, Any], status: int = 200) -> list[Any]:
    assert result["status_code"] == status, result["body"]
    return result["body"]["resources"]


def error(result: dict[str, Any], status: int) -> str:
    assert result["status_code"] == status, result["body"]
    return result["body"]["errors"][0]["message"]


def aids(hosts: Hosts, *names: str) -> list[str]:
    fql = "hostname:[" + ",".join(f"'{n}'" for n in names) + "]"
    return ok(hosts.query_devices_by_filter(filter=fql))


def record(hosts: Hosts, name: str) -> dict[str, Any]:
    [device] = ok(hosts.get_device_details(ids=aids(hosts, name)))
    return device


def device_filter(ids: list[str]) -> str:
    return "(device_id:[" + ",".join(f"'{i}'" for i in ids) + "])"


def new_group(groups: HostGroup, name: str, group_type: str = "static", **kw: Any) -> str:
    [created] = ok(groups.create_host_groups(name=name, group_type=group_type, **kw), 201)
    return created["id"]


def add_hosts(groups: HostGroup, hosts: Hosts, group_id: str, *names: str) -> dict[str, Any]:
    [body] = ok(
        groups.perform_group_action(
            action_name="add-hosts", ids=[group_id], filter=device_filter(aids(hosts, *names))
        )
    )
    return body


def raw(fleet: Fleet, hosts: Hosts, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """A request FalconPy would refuse to send (it validates some values itself)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(fleet.url + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {hosts.token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


# -- host groups --------------------------------------------------------------------------------------
def test_customers_start_with_an_environment_group_each(hosts: Hosts, groups: HostGroup) -> None:
    seeded = {g["name"]: g for g in ok(groups.query_combined_host_groups(sort="name.asc"))}
    assert {"tag-nonprod", "tag-prod"} <= set(seeded)
    nonprod = seeded["tag-nonprod"]
    assert nonprod["group_type"] == "dynamic"
    assert nonprod["assignment_rule"] == "tags:'FalconGroupingTags/nonprod'"
    for key in ("id", "description", "created_by", "created_timestamp", "modified_by", "modified_timestamp"):
        assert key in nonprod
    assert nonprod["id"] in record(hosts, "grp-01")["groups"]
    assert seeded["tag-prod"]["id"] not in record(hosts, "grp-01")["groups"]
    members = ok(groups.query_group_members(id=nonprod["id"], limit=5000))
    assert sorted(members) == sorted(aids(hosts, *[f"grp-0{i}" for i in range(1, 7)]))
    assert ok(groups.query_host_groups(filter="name:'tag-prod'")) == [seeded["tag-prod"]["id"]]


def test_static_group_add_and_remove_hosts(hosts: Hosts, groups: HostGroup) -> None:
    group_id = new_group(groups, "rollout-static", description="Falcon roll-out, non-prod")
    [created] = ok(groups.get_host_groups(ids=[group_id]))
    assert created["group_type"] == "static" and created["created_by"] == "api-client-id:t_gp"
    assert created["assignment_rule"] == "device_id:[''],hostname:['']"
    body = add_hosts(groups, hosts, group_id, "grp-01", "grp-02")
    assert body["assignment_rule"] == "device_id:[''],hostname:['grp-01','grp-02']"
    assert group_id in record(hosts, "grp-01")["groups"] and group_id not in record(hosts, "grp-03")["groups"]
    members = ok(groups.query_group_members(id=group_id))
    assert sorted(members) == sorted(aids(hosts, "grp-01", "grp-02"))
    combined = ok(groups.query_combined_group_members(id=group_id, sort="hostname.asc"))
    assert [d["hostname"] for d in combined] == ["grp-01", "grp-02"]
    # A filter on host names works as well as one on device ids.
    ok(groups.perform_group_action(action_name="remove-hosts", ids=[group_id], filter="hostname:['grp-01']"))
    assert ok(groups.query_group_members(id=group_id)) == aids(hosts, "grp-02")
    assert group_id not in record(hosts, "grp-01")["groups"]


def test_static_by_id_and_dynamic_groups(hosts: Hosts, groups: HostGroup) -> None:
    [grp4] = aids(hosts, "grp-04")
    by_id = new_group(groups, "by-id", "staticByID", assignment_rule=f"device_id:['{grp4}'],hostname:['']")
    assert ok(groups.query_group_members(id=by_id)) == [grp4]
    dynamic = new_group(groups, "dyn-win", "dynamic", assignment_rule="platform_name:'Windows'")
    members = ok(groups.query_combined_group_members(id=dynamic))
    assert sorted(d["hostname"] for d in members) == ["win-01", "win-02"]
    message = error(
        groups.perform_group_action(action_name="add-hosts", ids=[dynamic], filter="hostname:['grp-05']"), 400
    )
    assert "dynamic" in message


def test_group_create_and_update_refusals(groups: HostGroup) -> None:
    assert "name" in error(groups.create_host_groups(group_type="static"), 400)
    assert "group_type" in error(groups.create_host_groups(name="typeless", group_type="weird"), 400)
    new_group(groups, "unique-name")
    assert "already exists" in error(groups.create_host_groups(name="UNIQUE-NAME", group_type="static"), 400)
    message = error(
        groups.create_host_groups(name="bad-rule", group_type="dynamic", assignment_rule="nope:'x'"), 400
    )
    assert "nope" in message
    assert "groups" in error(
        groups.create_host_groups(name="ruleon-groups", group_type="dynamic", assignment_rule="groups:'x'"),
        400,
    )
    renamed = new_group(groups, "to-rename")
    [body] = ok(groups.update_host_groups(id=renamed, name="renamed", description="now described"))
    assert body["name"] == "renamed" and body["description"] == "now described"
    assert error(groups.update_host_groups(id="0" * 32, name="x"), 404)


def test_group_lookups_and_actions_answer_404_for_unknown_ids(hosts: Hosts, groups: HostGroup) -> None:
    unknown = "f" * 32
    result = groups.get_host_groups(ids=[unknown])
    assert result["status_code"] == 404 and result["body"]["errors"][0]["id"] == unknown
    known = new_group(groups, "lookup-known")
    result = groups.get_host_groups(ids=[known, unknown])
    assert result["status_code"] == 200 and [g["id"] for g in result["body"]["resources"]] == [known]
    assert result["body"]["errors"] == [
        {"code": 404, "message": f"host group {unknown!r} not found", "id": unknown}
    ]
    assert (
        groups.perform_group_action(action_name="add-hosts", ids=[unknown], filter="hostname:['grp-06']")[
            "status_code"
        ]
        == 404
    )
    assert groups.query_group_members(id=unknown)["status_code"] == 404
    assert groups.delete_host_groups(ids=[unknown])["status_code"] == 404


def test_group_action_refusals(fleet: Fleet, hosts: Hosts, groups: HostGroup) -> None:
    group_id = new_group(groups, "action-refusals")
    # FalconPy checks action_name itself; the API's own answer, over the wire:
    status, body = raw(
        fleet,
        hosts,
        "POST",
        "/devices/entities/host-group-actions/v1?action_name=add-all",
        {"ids": [group_id]},
    )
    assert status == 400 and "add-all" in body["errors"][0]["message"]
    status, body = raw(
        fleet,
        hosts,
        "POST",
        "/devices/entities/host-group-actions/v1?action_name=add-hosts",
        {"ids": [group_id]},
    )
    assert status == 400 and "filter" in body["errors"][0]["message"]
    too_many = device_filter([f"{i:032x}" for i in range(501)])
    assert "500" in error(
        groups.perform_group_action(action_name="add-hosts", ids=[group_id], filter=too_many), 400
    )
    ok(
        groups.perform_group_action(
            action_name="add-hosts", ids=[group_id], filter=device_filter([f"{i:032x}" for i in range(500)])
        )
    )
    assert "bogus" in error(
        groups.perform_group_action(action_name="add-hosts", ids=[group_id], filter="bogus:'x'"), 400
    )
    assert groups.query_group_members()["status_code"] == 400
    assert "limit" in error(groups.query_group_members(id=group_id, limit=5001), 400)
    assert "sort" in error(groups.query_combined_host_groups(sort="id.asc"), 400).lower()
    assert groups.query_host_groups(limit=5001)["status_code"] == 400


def test_deleting_a_group_takes_it_off_devices_and_policies(
    hosts: Hosts, groups: HostGroup, prevention: PreventionPolicy
) -> None:
    group_id = new_group(groups, "short-lived")
    add_hosts(groups, hosts, group_id, "grp-06")
    [policy] = ok(prevention.create_policies(name="short-lived-policy", platform_name="Linux"), 201)
    ok(
        prevention.perform_policies_action(
            action_name="add-host-group", ids=[policy["id"]], group_id=group_id
        )
    )
    assert ok(groups.delete_host_groups(ids=[group_id])) == [group_id]
    assert group_id not in record(hosts, "grp-06")["groups"]
    [after] = ok(prevention.get_policies(ids=[policy["id"]]))
    assert after["groups"] == []


def test_each_cid_sees_its_own_groups(fleet: Fleet, groups: HostGroup, hosts: Hosts) -> None:
    mine = new_group(groups, "t-gp-private")
    other = HostGroup(auth_object=client(fleet, "t_two"))
    assert other.get_host_groups(ids=[mine])["status_code"] == 404
    names = {g["name"] for g in ok(other.query_combined_host_groups())}
    assert "t-gp-private" not in names and "tag-prod" in names  # t_two's own seeded group
    parent = HostGroup(auth_object=client(fleet, "fleetsim-falcon", member_cid=falcon_cid("t_gp")))
    assert [g["id"] for g in ok(parent.get_host_groups(ids=[mine]))] == [mine]
    # The parent naming no member_cid writes to its own CID, which holds no tenant device.
    unscoped = HostGroup(auth_object=client(fleet, "fleetsim-falcon"))
    orphan = new_group(unscoped, "parent-own")
    ok(
        unscoped.perform_group_action(
            action_name="add-hosts", ids=[orphan], filter=device_filter(aids(hosts, "grp-05"))
        )
    )
    assert ok(unscoped.query_group_members(id=orphan)) == []


# -- policies -----------------------------------------------------------------------------------------
def linux_default(store: PreventionPolicy | SensorUpdatePolicy, v2: bool = False) -> dict[str, Any]:
    query = store.query_combined_policies_v2 if v2 else store.query_combined_policies
    [policy] = ok(query(filter="name:'platform_default'+platform_name:'Linux'"))
    return policy


def test_every_customer_has_enabled_platform_defaults(hosts: Hosts, prevention: PreventionPolicy) -> None:
    defaults = ok(prevention.query_combined_policies(filter="name:'platform_default'"))
    assert sorted(p["platform_name"] for p in defaults) == ["Linux", "Mac", "Windows"]
    assert all(p["enabled"] and p["groups"] == [] and p["cid"] == falcon_cid("t_gp") for p in defaults)
    linux = linux_default(prevention)
    categories = {c["name"]: c["settings"] for c in linux["prevention_settings"]}
    [cloud_ml] = categories["Cloud Machine Learning"]
    assert cloud_ml["id"] == "CloudAntiMalware" and cloud_ml["type"] == "mlslider"
    assert cloud_ml["value"] == {"detection": "MODERATE", "prevention": "DISABLED"}
    device = record(hosts, "grp-03")
    assert device["device_policies"]["prevention"]["policy_id"] == linux["id"]
    assert device["device_policies"]["prevention"]["applied"] is True
    assert device["policies"] == [device["device_policies"]["prevention"]]
    assert device["device_policies"]["sensor_update"]["policy_type"] == "sensor-update"
    [win] = ok(prevention.query_combined_policies(filter="name:'platform_default'+platform_name:'Windows'"))
    assert record(hosts, "win-01")["device_policies"]["prevention"]["policy_id"] == win["id"]


def test_new_policy_is_disabled_and_takes_effect_only_once_applied(
    hosts: Hosts, groups: HostGroup, prevention: PreventionPolicy
) -> None:
    group_id = new_group(groups, "prevent-pol")
    add_hosts(groups, hosts, group_id, "pol-01", "pol-02", "pol-03", "pol-04")
    settings = [
        {"id": "CloudAntiMalware", "value": {"detection": "AGGRESSIVE", "prevention": "MODERATE"}},
        {"id": "PreventSuspiciousProcesses", "value": {"enabled": True}},
    ]
    [created] = ok(
        prevention.create_policies(name="prevent-pol", platform_name="Linux", settings=settings), 201
    )
    assert created["enabled"] is False and created["groups"] == []
    slider = next(
        s for c in created["prevention_settings"] for s in c["settings"] if s["id"] == "CloudAntiMalware"
    )
    assert slider["value"] == {"detection": "AGGRESSIVE", "prevention": "MODERATE"}
    [with_group] = ok(
        prevention.perform_policies_action(
            action_name="add-host-group", ids=[created["id"]], group_id=group_id
        )
    )
    assert [g["id"] for g in with_group["groups"]] == [group_id]
    # Disabled: the devices keep the default.
    assert record(hosts, "pol-01")["device_policies"]["prevention"]["policy_id"] != created["id"]
    ok(prevention.perform_policies_action(action_name="enable", ids=[created["id"]]))
    entry = record(hosts, "pol-01")["device_policies"]["prevention"]
    assert entry["policy_id"] == created["id"] and entry["applied"] is False and "applied_date" not in entry
    applied = wait_for(
        lambda: [record(hosts, f"pol-0{i}")["device_policies"]["prevention"] for i in (1, 2, 3, 4)],
        lambda entries: all(e["applied"] for e in entries[:3]),
        timeout=15,
    )
    first = applied[0]
    assert first["applied_date"] >= first["assigned_date"]
    # pol-04 was assigned at the same moment: it would be applied by now, but never is.
    assert applied[3]["policy_id"] == created["id"] and applied[3]["applied"] is False
    ids = ok(
        hosts.query_devices_by_filter(
            filter=f"device_policies.prevention.policy_id:'{created['id']}'+device_policies.prevention.applied:false"
        )
    )
    assert ids == aids(hosts, "pol-04")


def test_precedence_and_enabled_decide_which_policy_applies(
    hosts: Hosts, groups: HostGroup, prevention: PreventionPolicy
) -> None:
    first_group, second_group = new_group(groups, "prec-a"), new_group(groups, "prec-b")
    add_hosts(groups, hosts, first_group, "prec-01")
    add_hosts(groups, hosts, second_group, "prec-01", "prec-02")
    [a] = ok(prevention.create_policies(name="prec-a", platform_name="Linux"), 201)
    [b] = ok(prevention.create_policies(name="prec-b", platform_name="Linux"), 201)
    ok(prevention.perform_policies_action(action_name="add-host-group", ids=[a["id"]], group_id=first_group))
    ok(prevention.perform_policies_action(action_name="add-host-group", ids=[b["id"]], group_id=second_group))
    ok(prevention.perform_policies_action(action_name="enable", ids=[a["id"], b["id"]]))

    def policy_of(name: str) -> str:
        return record(hosts, name)["device_policies"]["prevention"]["policy_id"]

    # a was created first: higher precedence (lower number) than b.
    assert (policy_of("prec-01"), policy_of("prec-02")) == (a["id"], b["id"])
    order = ok(prevention.query_policies(filter="platform_name:'Linux'", sort="precedence.asc"))
    assert order.index(a["id"]) < order.index(b["id"]) and order[-1] == linux_default(prevention)["id"]
    reordered = [i for i in order if i not in (a["id"], b["id"], linux_default(prevention)["id"])] + [
        b["id"],
        a["id"],
    ]
    ok(prevention.set_policies_precedence(ids=reordered, platform_name="Linux"))
    assert policy_of("prec-01") == b["id"]
    ok(prevention.perform_policies_action(action_name="disable", ids=[b["id"]]))
    assert (policy_of("prec-01"), policy_of("prec-02")) == (a["id"], linux_default(prevention)["id"])
    assert "every non-default" in error(
        prevention.set_policies_precedence(ids=[a["id"]], platform_name="Linux"), 400
    )
    assert "platform_name" in error(
        prevention.set_policies_precedence(ids=reordered, platform_name="BeOS"), 400
    )


def test_settings_change_is_a_new_assignment(
    hosts: Hosts, groups: HostGroup, prevention: PreventionPolicy
) -> None:
    group_id = new_group(groups, "upd")
    add_hosts(groups, hosts, group_id, "upd-01")
    [policy] = ok(prevention.create_policies(name="upd", platform_name="Linux"), 201)
    ok(
        prevention.perform_policies_action(
            action_name="add-host-group", ids=[policy["id"]], group_id=group_id
        )
    )
    ok(prevention.perform_policies_action(action_name="enable", ids=[policy["id"]]))
    before = wait_for(
        lambda: record(hosts, "upd-01")["device_policies"]["prevention"], lambda e: e["applied"], timeout=15
    )
    change = [{"id": "OnSensorMLSlider", "value": {"detection": "MODERATE", "prevention": "CAUTIOUS"}}]
    [updated] = ok(prevention.update_policies(id=policy["id"], settings=change))
    slider = next(
        s for c in updated["prevention_settings"] for s in c["settings"] if s["id"] == "OnSensorMLSlider"
    )
    assert slider["value"] == {"detection": "MODERATE", "prevention": "CAUTIOUS"}
    after = record(hosts, "upd-01")["device_policies"]["prevention"]
    assert after["settings_hash"] != before["settings_hash"] and after["applied"] is False
    assert after["assigned_date"] >= before["applied_date"]
    wait_for(
        lambda: record(hosts, "upd-01")["device_policies"]["prevention"], lambda e: e["applied"], timeout=15
    )


def test_policy_refusals(hosts: Hosts, groups: HostGroup, prevention: PreventionPolicy) -> None:
    bad_slider = [{"id": "CloudAntiMalware", "value": {"detection": "CAUTIOUS", "prevention": "AGGRESSIVE"}}]
    assert "more aggressive" in error(
        prevention.create_policies(name="x1", platform_name="Linux", settings=bad_slider), 400
    )
    unknown = [{"id": "MaliciousPowershell", "value": {"enabled": True}}]  # a Windows setting
    assert "MaliciousPowershell" in error(
        prevention.create_policies(name="x2", platform_name="Linux", settings=unknown), 400
    )
    level = [{"id": "CloudAntiMalware", "value": {"detection": "LOUD", "prevention": "DISABLED"}}]
    assert "LOUD" in error(prevention.create_policies(name="x3", platform_name="Linux", settings=level), 400)
    toggle = [{"id": "PreventSuspiciousProcesses", "value": {"enabled": "yes"}}]
    assert "enabled" in error(
        prevention.create_policies(name="x4", platform_name="Linux", settings=toggle), 400
    )
    assert "platform_name" in error(prevention.create_policies(name="x5", platform_name="Amiga"), 400)
    assert "name" in error(prevention.create_policies(platform_name="Linux"), 400)
    [kept] = ok(prevention.create_policies(name="refusals", platform_name="Linux"), 201)
    assert "already exists" in error(prevention.create_policies(name="refusals", platform_name="Linux"), 400)
    default = linux_default(prevention)
    assert "platform default" in error(
        prevention.perform_policies_action(action_name="disable", ids=[default["id"]]), 400
    )
    assert "platform default" in error(prevention.delete_policies(ids=[default["id"]]), 400)
    assert "group_id" in error(
        prevention.perform_policies_action(action_name="add-host-group", ids=[kept["id"]]), 400
    )
    message = error(
        prevention.perform_policies_action(action_name="add-host-group", ids=[kept["id"]], group_id="0" * 32),
        400,
    )
    assert "not found" in message
    assert "rule groups" in error(
        prevention.perform_policies_action(action_name="add-rule-group", ids=[kept["id"]], group_id="x"), 400
    )
    assert prevention.perform_policies_action(action_name="enable", ids=["e" * 32])["status_code"] == 404
    result = prevention.get_policies(ids=["e" * 32])
    assert result["status_code"] == 404 and result["body"]["errors"][0]["id"] == "e" * 32
    assert prevention.query_combined_policies(limit=5001)["status_code"] == 400
    assert prevention.query_combined_policies(sort="colour.asc")["status_code"] == 400
    assert prevention.query_policies(filter="colour:'red'")["status_code"] == 400


def test_delete_needs_a_disabled_policy(prevention: PreventionPolicy) -> None:
    [policy] = ok(prevention.create_policies(name="doomed", platform_name="Windows"), 201)
    ok(prevention.perform_policies_action(action_name="enable", ids=[policy["id"]]))
    assert "disable it" in error(prevention.delete_policies(ids=[policy["id"]]), 400)
    ok(prevention.perform_policies_action(action_name="disable", ids=[policy["id"]]))
    assert ok(prevention.delete_policies(ids=[policy["id"]])) == [policy["id"]]
    assert prevention.get_policies(ids=[policy["id"]])["status_code"] == 404
    assert prevention.delete_policies(ids=[policy["id"]])["status_code"] == 404


def test_policy_members(hosts: Hosts, groups: HostGroup, prevention: PreventionPolicy) -> None:
    group_id = new_group(groups, "mem")
    add_hosts(groups, hosts, group_id, "mem-01", "mem-02")
    [policy] = ok(prevention.create_policies(name="mem", platform_name="Linux"), 201)
    ok(
        prevention.perform_policies_action(
            action_name="add-host-group", ids=[policy["id"]], group_id=group_id
        )
    )
    ok(prevention.perform_policies_action(action_name="enable", ids=[policy["id"]]))
    assert sorted(ok(prevention.query_policy_members(id=policy["id"]))) == sorted(
        aids(hosts, "mem-01", "mem-02")
    )
    combined = ok(prevention.query_combined_policy_members(id=policy["id"], filter="hostname:'mem-02'"))
    assert [d["hostname"] for d in combined] == ["mem-02"]
    assert aids(hosts, "mem-03")[0] in ok(
        prevention.query_policy_members(id=linux_default(prevention)["id"], limit=5000)
    )
    assert prevention.query_policy_members()["status_code"] == 400
    assert prevention.query_policy_members(id="d" * 32)["status_code"] == 404
    assert prevention.query_policy_members(id=policy["id"], limit=5001)["status_code"] == 400


def test_sensor_update_policy_v2(hosts: Hosts, groups: HostGroup, sensor_update: SensorUpdatePolicy) -> None:
    builds = {
        b["build"]: b["sensor_version"] for b in ok(sensor_update.query_combined_builds(platform="linux"))
    }
    build = next(b for b, v in builds.items() if v == "7.15.16807" and "|" in b)
    [policy] = ok(
        sensor_update.create_policies_v2(
            name="su-pinned", platform_name="Linux", build=build, uninstall_protection="ENABLED"
        ),
        201,
    )
    assert policy["enabled"] is False
    assert policy["settings"]["build"] == build and policy["settings"]["sensor_version"] == "7.15.16807"
    assert policy["settings"]["uninstall_protection"] == "ENABLED" and policy["settings"]["stage"] == "prod"
    group_id = new_group(groups, "su")
    add_hosts(groups, hosts, group_id, "su-01")
    ok(
        sensor_update.perform_policies_action(
            action_name="add-host-group", ids=[policy["id"]], group_id=group_id
        )
    )
    ok(sensor_update.perform_policies_action(action_name="enable", ids=[policy["id"]]))
    entry = record(hosts, "su-01")["device_policies"]["sensor_update"]
    assert entry["policy_id"] == policy["id"] and entry["applied"] is False
    assert entry["uninstall_protection"] == "ENABLED" and entry["policy_type"] == "sensor-update"
    wait_for(
        lambda: record(hosts, "su-01")["device_policies"]["sensor_update"], lambda e: e["applied"], timeout=15
    )
    assert (
        record(hosts, "su-02")["device_policies"]["sensor_update"]["policy_id"]
        == linux_default(sensor_update, v2=True)["id"]
    )
    [got] = ok(sensor_update.get_policies_v2(ids=[policy["id"]]))
    assert [g["id"] for g in got["groups"]] == [group_id]
    assert ok(sensor_update.query_policies(filter="name:'su-pinned'")) == [policy["id"]]
    assert sorted(ok(sensor_update.query_policy_members(id=policy["id"]))) == aids(hosts, "su-01")
    [updated] = ok(sensor_update.update_policies_v2(id=policy["id"], uninstall_protection="DISABLED"))
    assert updated["settings"]["uninstall_protection"] == "DISABLED" and updated["settings"]["build"] == build
    assert "build" in error(
        sensor_update.create_policies_v2(name="su-bad", platform_name="Linux", build="99999|n|tagged|1"), 400
    )
    message = error(
        sensor_update.create_policies_v2(name="su-bad2", platform_name="Linux", uninstall_protection="MAYBE"),
        400,
    )
    assert "uninstall_protection" in message
    assert sensor_update.get_policies_v2(ids=["c" * 32])["status_code"] == 404
    ok(sensor_update.perform_policies_action(action_name="disable", ids=[policy["id"]]))
    assert ok(sensor_update.delete_policies(ids=[policy["id"]])) == [policy["id"]]


def test_policy_calls_are_counted(fleet: Fleet, prevention: PreventionPolicy, groups: HostGroup) -> None:
    before = fleet.calls()
    prevention.query_combined_policies(limit=1)
    groups.query_host_groups(limit=1)
    after = fleet.calls()
    assert (
        after["falcon.queryCombinedPreventionPolicies"]
        - before.get("falcon.queryCombinedPreventionPolicies", 0)
        == 1
    )
    assert after["falcon.queryHostGroups"] - before.get("falcon.queryHostGroups", 0) == 1
