"""The normalized host table: environment tags, SSM managed instances, unregistered EC2 hosts, the frame."""

from __future__ import annotations

import datetime as dt

import pytest

from patchcycle.domain.inventory import (
    CRITICALITIES,
    INVENTORY_COLUMNS,
    environment_for_tag,
    inventory_frame,
    normalize_ssm_hosts,
    unregistered_ec2_hosts,
)
from patchcycle.domain.sensor import FALCON_COLUMNS

ACCOUNT, REGION = "111111111111", "us-east-1"
DOCUMENTED_ORDER = [
    "cloud",
    "account",
    "region",
    "resource_group",
    "boot_disk",
    "host_id",
    "name",
    "private_ip",
    "environment",
    "environment_tag",
    "os_family",
    "platform",
    "kernel",
    "agent_kind",
    "agent_status",
    "agent_online",
    "agent_status_changed_at",
    "criticality",
    "missing_count",
    "failed_count",
    "installed_count",
    "last_patch_operation",
    "last_patch_time",
    "missing_critical",
    "missing_high",
    "missing_medium",
    "missing_low",
    "missing_unrated",
    "missing_cves",
    "missing_patch_ids",
]


@pytest.fixture
def aliased(make_tenant):
    """A tenant whose nonprod and prod are tagged with aliases; staging keeps its own name."""
    return make_tenant(
        environments=[
            {
                "name": "nonprod",
                "tag_values": ["dev", "Test", "QA"],
                "rate_control": {"max_concurrency": "50%", "max_errors": "25%"},
            },
            {"name": "staging", "rate_control": {"max_concurrency": "25%", "max_errors": "10%"}},
            {
                "name": "prod",
                "tag_values": ["Production", "prd"],
                "rate_control": {"max_concurrency": "10%", "max_errors": "5%"},
            },
        ]
    )


def test_documented_column_order():
    assert list(INVENTORY_COLUMNS) == DOCUMENTED_ORDER
    assert all(INVENTORY_COLUMNS[c] for c in DOCUMENTED_ORDER)
    assert CRITICALITIES == ("low", "medium", "high", "critical")


# --- environment_for_tag ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("nonprod", "nonprod"),
        ("NonProd", "nonprod"),
        ("staging", "staging"),
        ("STAGING", "staging"),
        (" prod ", "prod"),
        ("pre-prod", None),
        ("production", None),
        ("", None),
        (None, None),
    ],
)
def test_environment_for_tag_default_values(tenant, tag, expected):
    assert environment_for_tag(tenant, tag) == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("dev", "nonprod"),
        ("DEV", "nonprod"),
        ("test", "nonprod"),  # the alias is written "Test"
        ("qa", "nonprod"),
        ("staging", "staging"),
        ("production", "prod"),
        ("PRODUCTION", "prod"),
        ("  Prd", "prod"),
        # With aliases, the environment's own name is not a tag value unless listed.
        ("nonprod", None),
        ("prod", None),
        ("uat", None),
    ],
)
def test_environment_for_tag_aliases(aliased, tag, expected):
    assert environment_for_tag(aliased, tag) == expected


def test_environment_for_tag_only_names_environments_the_tenant_has(make_tenant):
    only_prod = make_tenant(
        environments=[{"name": "prod", "rate_control": {"max_concurrency": "1", "max_errors": "0"}}]
    )
    assert environment_for_tag(only_prod, "prod") == "prod"
    assert environment_for_tag(only_prod, "nonprod") is None


# --- normalize_ssm_hosts ----------------------------------------------------------------------------------


