"""FalconHook's sensor roll-out calls against fleetsim's Falcon API, through the real FalconPy over HTTP.

Sensor builds, host groups (find by exact name, create a static one, add and remove devices in batches of
500, members), prevention and sensor-update policies (by name and id, create and update prevention
settings, assign a host group, enable, and the ``applied`` state devices report afterwards), alerts
(paged within the 10,000-result window and narrowed by time beyond it) and ML and IOA exclusions
(create, list). Call counts come from fleetsim's counter; every failure names the call and the status.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fleetsim_testkit import Fleet, group, scenario_dict, wait_for

from fleetsim.seed import falcon_cid
from patchcycle.domain.falcon_rollout import Approval, ExclusionProposal
from patchcycle.hooks import falcon as falcon_module
from patchcycle.hooks.falcon import FalconApiError, FalconHook

CONN_ID = "falcon_rollout_test"
PARENT_CLIENT = "fleetsim-falcon"
SECRET = "fleetsim-falcon-secret"
KERNEL = "5.15.0-119-generic"
APPLY_SECONDS = 0.5
BULK = 1200
WEB_ALERTS = 12

SSM_AGENT = {
    "filename": "amazon-ssm-agent",
    "filepath": "/usr/bin/amazon-ssm-agent",
    "cmdline": "/usr/bin/amazon-ssm-agent",
    "user_name": "root",
}
CURL = {"filename": "curl", "filepath": "/usr/bin/curl", "cmdline": "curl -s http://198.51.100.7/x.sh"}

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "r_one",
            "aws": {
                "account_id": "515151515151",
                "region": "eu-west-1",
                "groups": [
                    group("web", 4, "ubuntu_22_04", kernel=KERNEL, environment="nonprod"),
                    group("app", 3, "ubuntu_22_04", kernel=KERNEL),
                    group("tie", 1, "ubuntu_22_04", kernel=KERNEL),
                    group("bulk", BULK, "ubuntu_22_04", kernel=KERNEL, environment="staging"),
                ],
            },
            "detections": [
                {
                    # One a minute: every alert has its own created_timestamp (Falcon's are to the second).
                    "host": "web-01",
                    "at_seconds": -7200,
                    "count": WEB_ALERTS,
                    "every_seconds": 60,
                    "process": SSM_AGENT,
                    "kind": "machine_learning",
                },
                {"host": "app-01", "at_seconds": -600, "process": CURL, "severity": 90},
                # Four in the same second or two: more alerts at one timestamp than a small window holds.
                {"host": "tie-01", "at_seconds": -300, "count": 4, "every_seconds": 0.0001, "process": CURL},
            ],
        },
        {
            "id": "r_two",
            "gcp": {
                "project_id": "proj-r-two",
                "groups": [group("gce", 2, "ubuntu_22_04", kernel=KERNEL, zone="us-central1-a")],
            },
            "detections": [{"host": "gce-01", "at_seconds": -100, "process": CURL}],
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

ML_SLIDER_PREVENT = {
    "id": "CloudAntiMalware",
    "type": "mlslider",  # the tenant file's shape; the hook sends only id and value
    "value": {"detection": "MODERATE", "prevention": "CAUTIOUS"},
}
SUSPICIOUS_PROCESSES_ON = {"id": "PreventSuspiciousProcesses", "type": "toggle", "value": {"enabled": True}}


def use_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = CONN_ID, **fields: Any) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))
    return conn_id


@pytest.fixture
def hook(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> FalconHook:
    """Tenant r_one's own API client: the roll-out acts in the tenant's CID."""
    use_connection(monkeypatch, host=fleet.url, login="r_one", password=SECRET, extra={"timeout": 10})
    return FalconHook(falcon_conn_id=CONN_ID)


@contextmanager
def counted(fleet: Fleet, hook: FalconHook | None = None) -> Iterator[dict[str, int]]:
    """The falcon.* calls fleetsim counted inside the block (zeros left out); logs ``hook`` in first so
    the token call is not among them."""
    if hook is not None:
        hook.auth  # noqa: B018
    before = fleet.calls()
    delta: dict[str, int] = {}
    yield delta
    after = fleet.calls()
    delta.update(
        {
            k: v - before.get(k, 0)
            for k, v in after.items()
            if k.startswith("falcon.") and v != before.get(k, 0)
        }
    )


def device_ids(hook: FalconHook, prefix: str) -> list[str]:
    return hook.device_ids(f"hostname:*'{prefix}-*'")


def names(hook: FalconHook, ids: list[str]) -> list[str]:
    return sorted(d["hostname"] for d in hook.device_details(ids))


# -- sensor builds ------------------------------------------------------------------------------------
def test_sensor_builds(fleet: Fleet, hook: FalconHook) -> None:
    with counted(fleet, hook) as calls:
        builds = hook.sensor_builds("linux")
    assert calls == {"falcon.queryCombinedSensorUpdateBuilds": 1}
    assert (
        builds and {b["platform"] for b in builds} == {"linux"} and {b["stage"] for b in builds} == {"prod"}
    )
    assert {"7.14.16703", "7.15.16807"} <= {b["sensor_version"] for b in builds}
    assert set(builds[0]) >= {"build", "sensor_version", "stage", "platform"}
    newest = next(b for b in builds if b["build"].endswith("|n|tagged|1"))
    assert newest["sensor_version"] == "7.15.16807"
    assert hook.sensor_builds("linux", stage="early_adopter") == []
    with pytest.raises(FalconApiError) as err:
        hook.sensor_builds("solaris")
    assert "queryCombinedSensorUpdateBuilds(platform='solaris')" in str(err.value) and "HTTP 400" in str(
        err.value
    )


# -- sensor installers -------------------------------------------------------------------------------
LINUX_PACKAGES = 6  # Amazon Linux 2 and 2023, RHEL/CentOS/Oracle 7, 8 and 9, Ubuntu


def test_sensor_installers(fleet: Fleet, hook: FalconHook) -> None:
    with counted(fleet, hook) as calls:
        linux = hook.sensor_installers("linux")
    assert calls == {"falcon.GetCombinedSensorInstallersByQuery": 1}
    versions = sorted({i["version"] for i in linux}, key=lambda v: [int(p) for p in v.split(".")])
    assert versions == ["7.14.16703", "7.15.16807"]  # the versions the scenario knows
    assert len(linux) == len({i["sha256"] for i in linux}) == LINUX_PACKAGES * len(versions)
    assert [i["version"] for i in linux] == sorted(
        (i["version"] for i in linux), reverse=True
    )  # newest first
    assert {i["platform"] for i in linux} == {"linux"}
    for installer in linux:
        assert set(installer) >= {"sha256", "version", "os", "os_version", "name", "platform"}
    with counted(fleet, hook) as calls:
        wanted = hook.sensor_installers("linux", versions=["7.14.16703", "9.9.99999"])
    assert calls == {"falcon.GetCombinedSensorInstallersByQuery": 1}
    assert {i["version"] for i in wanted} == {"7.14.16703"} and len(wanted) == LINUX_PACKAGES
    [ubuntu] = [i for i in wanted if i["os"] == "Ubuntu"]
    assert ubuntu["name"] == "falcon-sensor_7.14.0-16703_amd64.deb" and len(ubuntu["sha256"]) == 64
    [windows] = hook.sensor_installers("windows", versions=["7.14.16703"])
    assert windows["name"].endswith(".exe") and windows["platform"] == "windows"
    with counted(fleet, hook) as calls:
        assert hook.sensor_installers("linux", versions=[]) == []
    assert calls == {}


def test_sensor_installers_page_and_batch_versions(
    fleet: Fleet, hook: FalconHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(falcon_module, "INSTALLERS_PAGE", 4)
    monkeypatch.setattr(falcon_module, "INSTALLER_VERSIONS_PER_QUERY", 1)
    with counted(fleet, hook) as calls:
        installers = hook.sensor_installers("linux", versions=["7.15.16807", "7.14.16703"])
    assert len(installers) == len({i["sha256"] for i in installers}) == 2 * LINUX_PACKAGES
    assert [i["version"] for i in installers] == ["7.15.16807"] * 6 + ["7.14.16703"] * 6
    assert calls == {"falcon.GetCombinedSensorInstallersByQuery": 2 * 2}  # one query per version, 4 + 2 each


def test_sensor_installers_error_names_the_call(hook: FalconHook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(falcon_module, "INSTALLERS_PAGE", 501)  # above the definition's maximum
    with pytest.raises(FalconApiError) as err:
        hook.sensor_installers("linux")
    message = str(err.value)
    assert (
        "GetCombinedSensorInstallersByQuery(filter=\"platform:'linux'\")" in message and "HTTP 400" in message
    )


# -- host groups --------------------------------------------------------------------------------------
def test_host_group_by_exact_name(fleet: Fleet, hook: FalconHook) -> None:
    with counted(fleet, hook) as calls:
        seeded = hook.host_group_by_name("tag-nonprod")
    assert calls == {"falcon.queryCombinedHostGroups": 1}
    assert seeded is not None and seeded["group_type"] == "dynamic"
    # FQL matches names without regard to case; the hook wants the exact name.
    assert hook.host_group_by_name("TAG-NONPROD") is None
    assert hook.host_group_by_name("tag-") is None
    assert hook.host_group_by_name("no such group") is None
    assert hook.host_group_by_name('it\'s "quoted"') is None


def test_ensure_host_group_creates_a_static_group_once(fleet: Fleet, hook: FalconHook) -> None:
    with counted(fleet, hook) as calls:
        created = hook.ensure_host_group("patchcycle-web", "hosts of the nonprod web tier")
    assert calls == {"falcon.queryCombinedHostGroups": 1, "falcon.createHostGroups": 1}
    assert created["group_type"] == "static" and created["description"] == "hosts of the nonprod web tier"
    with counted(fleet, hook) as calls:
        again = hook.ensure_host_group("patchcycle-web", "another description")
    assert calls == {"falcon.queryCombinedHostGroups": 1}
    assert again["id"] == created["id"] and again["description"] == "hosts of the nonprod web tier"
    assert hook.ensure_host_group("tag-nonprod")["group_type"] == "dynamic"  # an existing one, as it is
    # Another case is another name here, but Falcon refuses it as a duplicate: the error names the call.
    with pytest.raises(FalconApiError) as err:
        hook.ensure_host_group("PATCHCYCLE-WEB")
    assert "createHostGroups(name='PATCHCYCLE-WEB')" in str(err.value) and "HTTP 400" in str(err.value)
    assert "already exists" in str(err.value)


def test_add_and_remove_hosts(fleet: Fleet, hook: FalconHook) -> None:
    group_id = hook.ensure_host_group("patchcycle-app")["id"]
    app = device_ids(hook, "app")
    assert len(app) == 3
    with counted(fleet, hook) as calls:
        hook.add_hosts_to_group(group_id, app + app[:1])  # a repeated id is sent once
    assert calls == {"falcon.performGroupAction": 1}
    assert sorted(hook.host_group_members(group_id)) == sorted(app)
    assert all(group_id in d["groups"] for d in hook.device_details(app))
    hook.remove_hosts_from_group(group_id, app[:2])
    assert hook.host_group_members(group_id) == app[2:]
    with counted(fleet, hook) as calls:
        hook.add_hosts_to_group(group_id, [])
        hook.remove_hosts_from_group(group_id, [])
    assert calls == {}


def test_1200_devices_join_a_group_in_three_actions(
    fleet: Fleet, hook: FalconHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk = device_ids(hook, "bulk")
    assert len(bulk) == BULK
    group_id = hook.ensure_host_group("patchcycle-bulk")["id"]
    with counted(fleet, hook) as calls:
        hook.add_hosts_to_group(group_id, bulk)
    assert calls == {"falcon.performGroupAction": 3}  # 500 + 500 + 200
    with counted(fleet, hook) as calls:
        members = hook.host_group_members(group_id)
    assert calls == {"falcon.queryGroupMembers": 1} and sorted(members) == sorted(bulk)
    monkeypatch.setattr(falcon_module, "GROUP_MEMBERS_PAGE", 500)
    with counted(fleet, hook) as calls:
        assert sorted(hook.host_group_members(group_id)) == sorted(bulk)
    assert calls == {"falcon.queryGroupMembers": 3}
    with counted(fleet, hook) as calls:
        hook.remove_hosts_from_group(group_id, bulk[:1001])
    assert calls == {"falcon.performGroupAction": 3}  # 500 + 500 + 1
    assert sorted(hook.host_group_members(group_id)) == sorted(bulk[1001:])


def test_documented_maxima() -> None:
    assert falcon_module.GROUP_ACTION_BATCH == 500
    assert falcon_module.HOST_GROUPS_PAGE == falcon_module.GROUP_MEMBERS_PAGE == 5000
    assert falcon_module.POLICIES_PAGE == 5000
    assert falcon_module.INSTALLERS_PAGE == 500
    assert falcon_module.ALERTS_PAGE == falcon_module.ALERTS_WINDOW == 10000
    assert falcon_module.ALERT_DETAILS_BATCH == 1000
    assert falcon_module.EXCLUSIONS_PAGE == 500


def test_group_errors_name_the_call(hook: FalconHook) -> None:
    app = device_ids(hook, "app")
    with pytest.raises(FalconApiError) as err:
        hook.add_hosts_to_group("0" * 32, app)
    message = str(err.value)
    assert (
        f"performGroupAction(add-hosts, group {'0' * 32!r}, 3 devices)" in message and "HTTP 404" in message
    )
    dynamic = hook.host_group_by_name("tag-prod")
    assert dynamic is not None
    with pytest.raises(FalconApiError) as err:
        hook.remove_hosts_from_group(dynamic["id"], app)
    assert "performGroupAction(remove-hosts" in str(err.value) and "is dynamic" in str(err.value)
    with pytest.raises(FalconApiError) as err:
        hook.host_group_members("1" * 32)
    assert "queryGroupMembers(id=" in str(err.value) and "HTTP 404" in str(err.value)


def test_each_cid_sees_its_own_groups(
    fleet: Fleet, hook: FalconHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook.ensure_host_group("patchcycle-one-only")
    use_connection(monkeypatch, "falcon_two", host=fleet.url, login="r_two", password=SECRET)
    assert FalconHook("falcon_two").host_group_by_name("patchcycle-one-only") is None
    use_connection(
        monkeypatch,
        "falcon_parent_one",
        host=fleet.url,
        login=PARENT_CLIENT,
        password=SECRET,
        extra={"member_cid": falcon_cid("r_one")},
    )
    assert FalconHook("falcon_parent_one").host_group_by_name("patchcycle-one-only") is not None


# -- policies -----------------------------------------------------------------------------------------
def test_platform_default_policies_by_name_and_id(fleet: Fleet, hook: FalconHook) -> None:
    with counted(fleet, hook) as calls:
        prevention = hook.policy_by_name("prevention", "platform_default", "Linux")
    assert calls == {"falcon.queryCombinedPreventionPolicies": 1}
    assert prevention is not None and prevention["enabled"] is True and prevention["groups"] == []
    assert prevention["platform_name"] == "Linux"
    categories = {c["name"]: c["settings"] for c in prevention["prevention_settings"]}
    [slider] = categories["Cloud Machine Learning"]
    assert slider["id"] == "CloudAntiMalware" and slider["value"]["prevention"] == "DISABLED"
    update = hook.policy_by_name("sensor_update", "platform_default", "Linux")
    assert update is not None and "build" in update["settings"] and update["enabled"] is True
    assert hook.policy_by_name("prevention", "PLATFORM_DEFAULT", "Linux") is None
    assert hook.policy_by_name("sensor_update", "no such policy") is None
    with counted(fleet, hook) as calls:
        [again] = hook.policies_by_id("prevention", [prevention["id"], "f" * 32])  # unknown ids left out
    assert calls == {"falcon.getPreventionPolicies": 1} and again["id"] == prevention["id"]
    assert hook.policies_by_id("sensor_update", ["f" * 32]) == []
    assert [p["id"] for p in hook.policies_by_id("sensor_update", [update["id"]])] == [update["id"]]
    with pytest.raises(ValueError, match="policy kind 'firewall'"):
        hook.policy_by_name("firewall", "x")  # type: ignore[arg-type]


def test_prevention_policy_from_creation_to_applied(fleet: Fleet, hook: FalconHook) -> None:
    group_id = hook.ensure_host_group("patchcycle-web-prevent")["id"]
    web = device_ids(hook, "web")
    hook.add_hosts_to_group(group_id, web)
    with counted(fleet, hook) as calls:
        policy = hook.create_prevention_policy(
            "patchcycle-nonprod", "Linux", [ML_SLIDER_PREVENT], description="phase nonprod"
        )
    assert calls == {"falcon.createPreventionPolicies": 1}
    assert policy["enabled"] is False and policy["description"] == "phase nonprod"  # created disabled

    def setting(p: dict[str, Any], setting_id: str) -> Any:
        return next(
            s["value"] for c in p["prevention_settings"] for s in c["settings"] if s["id"] == setting_id
        )

    assert setting(policy, "CloudAntiMalware") == {"detection": "MODERATE", "prevention": "CAUTIOUS"}
    assert setting(policy, "PreventSuspiciousProcesses") == {"enabled": False}
    updated = hook.update_prevention_settings(policy["id"], [SUSPICIOUS_PROCESSES_ON])
    assert setting(updated, "PreventSuspiciousProcesses") == {"enabled": True}
    assert setting(updated, "CloudAntiMalware")["prevention"] == "CAUTIOUS"  # not named: kept
    with counted(fleet, hook) as calls:
        assigned = hook.add_host_group_to_policy("prevention", policy["id"], group_id)
        enabled = hook.enable_policy("prevention", policy["id"])
    assert calls == {"falcon.performPreventionPoliciesAction": 2}
    assert [g["id"] for g in assigned["groups"]] == [group_id] and enabled["enabled"] is True
    by_name = hook.policy_by_name("prevention", "patchcycle-nonprod", "Linux")
    assert by_name is not None and by_name["id"] == policy["id"] and by_name["enabled"] is True
    assert hook.policy_by_name("prevention", "patchcycle-nonprod", "Windows") is None

    def prevention_on_web() -> list[dict[str, Any]]:
        return [d["device_policies"]["prevention"] for d in hook.device_details(web)]

    states = wait_for(prevention_on_web, lambda s: all(p["applied"] for p in s), timeout=APPLY_SECONDS * 20)
    assert {p["policy_id"] for p in states} == {policy["id"]}


def test_sensor_update_policy_group_and_enable(fleet: Fleet, hook: FalconHook) -> None:
    build = next(b["build"] for b in hook.sensor_builds("linux") if b["sensor_version"] == "7.15.16807")
    response = hook.sensor_update.create_policies_v2(
        body={
            "resources": [
                {"name": "patchcycle-sensor", "platform_name": "Linux", "settings": {"build": build}}
            ]
        }
    )
    assert response["status_code"] == 201, response["body"]
    policy = hook.policy_by_name("sensor_update", "patchcycle-sensor")
    assert (
        policy is not None
        and policy["enabled"] is False
        and policy["settings"]["sensor_version"] == "7.15.16807"
    )
    group_id = hook.ensure_host_group("patchcycle-sensor-group")["id"]
    with counted(fleet, hook) as calls:
        hook.add_host_group_to_policy("sensor_update", policy["id"], group_id)
        enabled = hook.enable_policy("sensor_update", policy["id"])
    assert calls == {"falcon.performSensorUpdatePoliciesAction": 2}
    assert enabled["enabled"] is True and [g["id"] for g in enabled["groups"]] == [group_id]


def test_policy_errors_name_the_call(hook: FalconHook) -> None:
    default = hook.policy_by_name("sensor_update", "platform_default", "Linux")
    group_id = hook.ensure_host_group("patchcycle-errors")["id"]
    assert default is not None
    with pytest.raises(FalconApiError) as err:
        hook.add_host_group_to_policy("sensor_update", default["id"], group_id)
    message = str(err.value)
    assert "performSensorUpdatePoliciesAction(add-host-group" in message and "HTTP 400" in message
    assert "platform default" in message
    with pytest.raises(FalconApiError) as err:
        hook.enable_policy("prevention", "e" * 32)
    assert "performPreventionPoliciesAction(enable" in str(err.value) and "HTTP 404" in str(err.value)
    bad_slider = {"id": "CloudAntiMalware", "value": {"detection": "CAUTIOUS", "prevention": "AGGRESSIVE"}}
    with pytest.raises(FalconApiError) as err:
        hook.create_prevention_policy("patchcycle-bad", "Linux", [bad_slider])
    assert "createPreventionPolicies(name='patchcycle-bad')" in str(err.value) and "HTTP 400" in str(
        err.value
    )
    with pytest.raises(FalconApiError) as err:
        hook.update_prevention_settings("e" * 32, [SUSPICIOUS_PROCESSES_ON])
    assert "updatePreventionPolicies" in str(err.value) and "HTTP 404" in str(err.value)
    with pytest.raises(ValueError, match="expected"):
        hook.update_prevention_settings("e" * 32, [{"id": "CloudAntiMalware"}])


# -- alerts -------------------------------------------------------------------------------------------
def test_alerts_in_two_calls(fleet: Fleet, hook: FalconHook) -> None:
    with counted(fleet, hook) as calls:
        alerts = hook.alerts("device.hostname:'web-01'")
    assert calls == {"falcon.GetQueriesAlertsV2": 1, "falcon.PostEntitiesAlertsV2": 1}
    assert len(alerts) == len({a["composite_id"] for a in alerts}) == WEB_ALERTS
    stamps = [a["created_timestamp"] for a in alerts]
    assert stamps == sorted(stamps, reverse=True)
    assert {a["filepath"] for a in alerts} == {"/usr/bin/amazon-ssm-agent"}
    assert {a["device"]["hostname"] for a in alerts} == {"web-01"}
    everything = hook.alerts()
    assert len(everything) == WEB_ALERTS + 1 + 4  # the tenant's own: r_two's alert is not in its CID
    # A caller's OR stays inside its filter when the hook narrows by time.
    either = hook.alerts("device.hostname:'app-01',device.hostname:'web-01'")
    assert len(either) == WEB_ALERTS + 1


def test_alerts_beyond_the_window_narrow_by_time(
    fleet: Fleet, hook: FalconHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(falcon_module, "ALERTS_WINDOW", 5)
    monkeypatch.setattr(falcon_module, "ALERTS_PAGE", 2)
    monkeypatch.setattr(falcon_module, "ALERT_DETAILS_BATCH", 3)
    with counted(fleet, hook) as calls:
        alerts = hook.alerts("device.hostname:'web-01'")
    assert len(alerts) == len({a["composite_id"] for a in alerts}) == WEB_ALERTS
    # Windows of 5 (pages 2+2+1), then up to the 5th newest: 5 of 8 (2+2+1), then up to the 9th: 4 (2+2).
    assert calls["falcon.GetQueriesAlertsV2"] == 3 + 3 + 2
    # Details of the new ids only, 3 per call: 5 (2 calls), 4 (2), 3 (1).
    assert calls["falcon.PostEntitiesAlertsV2"] == 2 + 2 + 1
    with counted(fleet, hook) as calls:
        either = hook.alerts("device.hostname:'app-01',device.hostname:'web-01'")
    assert len(either) == WEB_ALERTS + 1


def test_alerts_sharing_one_timestamp_beyond_the_window(
    hook: FalconHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(falcon_module, "ALERTS_WINDOW", 2)
    with pytest.raises(FalconApiError) as err:
        hook.alerts("device.hostname:'tie-01'")
    assert "GetQueriesAlertsV2" in str(err.value) and "narrow the filter" in str(err.value)


def test_alert_errors_name_the_call(hook: FalconHook) -> None:
    with pytest.raises(FalconApiError) as err:
        hook.alerts("colour:'red'")
    message = str(err.value)
    assert "GetQueriesAlertsV2(filter=\"colour:'red'\"" in message and "HTTP 400" in message
    assert "colour" in message
    assert hook.alerts("device.hostname:'app-02'") == []


# -- exclusions ---------------------------------------------------------------------------------------
def test_ml_exclusion_create_and_list(fleet: Fleet, hook: FalconHook) -> None:
    group_id = hook.ensure_host_group("patchcycle-ml")["id"]
    with counted(fleet, hook) as calls:
        assert hook.ml_exclusions("value:'/opt/never/created'") == []
    assert calls == {"falcon.queryMLExclusionsV1": 1}  # nothing to get
    with counted(fleet, hook) as calls:
        created = hook.create_ml_exclusion(
            "/usr/bin/amazon-ssm-agent",
            [group_id],
            "ssm agent flagged in nonprod",
            excluded_from=["blocking"],
        )
    assert calls == {"falcon.createMLExclusionsV1": 1}
    assert created["value"] == "/usr/bin/amazon-ssm-agent" and created["applied_globally"] is False
    assert [g["id"] for g in created["groups"]] == [group_id] and created["excluded_from"] == ["blocking"]
    with counted(fleet, hook) as calls:
        [listed] = hook.ml_exclusions("value:'/usr/bin/amazon-ssm-agent'")
    assert calls == {"falcon.queryMLExclusionsV1": 1, "falcon.getMLExclusionsV1": 1}
    assert listed["id"] == created["id"]
    control = fleet.get("/fleetsim/falcon")
    history = control["customers"][control["tenant_cids"]["r_one"]]["exclusion_history"]
    assert any(h["id"] == created["id"] and h["comment"] == "ssm agent flagged in nonprod" for h in history)


def test_ioa_exclusion_create_and_list(fleet: Fleet, hook: FalconHook) -> None:
    group_id = hook.ensure_host_group("patchcycle-ioa")["id"]
    with counted(fleet, hook) as calls:
        created = hook.create_ioa_exclusion(
            name="patchcycle curl",
            description="curl from the deploy script",
            pattern_id=10197,  # type: ignore[arg-type]  # sent as the string Falcon stores
            pattern_name="SuspiciousActivity",
            ifn_regex=r"/usr/bin/curl",
            cl_regex=r"curl -s http://198\.51\.100\.7/x\.sh",
            groups=[group_id],
            comment="approved by sec-lead",
        )
    assert calls == {"falcon.createIOAExclusionsV1": 1}
    assert (created["name"], created["pattern_id"], created["ifn_regex"]) == (
        "patchcycle curl",
        "10197",
        "/usr/bin/curl",
    )
    assert (
        created["description"] == "curl from the deploy script"
        and created["pattern_name"] == "SuspiciousActivity"
    )
    assert [g["id"] for g in created["groups"]] == [group_id]
    [listed] = hook.ioa_exclusions("name:'patchcycle curl'")
    assert listed["id"] == created["id"] and listed["cl_regex"] == created["cl_regex"]


def test_exclusion_listing_pages_and_batches(
    fleet: Fleet, hook: FalconHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    group_id = hook.ensure_host_group("patchcycle-ml-paged")["id"]
    values = [f"/opt/paged/tool-{i}" for i in range(3)]
    for value in values:
        hook.create_ml_exclusion(value, [group_id], "paging")
    monkeypatch.setattr(falcon_module, "EXCLUSIONS_PAGE", 2)
    monkeypatch.setattr(falcon_module, "IDS_PER_GET", 2)
    with counted(fleet, hook) as calls:
        listed = hook.ml_exclusions("value:*'/opt/paged/*'")
    assert sorted(e["value"] for e in listed) == values
    assert calls == {"falcon.queryMLExclusionsV1": 2, "falcon.getMLExclusionsV1": 2}


def test_domain_proposals_create_through_the_hook(hook: FalconHook) -> None:
    """The roll-out's proposals (domain ``ExclusionProposal.request_body``) are the hook's arguments."""
    group_id = hook.ensure_host_group("patchcycle-proposals")["id"]
    approval = Approval(
        subject="exclusion-x", by="sec-lead@example.com", at=dt.datetime(2025, 6, 2, tzinfo=dt.UTC)
    )
    common = {
        "groups": (group_id,),
        "count": 3,
        "hosts": ("web-01",),
        "first_seen": "2025-06-01T10:00:00Z",
        "last_seen": "2025-06-01T12:00:00Z",
        "command_lines": ("/opt/agent/bin/scan --quick",),
    }
    ml = ExclusionProposal(
        key="exclusion-ml", kind="ml", process="/opt/agent/bin/scan", value="/opt/agent/bin/scan", **common
    )
    ioa = ExclusionProposal(
        key="exclusion-ioa",
        kind="ioa",
        process="/opt/agent/bin/scan",
        pattern_id="10197",
        pattern_name="SuspiciousActivity",
        ifn_regex=r"/opt/agent/bin/scan",
        cl_regex=r"/opt/agent/bin/scan --quick",
        **common,
    )
    made_ml = hook.create_ml_exclusion(**ml.request_body(approval))
    made_ioa = hook.create_ioa_exclusion(**ioa.request_body(approval))
    assert made_ml["value"] == "/opt/agent/bin/scan"
    assert made_ioa["pattern_id"] == "10197" and made_ioa["name"].startswith("patchcycle ")
    assert any(e["id"] == made_ml["id"] for e in hook.ml_exclusions())
    assert any(e["id"] == made_ioa["id"] for e in hook.ioa_exclusions())


def test_exclusion_errors(fleet: Fleet, hook: FalconHook) -> None:
    with counted(fleet, hook) as calls:
        with pytest.raises(ValueError, match="host group ids"):
            hook.create_ml_exclusion("/usr/bin/x", [], "no groups")  # FalconPy would make it ["all"]
        with pytest.raises(ValueError, match="host group ids"):
            hook.create_ioa_exclusion(
                name="n",
                pattern_id="1",
                pattern_name="",
                cl_regex=".*",
                ifn_regex="x",
                groups="g",
                comment="",
            )
    assert calls == {}
    with pytest.raises(FalconApiError) as err:
        hook.create_ml_exclusion("/usr/bin/x", ["9" * 32], "unknown group")
    assert (
        "createMLExclusionsV1" in str(err.value)
        and "HTTP 400" in str(err.value)
        and "9" * 32 in str(err.value)
    )
    group_id = hook.ensure_host_group("patchcycle-ioa-bad")["id"]
    with pytest.raises(FalconApiError) as err:
        hook.create_ioa_exclusion(
            name="bad regex",
            pattern_id="1",
            pattern_name="",
            cl_regex="(",
            ifn_regex="x",
            groups=[group_id],
            comment="",
        )
    assert "createIOAExclusionsV1(name='bad regex')" in str(err.value) and "HTTP 400" in str(err.value)
    with pytest.raises(FalconApiError) as err:
        hook.ioa_exclusions("colour:'red'")
    assert "queryIOAExclusionsV1" in str(err.value) and "HTTP 400" in str(err.value)


# -- secrets ------------------------------------------------------------------------------------------
def test_no_secret_in_logs(hook: FalconHook, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        group_id = hook.ensure_host_group("patchcycle-logged")["id"]
        hook.add_hosts_to_group(group_id, device_ids(hook, "app"))
        hook.create_ml_exclusion("/opt/logged/tool", [group_id], "logged")
        hook.alerts("device.hostname:'app-01'")
    assert "patchcycle-logged" in caplog.text  # the creations are logged
    assert SECRET not in caplog.text and str(hook.auth.token_value) not in caplog.text
