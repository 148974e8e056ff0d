"""The ``detection_storm`` fault aimed at a Falcon host group (by name), through FalconPy's ``Alerts``.

The storm's targets are the group's devices when it starts, so the group must exist by then: this module
holds a single test, which creates it as soon as fleetsim is up, well before the storm.
"""

from __future__ import annotations

from falconpy import Alerts, HostGroup, Hosts
from fleetsim_testkit import Fleet, group, scenario_dict, wait_for

KERNEL = "5.15.0-119-generic"
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "t_sg",
            "aws": {
                "account_id": "171717171717",
                "region": "us-east-1",
                "groups": [group("sg", 4, "ubuntu_22_04", kernel=KERNEL, environment="nonprod")],
            },
            "faults": {
                "detection_storm": {
                    "host_group": "storm-targets",
                    "at_seconds": 4.0,
                    "per_host": 3,
                    "spread_seconds": 0.5,
                }
            },
        }
    ],
    catalog=[],
)


def test_storm_on_a_host_group_hits_its_members_only(fleet: Fleet) -> None:
    hosts = Hosts(client_id="t_sg", client_secret="fleetsim-falcon-secret", base_url=fleet.url, timeout=10)
    groups = HostGroup(auth_object=hosts)
    [created] = groups.create_host_groups(name="storm-targets", group_type="static")["body"]["resources"]
    groups.perform_group_action(
        action_name="add-hosts", ids=[created["id"]], filter="hostname:['sg-01','sg-03']"
    )
    alerts = Alerts(auth_object=hosts)
    ids = wait_for(
        lambda: alerts.query_alerts_v2(filter="filename:'kdevtmpfsi'")["body"]["resources"],
        lambda found: len(found) >= 6,
        timeout=20,
    )
    rows = alerts.get_alerts_v2(composite_ids=ids)["body"]["resources"]
    assert sorted(r["device"]["hostname"] for r in rows) == ["sg-01"] * 3 + ["sg-03"] * 3
    assert all(created["id"] in r["device"]["groups"] for r in rows)