@pytest.fixture
def ssm_fleet(ssm_instance):
    """Four managed instances in different states, with tags and patch states as the hooks return them."""
    instances = [
        ssm_instance("i-0a000000000000001"),
        ssm_instance(
            "i-0a000000000000002",
            PingStatus="ConnectionLost",
            PlatformName="Microsoft Windows Server 2019 Datacenter",
            PlatformVersion="10.0.17763",
            PlatformType="Windows",
            ComputerName="EC2AMAZ-WIN02",
        ),
        ssm_instance(
            "i-0a000000000000003",
            PingStatus="Inactive",
            PlatformName="Red Hat Enterprise Linux",
            PlatformVersion="8.6",
        ),
        {"InstanceId": "i-0a000000000000004"},  # the sparsest possible entry
    ]
    tags = {
        "i-0a000000000000001": {
            "Name": "alpha-dev-app-01",
            "Environment": "nonprod",
            "Criticality": " HIGH ",
        },
        "i-0a000000000000002": {"Environment": "Prod", "Criticality": "critical"},
        "i-0a000000000000003": {"Name": "alpha-stg-db-01", "Environment": "staging", "Criticality": "urgent"},
        "i-0a000000000000099": {"Name": "not-managed", "Environment": "prod"},
    }
    states = {
        "i-0a000000000000001": {
            "MissingCount": 3,
            "FailedCount": 1,
            "InstalledCount": 412,
            "Operation": "Scan",
            "OperationEndTime": dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC),
        },
        "i-0a000000000000002": {
            "MissingCount": "0",
            "FailedCount": "0",
            "InstalledCount": "57",
            "Operation": "Install",
            "OperationEndTime": "2026-10-25T04:12:00Z",
        },
    }
    return instances, tags, states


def _by_id(rows):
    return {r["host_id"]: r for r in rows}


def test_normalize_ssm_hosts_rows_have_every_documented_column(tenant, ssm_fleet):
    rows = normalize_ssm_hosts(tenant, ACCOUNT, REGION, *ssm_fleet)
    assert len(rows) == 4
    for row in rows:
        assert list(row) == DOCUMENTED_ORDER
        assert row["cloud"] == "aws" and row["account"] == ACCOUNT and row["region"] == REGION
        assert row["agent_kind"] == "ssm"
        assert row["kernel"] is None


def test_normalize_ssm_hosts_online_amazon_linux_host(tenant, ssm_fleet):
    row = _by_id(normalize_ssm_hosts(tenant, ACCOUNT, REGION, *ssm_fleet))["i-0a000000000000001"]
    assert row == {
        "cloud": "aws",
        "account": ACCOUNT,
        "region": REGION,
        "host_id": "i-0a000000000000001",
        "name": "alpha-dev-app-01",
        "environment": "nonprod",
        "environment_tag": "nonprod",
        "os_family": "amazon_linux_2",
        "platform": "Amazon Linux 2",
        "kernel": None,
        "agent_kind": "ssm",
        "agent_status": "Online",
        "agent_online": True,
        "criticality": "high",
        "missing_count": 3,
        "failed_count": 1,
        "installed_count": 412,
        "last_patch_operation": "Scan",
        "last_patch_time": "2026-11-01T03:00:00+00:00",
        "resource_group": None,
        "boot_disk": None,
        "private_ip": row["private_ip"],
        "agent_status_changed_at": None,
        # SSM's batch patch states rate only critical patches; the other missing and failed are unrated.
        "missing_critical": 0,
        "missing_high": 0,
        "missing_medium": 0,
        "missing_low": 0,
        "missing_unrated": 4,
        "missing_cves": [],
        "missing_patch_ids": None,
    }


def test_normalize_ssm_hosts_disconnected_windows_host(tenant, ssm_fleet):
    row = _by_id(normalize_ssm_hosts(tenant, ACCOUNT, REGION, *ssm_fleet))["i-0a000000000000002"]
    assert row["name"] == "EC2AMAZ-WIN02"  # no Name tag: the computer name
    assert row["environment"] == "prod" and row["environment_tag"] == "Prod"
    assert row["os_family"] == "windows_2019"
    assert row["platform"] == "Microsoft Windows Server 2019 Datacenter 10.0.17763"
    assert row["agent_status"] == "ConnectionLost" and row["agent_online"] is False
    assert row["criticality"] == "critical"
    # Counts are coerced to int whatever type the API returned.
    assert (row["missing_count"], row["failed_count"], row["installed_count"]) == (0, 0, 57)
    assert row["last_patch_operation"] == "Install"
    assert row["last_patch_time"] == "2026-10-25T04:12:00Z"


