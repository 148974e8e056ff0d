"""What a tenant's AWS account shows of its fleet: managed instances, tags, the patch catalog, isolation."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from fleetsim_testkit import group, patch, scenario_dict

# One worker per module under xdist, so the module shares one fleetsim.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-inventory")]

ALPHA, BIRCH, CEDAR = "111111111111", "222222222222", "333333333333"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "alpha",
            "aws": {
                "account_id": ALPHA,
                "region": "us-east-1",
                "groups": [
                    group("al-web", 52, environment="prod", criticality="high"),
                    group("al-win", 2, "windows_2019", environment="staging", criticality="critical"),
                    group("al-ubu", 1, "ubuntu_22_04", environment="nonprod", criticality="low"),
                    group("al-rhel", 1, "rhel_9", environment="prod"),
                ],
            },
            "faults": {"agent_offline": ["al-web-03", "al-win-02"]},
        },
        {  # same region, other account: only the account separates the two fleets
            "id": "birch",
            "aws": {
                "account_id": BIRCH,
                "region": "us-east-1",
                "groups": [group("bi-api", 3, "amazon_linux_2023")],
            },
        },
        {  # same account as nobody, other region
            "id": "cedar",
            "aws": {"account_id": CEDAR, "region": "us-west-2", "groups": [group("ce-app", 2)]},
        },
    ],
    catalog=[
        *(patch(f"ALAS2-{n}", "amazon_linux_2") for n in range(1, 6)),
        patch("ALAS2023-1", "amazon_linux_2023"),
        patch("KB100", "windows_2019", classification="SecurityUpdates"),
        patch("KB200", "windows_2019", classification="CriticalUpdates", severity="Moderate"),
        patch("USN-1", "ubuntu_22_04", severity="Important"),
    ],
)


def _all_instance_information(ssm, page_size: int | None = None) -> tuple[list[dict], list[int]]:
    config = {"PageSize": page_size} if page_size else {}
    rows, sizes = [], []
    for page in ssm.get_paginator("describe_instance_information").paginate(PaginationConfig=config):
        rows.extend(page["InstanceInformationList"])
        sizes.append(len(page["InstanceInformationList"]))
    return rows, sizes


def test_instance_information_lists_every_managed_host_in_pages_of_50(fleet):
    ssm = fleet.client("ssm", ALPHA)
    rows, sizes = _all_instance_information(ssm, page_size=50)
    truth = fleet.truth("alpha")
    assert sizes == [50, 6]
    assert sorted(r["InstanceId"] for r in rows) == sorted(h["host_id"] for h in truth.values())
    assert len({r["InstanceId"] for r in rows}) == 56  # no host twice across pages

    # Without a page size the service's own default page is 50 as well, with a token for the rest.
    first = ssm.describe_instance_information()
    assert len(first["InstanceInformationList"]) == 50
    assert first["NextToken"]
    rest = ssm.describe_instance_information(NextToken=first["NextToken"])
    assert len(rest["InstanceInformationList"]) == 6
    assert "NextToken" not in rest


def test_instance_information_rejects_more_than_50_per_page(fleet):
    ssm = fleet.client("ssm", ALPHA)
    with pytest.raises(ClientError) as exc:
        ssm.describe_instance_information(MaxResults=51)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_ping_status_reflects_agent_offline_faults(fleet):
    rows, _ = _all_instance_information(fleet.client("ssm", ALPHA))
    by_id = {r["InstanceId"]: r for r in rows}
    truth = fleet.truth("alpha")
    offline = {name for name, h in truth.items() if by_id[h["host_id"]]["PingStatus"] == "ConnectionLost"}
    assert offline == {"al-web-03", "al-win-02"}
    assert {r["PingStatus"] for r in rows} == {"Online", "ConnectionLost"}
    assert truth["al-web-03"]["agent_status"] == "ConnectionLost"

    lost = fleet.client("ssm", ALPHA).describe_instance_information(
        Filters=[{"Key": "PingStatus", "Values": ["ConnectionLost"]}]
    )["InstanceInformationList"]
    assert sorted(r["InstanceId"] for r in lost) == sorted(truth[n]["host_id"] for n in offline)


def test_instance_information_filter_list_filters(fleet):
    """The older InstanceInformationFilterList (key/valueSet) filters too; it used to be ignored."""
    ssm = fleet.client("ssm", ALPHA)
    windows = ssm.describe_instance_information(
        InstanceInformationFilterList=[{"key": "PlatformTypes", "valueSet": ["Windows"]}]
    )["InstanceInformationList"]
    assert sorted(r["InstanceId"] for r in windows) == sorted(fleet.ids("alpha", "al-win-01", "al-win-02"))


@pytest.mark.parametrize(
    ("name", "platform_type", "platform_name", "version"),
    [
        ("al-web-01", "Linux", "Amazon Linux", "2"),
        ("al-win-01", "Windows", "Microsoft Windows Server 2019 Datacenter", "10.0.17763"),
        ("al-ubu-01", "Linux", "Ubuntu", "22.04"),
        ("al-rhel-01", "Linux", "Red Hat Enterprise Linux", "9.2"),
    ],
)
def test_platform_per_os_family(fleet, name, platform_type, platform_name, version):
    (host_id,) = fleet.ids("alpha", name)
    (row,) = fleet.client("ssm", ALPHA).describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [host_id]}]
    )["InstanceInformationList"]
    assert (row["PlatformType"], row["PlatformName"], row["PlatformVersion"]) == (
        platform_type,
        platform_name,
        version,
    )
    assert row["ResourceType"] == "EC2Instance"
    assert row["ComputerName"].startswith(name)


def test_accounts_and_regions_are_isolated(fleet):
    birch_ssm = fleet.client("ssm", BIRCH)
    birch_rows, _ = _all_instance_information(birch_ssm)
    assert sorted(r["InstanceId"] for r in birch_rows) == sorted(
        h["host_id"] for h in fleet.truth("birch").values()
    )
    assert {r["PlatformVersion"] for r in birch_rows} == {"2023"}

    alpha_ids = {h["host_id"] for h in fleet.truth("alpha").values()}
    birch_ec2 = [
        i["InstanceId"]
        for r in fleet.client("ec2", BIRCH).describe_instances()["Reservations"]
        for i in r["Instances"]
    ]
    assert len(birch_ec2) == 3 and not alpha_ids & set(birch_ec2)

    # Another account cannot run commands on alpha's hosts, even knowing their ids.
    with pytest.raises(ClientError) as exc:
        birch_ssm.send_command(
            DocumentName="AWS-RunPatchBaseline",
            InstanceIds=fleet.ids("alpha", "al-web-01"),
            Parameters={"Operation": ["Scan"]},
        )
    assert exc.value.response["Error"]["Code"] == "InvalidInstanceId"

    # cedar's hosts are in us-west-2: its account shows nothing in us-east-1.
    assert (
        fleet.client("ssm", CEDAR, "us-east-1").describe_instance_information()["InstanceInformationList"]
        == []
    )
    west, _ = _all_instance_information(fleet.client("ssm", CEDAR, "us-west-2"))
    assert len(west) == 2


def test_ec2_tags_name_environment_criticality(fleet):
    ec2 = fleet.client("ec2", ALPHA)
    tags: dict[str, dict[str, str]] = {}
    for page in ec2.get_paginator("describe_tags").paginate(
        Filters=[
            {"Name": "resource-type", "Values": ["instance"]},
            {"Name": "key", "Values": ["Name", "Environment", "Criticality"]},
        ]
    ):
        for tag in page["Tags"]:
            tags.setdefault(tag["ResourceId"], {})[tag["Key"]] = tag["Value"]
    truth = fleet.truth("alpha")
    assert set(tags) == {h["host_id"] for h in truth.values()}
    for name, host in truth.items():
        assert tags[host["host_id"]] == {
            "Name": name,
            "Environment": host["environment"],
            "Criticality": host["criticality"],
        }
    assert tags[truth["al-win-01"]["host_id"]] == {
        "Name": "al-win-01",
        "Environment": "staging",
        "Criticality": "critical",
    }


def test_available_patches_filter_by_product_and_paginate(fleet):
    ssm = fleet.client("ssm", ALPHA)
    pages = list(
        ssm.get_paginator("describe_available_patches").paginate(
            Filters=[{"Key": "PRODUCT", "Values": ["AmazonLinux2"]}], PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["Patches"]) for p in pages] == [2, 2, 1]
    ids = [p["Id"] for page in pages for p in page["Patches"]]
    assert sorted(ids) == [f"ALAS2-{n}" for n in range(1, 6)]
    assert {p["Product"] for page in pages for p in page["Patches"]} == {"AmazonLinux2"}
    assert all(p["Severity"] == "Critical" for page in pages for p in page["Patches"])

    windows = ssm.describe_available_patches(Filters=[{"Key": "PRODUCT", "Values": ["WindowsServer2019"]}])
    by_id = {p["Id"]: p for p in windows["Patches"]}
    assert set(by_id) == {"KB100", "KB200"}
    assert by_id["KB200"]["MsrcSeverity"] == "Moderate"
    assert by_id["KB100"]["Classification"] == "SecurityUpdates"

    assert (
        ssm.describe_available_patches(Filters=[{"Key": "PRODUCT", "Values": ["Ubuntu20.04"]}])["Patches"]
        == []
    )
    # Unfiltered, only the families AWS documents DescribeAvailablePatches for answer (Amazon Linux 1
    # and 2, Windows Server): https://docs.aws.amazon.com/systems-manager/latest/APIReference/
    # API_DescribeAvailablePatches.html ("supports only the Amazon Linux 1, Amazon Linux 2, and Windows
    # Server operating systems"); the scenario's other families' patches are not listed.
    everything = ssm.describe_available_patches()["Patches"]
    assert len(everything) == 7
    assert {p["Product"] for p in everything} == {"AmazonLinux2", "WindowsServer2019"}


def test_health_and_unknown_routes(fleet):
    health = fleet.get("/fleetsim/health")
    assert health["status"] == "ok"
    assert health["hosts"] == 56 + 3 + 2
    assert fleet.status_of("/fleetsim/nope") == 404
    assert fleet.status_of("/fleetsim/calls/reset", method="GET") == 404
    assert fleet.truth("no-such-tenant") == {}
