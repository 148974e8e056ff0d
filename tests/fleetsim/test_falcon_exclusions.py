"""fleetsim's Falcon ML and IOA exclusions through FalconPy's ``MLExclusions`` and ``IOAExclusions``.

Covers create, get, query, update and delete with what each records (value or pattern and regexes,
groups, created_by, created_on, last_modified, and the comments in the control plane's history), the
400s for bad input and unknown ids, per-CID visibility, and what an exclusion does: later detections it
matches on its groups' devices are not raised.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from falconpy import Alerts, HostGroup, Hosts, IOAExclusions, MLExclusions
from fleetsim_testkit import Fleet, group, scenario_dict, wait_for

SECRET = "fleetsim-falcon-secret"
KERNEL = "5.15.0-119-generic"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "t_ex",
            "aws": {
                "account_id": "151515151515",
                "region": "us-east-1",
                "groups": [
                    group("ex", 4, "ubuntu_22_04", kernel=KERNEL, environment="nonprod"),
                    group("win", 2, "windows_2022", environment="nonprod"),
                ],
            },
        },
        {
            "id": "t_ex2",
            "gcp": {
                "project_id": "proj-ex2",
                "groups": [group("gce", 1, "ubuntu_22_04", kernel=KERNEL, zone="us-central1-a")],
            },
        },
    ],
    catalog=[],
    falcon={
        "kernels": [
            {"release": KERNEL, "vendor": "ubuntu", "base_package_supported_sensor_versions": ["7.14.16703"]}
        ]
    },
)


def client(fleet: Fleet, client_id: str = "t_ex") -> Hosts:
    return Hosts(client_id=client_id, client_secret=SECRET, base_url=fleet.url, timeout=10)


@pytest.fixture(scope="module")
def hosts(fleet: Fleet) -> Hosts:
    return client(fleet)


@pytest.fixture(scope="module")
def ml(hosts: Hosts) -> MLExclusions:
    return MLExclusions(auth_object=hosts)


@pytest.fixture(scope="module")
def ioa(hosts: Hosts) -> IOAExclusions:
    return IOAExclusions(auth_object=hosts)


def ok(result: dict[str, Any], status: int = 200) -> list[Any]:
    assert result["status_code"] == status, result["body"]
    return result["body"]["resources"]


def error(result: dict[str, Any], status: int = 400) -> str:
    assert result["status_code"] == status, result["body"]
    return result["body"]["errors"][0]["message"]


def static_group(hosts: Hosts, name: str, *members: str) -> str:
    groups = HostGroup(auth_object=hosts)
    [created] = ok(groups.create_host_groups(name=name, group_type="static"), 201)
    names = ",".join(f"'{m}'" for m in members)
    ok(
        groups.perform_group_action(
            action_name="add-hosts", ids=[created["id"]], filter=f"hostname:[{names}]"
        )
    )
    return created["id"]


def history(fleet: Fleet, exclusion_id: str) -> list[dict[str, Any]]:
    customers = fleet.get("/fleetsim/falcon")["customers"]
    return [h for c in customers.values() for h in c["exclusion_history"] if h["id"] == exclusion_id]


def post(fleet: Fleet, hosts: Hosts, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    """A body FalconPy would not send as is (it fills in ``groups``)."""
    req = urllib.request.Request(fleet.url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {hosts.token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


# -- ML exclusions ------------------------------------------------------------------------------------
def test_ml_exclusion_lifecycle(fleet: Fleet, hosts: Hosts, ml: MLExclusions) -> None:
    group_id = static_group(hosts, "ml-lifecycle", "ex-04")
    [created] = ok(
        ml.create_exclusions(value="/opt/patchcycle/**", groups=[group_id], comment="approved by dana.levi"),
        201,
    )
    assert created["value"] == "/opt/patchcycle/**" and created["applied_globally"] is False
    assert [g["id"] for g in created["groups"]] == [group_id]
    assert created["created_by"] == created["modified_by"] == "api-client-id:t_ex"
    assert created["created_on"] == created["last_modified"]
    assert created["excluded_from"] == ["blocking"] and created["regexp_value"].startswith(
        "^/opt/patchcycle/"
    )
    assert "comment" not in created  # kept in the history, as the API does not return it
    assert ok(ml.get_exclusions(ids=[created["id"]])) == [created]
    assert ok(ml.query_exclusions(filter="value:'/opt/patchcycle/**'")) == [created["id"]]
    assert ok(ml.query_exclusions(filter="created_by:'api-client-id:t_ex'", sort="value.asc"))
    [updated] = ok(
        ml.update_exclusions(id=created["id"], value="/opt/patchcycle/bin/**", comment="narrowed by sam")
    )
    assert (
        updated["value"] == "/opt/patchcycle/bin/**" and updated["last_modified"] >= created["last_modified"]
    )
    assert ok(ml.delete_exclusions(ids=[created["id"]], comment="phase over, removed by dana.levi")) == [
        created["id"]
    ]
    assert ml.get_exclusions(ids=[created["id"]])["status_code"] == 400
    recorded = history(fleet, created["id"])
    assert [(h["action"], h["comment"], h["by"]) for h in recorded] == [
        ("create", "approved by dana.levi", "api-client-id:t_ex"),
        ("update", "narrowed by sam", "api-client-id:t_ex"),
        ("delete", "phase over, removed by dana.levi", "api-client-id:t_ex"),
    ]


def test_ml_exclusion_refusals(fleet: Fleet, hosts: Hosts, ml: MLExclusions) -> None:
    status, body = post(fleet, hosts, "/policy/entities/ml-exclusions/v1", {"value": "/tmp/x"})
    assert status == 400 and "groups" in body["errors"][0]["message"]
    assert "unknown host group" in error(ml.create_exclusions(value="/tmp/x", groups=["0" * 32]))
    assert "value" in error(ml.create_exclusions(groups=["all"], comment="no value"))
    assert "excluded_from" in error(
        ml.create_exclusions(value="/tmp/x", groups=["all"], excluded_from=["everything"])
    )
    [kept] = ok(ml.create_exclusions(value="/tmp/kept/**", groups=["all"]), 201)
    assert kept["applied_globally"] is True and kept["groups"] == []
    result = ml.get_exclusions(ids=["9" * 32])
    assert result["status_code"] == 400 and result["body"]["errors"][0]["id"] == "9" * 32
    result = ml.get_exclusions(ids=[kept["id"], "9" * 32])
    assert result["status_code"] == 200 and len(result["body"]["resources"]) == 1 and result["body"]["errors"]
    assert ml.delete_exclusions(ids=["9" * 32])["status_code"] == 400
    assert "not found" in error(ml.update_exclusions(id="9" * 32, value="/x"))
    assert "limit" in error(ml.query_exclusions(limit=501))
    assert ml.query_exclusions(limit=500)["status_code"] == 200
    assert "sort" in error(ml.query_exclusions(sort="pattern_id.asc")).lower()
    assert "colour" in error(ml.query_exclusions(filter="colour:'red'"))


# -- IOA exclusions -----------------------------------------------------------------------------------
def test_ioa_exclusion_lifecycle(fleet: Fleet, hosts: Hosts, ioa: IOAExclusions) -> None:
    group_id = static_group(hosts, "ioa-lifecycle", "ex-04")
    [created] = ok(
        ioa.create_exclusions(
            name="ssm-document-worker",
            description="the SSM agent's own shell",
            pattern_id="10400",
            pattern_name="Suspicious shell",
            ifn_regex=".*/ssm-document-worker",
            cl_regex=".*",
            groups=[group_id],
            comment="approved by dana.levi",
        ),
        201,
    )
    assert (created["name"], created["pattern_id"], created["ifn_regex"], created["cl_regex"]) == (
        "ssm-document-worker",
        "10400",
        ".*/ssm-document-worker",
        ".*",
    )
    assert [g["id"] for g in created["groups"]] == [group_id] and created[
        "created_by"
    ] == "api-client-id:t_ex"
    assert ok(ioa.get_exclusions(ids=[created["id"]])) == [created]
    assert created["id"] in ok(ioa.query_exclusions(filter="name:'ssm-document-worker'", sort="name.asc"))
    [updated] = ok(ioa.update_exclusions(id=created["id"], cl_regex="/usr/bin/ssm-document-worker .*"))
    assert (
        updated["cl_regex"] == "/usr/bin/ssm-document-worker .*"
        and updated["ifn_regex"] == ".*/ssm-document-worker"
    )
    assert ok(ioa.delete_exclusions(ids=[created["id"]], comment="not needed")) == [created["id"]]
    assert [h["action"] for h in history(fleet, created["id"])] == ["create", "update", "delete"]
    assert "ifn_regex" in error(
        ioa.create_exclusions(name="bad", pattern_id="1", ifn_regex="(", cl_regex=".*", groups=["all"])
    )
    assert "pattern_id" in error(
        ioa.create_exclusions(name="nopattern", ifn_regex=".*", cl_regex=".*", groups=["all"])
    )
    assert "name" in error(
        ioa.create_exclusions(pattern_id="1", ifn_regex=".*", cl_regex=".*", groups=["all"])
    )
    assert ioa.get_exclusions(ids=["8" * 32])["status_code"] == 400
    assert "limit" in error(ioa.query_exclusions(limit=501))


def test_each_cid_sees_its_own_exclusions(fleet: Fleet, ml: MLExclusions) -> None:
    [mine] = ok(ml.create_exclusions(value="/srv/t-ex-only/**", groups=["all"]), 201)
    other = MLExclusions(auth_object=client(fleet, "t_ex2"))
    assert other.get_exclusions(ids=[mine["id"]])["status_code"] == 400
    assert mine["id"] not in ok(other.query_exclusions())


# -- what exclusions do -------------------------------------------------------------------------------
def raise_detection(fleet: Fleet, host: str, **detection: Any) -> None:
    status, answer = fleet.post_json(
        "/fleetsim/falcon/detections", {"tenant": "t_ex", "host": host, **detection}
    )
    assert status == 200, answer


def alerts_on(alerts: Alerts, fql: str) -> list[str]:
    ids = alerts.query_alerts_v2(filter=fql, limit=100)["body"]["resources"]
    return (
        sorted(a["device"]["hostname"] for a in alerts.get_alerts_v2(composite_ids=ids)["body"]["resources"])
        if ids
        else []
    )


def test_exclusions_silence_later_detections_on_their_groups(
    fleet: Fleet, hosts: Hosts, ml: MLExclusions, ioa: IOAExclusions
) -> None:
    alerts = Alerts(auth_object=hosts)
    group_id = static_group(hosts, "silenced", "ex-01", "win-01")
    [ml_exclusion] = ok(
        ml.create_exclusions(value="/opt/agent/**", groups=[group_id], comment="agent FP"), 201
    )
    [win_exclusion] = ok(
        ml.create_exclusions(
            value=r"C:\Program Files\Amazon\SSM\**", groups=[group_id], comment="SSM on Windows"
        ),
        201,
    )
    ok(
        ioa.create_exclusions(
            name="worker",
            pattern_id="10400",
            ifn_regex=".*/ssm-document-worker",
            cl_regex=".*",
            groups=["all"],
        ),
        201,
    )
    ml_process = {"filename": "run", "filepath": "/opt/agent/bin/run", "cmdline": "/opt/agent/bin/run --once"}
    for host in ("ex-01", "ex-02"):
        raise_detection(fleet, host, process=ml_process, kind="machine_learning", pattern_id=10500)
    win_process = {
        "filename": "amazon-ssm-agent.exe",
        "filepath": r"c:\program files\amazon\ssm\amazon-ssm-agent.exe",
        "cmdline": "amazon-ssm-agent.exe",
    }
    for host in ("win-01", "win-02"):
        raise_detection(fleet, host, process=win_process, kind="machine_learning", pattern_id=10501)
    worker = {"filename": "ssm-document-worker", "filepath": "/usr/bin/ssm-document-worker", "cmdline": "x"}
    raise_detection(fleet, "ex-03", process=worker, pattern_id=10400)  # silenced everywhere
    raise_detection(fleet, "ex-03", process=worker, pattern_id=10401)  # another pattern: raised
    # Outside its group (ex-02, win-02) or its pattern, nothing is silenced.
    assert wait_for(lambda: alerts_on(alerts, "pattern_id:10500"), bool, timeout=15) == ["ex-02"]
    assert wait_for(lambda: alerts_on(alerts, "pattern_id:10501"), bool, timeout=15) == ["win-02"]
    assert wait_for(lambda: alerts_on(alerts, "pattern_id:10401"), bool, timeout=15) == ["ex-03"]
    assert alerts_on(alerts, "pattern_id:10400") == []
    skipped = fleet.get("/fleetsim/falcon")["skipped_detections"]
    silenced = {
        (s["host"], s.get("exclusion_id")) for s in skipped if s["reason"] == "silenced by an exclusion"
    }
    assert ("ex-01", ml_exclusion["id"]) in silenced and ("win-01", win_exclusion["id"]) in silenced
    assert ("ex-03", None) not in silenced and any(h == "ex-03" for h, _ in silenced)