def test_normalize_ssm_hosts_unknown_criticality_and_no_patch_state(tenant, ssm_fleet):
    row = _by_id(normalize_ssm_hosts(tenant, ACCOUNT, REGION, *ssm_fleet))["i-0a000000000000003"]
    assert row["criticality"] == "medium"  # "urgent" is not a criticality
    assert row["os_family"] == "rhel_8"  # a RHEL minor version maps to its major family
    assert row["agent_status"] == "Inactive" and row["agent_online"] is False
    assert (row["missing_count"], row["failed_count"], row["installed_count"]) == (0, 0, 0)
    assert row["last_patch_operation"] is None and row["last_patch_time"] is None


def test_normalize_ssm_hosts_sparse_instance(tenant, ssm_fleet):
    row = _by_id(normalize_ssm_hosts(tenant, ACCOUNT, REGION, *ssm_fleet))["i-0a000000000000004"]
    assert row["name"] == "i-0a000000000000004"
    assert row["environment"] is None and row["environment_tag"] is None
    assert row["os_family"] is None
    assert row["platform"] == ""
    assert row["agent_status"] == "Unknown" and row["agent_online"] is False
    assert row["criticality"] == "medium"


def test_normalize_ssm_hosts_keeps_instance_order_and_ignores_unmanaged_tags(tenant, ssm_fleet):
    rows = normalize_ssm_hosts(tenant, ACCOUNT, REGION, *ssm_fleet)
    assert [r["host_id"] for r in rows] == [f"i-0a00000000000000{n}" for n in (1, 2, 3, 4)]


@pytest.mark.parametrize(
    ("ping", "online"),
    [("Online", True), ("ConnectionLost", False), ("Inactive", False), ("online", False), (None, False)],
)
def test_agent_online_only_for_online(tenant, ssm_instance, ping, online):
    rows = normalize_ssm_hosts(tenant, ACCOUNT, REGION, [ssm_instance("i-01", PingStatus=ping)], {}, {})
    assert rows[0]["agent_online"] is online


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("low", "low"),
        ("Medium", "medium"),
        (" HIGH", "high"),
        ("Critical", "critical"),
        ("", "medium"),
        ("p1", "medium"),
        (None, "medium"),
    ],
)
def test_criticality_normalisation(tenant, ssm_instance, tag, expected):
    tags = {"i-01": {} if tag is None else {"Criticality": tag}}
    rows = normalize_ssm_hosts(tenant, ACCOUNT, REGION, [ssm_instance("i-01")], tags, {})
    assert rows[0]["criticality"] == expected


def test_normalize_ssm_hosts_reads_the_tenants_own_tag_keys(make_tenant, ssm_instance):
    custom = make_tenant(host_tags={"environment": "patch-env", "criticality": "tier", "name": "hostname"})
    tags = {
        "i-01": {
            "patch-env": "staging",
            "tier": "low",
            "hostname": "stg-01",
            "Environment": "prod",
            "Name": "wrong",
        }
    }
    row = normalize_ssm_hosts(custom, ACCOUNT, REGION, [ssm_instance("i-01")], tags, {})[0]
    assert (row["environment"], row["environment_tag"], row["criticality"], row["name"]) == (
        "staging",
        "staging",
        "low",
        "stg-01",
    )


def test_normalize_ssm_hosts_applies_tag_aliases(aliased, ssm_instance):
    tags = {"i-01": {"Environment": "Production"}, "i-02": {"Environment": "prod"}}
    rows = normalize_ssm_hosts(
        aliased, ACCOUNT, REGION, [ssm_instance("i-01"), ssm_instance("i-02")], tags, {}
    )
    assert [(r["environment"], r["environment_tag"]) for r in rows] == [
        ("prod", "Production"),
        (None, "prod"),
    ]


# --- unregistered_ec2_hosts -------------------------------------------------------------------------------


def test_unregistered_ec2_hosts_only_tagged_hosts_ssm_does_not_know(tenant):
    tags = {
        "i-0c": {"Name": "alpha-prd-web-09", "Environment": "prod", "Criticality": "High"},  # lost its agent
        "i-0a": {"Name": "alpha-dev-app-01", "Environment": "nonprod"},  # managed
        "i-0d": {"Name": "bastion"},  # no environment tag: not ours to patch
        "i-0b": {"Environment": "sandbox", "Criticality": "bogus"},  # tagged, but no such environment
        "i-0e": {"Environment": ""},  # an empty tag is still a tag
    }
    rows = unregistered_ec2_hosts(tenant, ACCOUNT, REGION, tags, managed_ids={"i-0a"})
    assert [r["host_id"] for r in rows] == ["i-0b", "i-0c", "i-0e"]  # sorted by host id
    by_id = _by_id(rows)
    web = by_id["i-0c"]
    assert web == {
        "cloud": "aws",
        "account": ACCOUNT,
        "region": REGION,
        "host_id": "i-0c",
        "name": "alpha-prd-web-09",
        "environment": "prod",
        "environment_tag": "prod",
        "os_family": None,
        "platform": "unknown (no SSM registration)",
        "kernel": None,
        "agent_kind": "ssm",
        "agent_status": "NotRegistered",
        "agent_online": False,
        "criticality": "high",
        "missing_count": 0,
        "failed_count": 0,
        "installed_count": 0,
        "last_patch_operation": None,
        "last_patch_time": None,
        "resource_group": None,
        "boot_disk": None,
        "private_ip": None,
        "agent_status_changed_at": None,
        "missing_critical": 0,
        "missing_high": 0,
        "missing_medium": 0,
        "missing_low": 0,
        "missing_unrated": 0,
        "missing_cves": [],
        "missing_patch_ids": None,
    }
    assert by_id["i-0b"]["environment"] is None and by_id["i-0b"]["environment_tag"] == "sandbox"
    assert by_id["i-0b"]["name"] == "i-0b" and by_id["i-0b"]["criticality"] == "medium"
    for row in rows:
        assert list(row) == DOCUMENTED_ORDER


def test_unregistered_ec2_hosts_none_when_all_managed(tenant):
    tags = {"i-01": {"Environment": "prod"}, "i-02": {"Environment": "nonprod"}}
    assert unregistered_ec2_hosts(tenant, ACCOUNT, REGION, tags, {"i-01", "i-02"}) == []
    assert unregistered_ec2_hosts(tenant, ACCOUNT, REGION, {}, set()) == []


def test_unregistered_ec2_hosts_uses_the_tenants_environment_tag_key(make_tenant):
    custom = make_tenant(host_tags={"environment": "patch-env"})
    tags = {"i-01": {"Environment": "prod"}, "i-02": {"patch-env": "prod"}}
    assert [r["host_id"] for r in unregistered_ec2_hosts(custom, ACCOUNT, REGION, tags, set())] == ["i-02"]


# --- inventory_frame --------------------------------------------------------------------------------------


def test_inventory_frame_columns_in_documented_order(tenant, ssm_fleet):
    rows = normalize_ssm_hosts(tenant, ACCOUNT, REGION, *ssm_fleet)
    frame = inventory_frame(rows)
    assert list(frame.columns) == DOCUMENTED_ORDER + list(FALCON_COLUMNS)
    assert len(frame) == 4
    assert list(frame["host_id"]) == [r["host_id"] for r in rows]
    assert list(frame["agent_online"]) == [True, False, False, False]
    assert frame["missing_count"].sum() == 3


def test_inventory_frame_orders_columns_and_drops_unknown_keys(host_row):
    shuffled = dict(reversed(list(host_row("i-01").items())))
    shuffled["extra"] = "ignored"
    frame = inventory_frame(iter([shuffled]))
    assert list(frame.columns) == DOCUMENTED_ORDER + list(FALCON_COLUMNS)
    assert frame.loc[0, "host_id"] == "i-01"


def test_inventory_frame_of_no_rows_still_has_the_columns():
    frame = inventory_frame([])
    assert list(frame.columns) == DOCUMENTED_ORDER + list(FALCON_COLUMNS)
    assert frame.empty
