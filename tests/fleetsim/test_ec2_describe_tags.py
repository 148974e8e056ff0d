"""EC2 DescribeTags in pages through boto3, as the EC2 API reference documents it: MaxResults 5-1000 with
NextToken reaching every tag once, filters applied before paging, InvalidParameterValue outside the
range, at most 1,000 tags a response when MaxResults is omitted (the reference names no default).

Documents: DescribeTags, https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeTags.html
("This value can be between 5 and 1000"); Error codes for the Amazon EC2 API,
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html.
"""

from __future__ import annotations

import math

import pytest
from botocore.exceptions import ClientError
from fleetsim_testkit import group, patch, scenario_dict

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-ec2-describe-tags")]

ACCOUNT = "111111111111"
HOSTS = 210  # each with Name, Environment, Criticality, Tenant and OsFamily: 1,050 instance tags
SEEDED_KEYS = ("Name", "Environment", "Criticality", "Tenant", "OsFamily")
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "alpha",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [
                    group("tg", HOSTS - 10, environment="prod"),
                    group("ts", 10, environment="staging"),
                ],
            },
        }
    ],
    catalog=[patch("ALAS2-1", "amazon_linux_2")],
)


def _ec2(fleet):
    return fleet.client("ec2", ACCOUNT)


def _pages(ec2, **kwargs) -> list[dict]:
    """Every page, following NextToken by hand (no paginator between the test and the API)."""
    pages = []
    while True:
        page = ec2.describe_tags(**kwargs)
        pages.append(page)
        if not page.get("NextToken"):
            return pages
        kwargs["NextToken"] = page["NextToken"]


def _rows(pages: list[dict]) -> list[tuple[str, str, str]]:
    return [(t["ResourceId"], t["Key"], t["Value"]) for p in pages for t in p["Tags"]]


def _expected(fleet, keys=SEEDED_KEYS) -> set[tuple[str, str, str]]:
    """The instance tags the scenario seeded, from ground truth (not from DescribeTags)."""
    rows = set()
    for name, host in fleet.truth("alpha").items():
        seeded = {
            "Name": name,
            "Environment": host["environment"],
            "Criticality": host["criticality"],
            "Tenant": "alpha",
            "OsFamily": host["os_family"],
        }
        rows |= {(host["host_id"], k, seeded[k]) for k in keys}
    return rows


INSTANCES = [{"Name": "resource-type", "Values": ["instance"]}]


def test_pages_of_max_results_reach_every_tag_exactly_once(fleet) -> None:
    ec2 = _ec2(fleet)
    fleet.post("/fleetsim/calls/reset")
    pages = _pages(ec2, Filters=INSTANCES, MaxResults=100)
    rows = _rows(pages)
    expected = _expected(fleet)
    assert len(expected) == HOSTS * len(SEEDED_KEYS)
    assert len(rows) == len(set(rows)) == len(expected)  # no tag twice
    assert set(rows) == expected  # none missed
    assert [len(p["Tags"]) for p in pages] == [100] * 10 + [50]
    assert "NextToken" not in pages[-1]  # null when there are no more items to return
    assert fleet.calls()["aws.ec2.DescribeTags"] == math.ceil(len(expected) / 100)

    # The smallest and the largest documented page.
    small = _pages(ec2, Filters=INSTANCES + [{"Name": "key", "Values": ["Name"]}], MaxResults=5)
    assert [len(p["Tags"]) for p in small] == [5] * (HOSTS // 5)
    assert set(_rows(small)) == _expected(fleet, ("Name",))
    large = _pages(ec2, Filters=INSTANCES, MaxResults=1000)
    assert [len(p["Tags"]) for p in large] == [1000, 50]
    assert set(_rows(large)) == expected


def test_filters_are_applied_before_paging(fleet) -> None:
    ec2 = _ec2(fleet)
    # 10 staging hosts' Environment tags among 1,050 instance tags: two full pages of 5, nothing else.
    staging = INSTANCES + [
        {"Name": "key", "Values": ["Environment"]},
        {"Name": "value", "Values": ["staging"]},
    ]
    pages = _pages(ec2, Filters=staging, MaxResults=5)
    assert [len(p["Tags"]) for p in pages] == [5, 5]
    assert {(k, v) for _, k, v in _rows(pages)} == {("Environment", "staging")}

    # tag:<key> selects resources by another tag: every tag of the staging hosts, in full pages.
    by_tag = _pages(
        ec2, Filters=INSTANCES + [{"Name": "tag:Environment", "Values": ["staging"]}], MaxResults=5
    )
    staging_ids = {h["host_id"] for h in fleet.truth("alpha").values() if h["environment"] == "staging"}
    assert [len(p["Tags"]) for p in by_tag] == [5] * (10 * len(SEEDED_KEYS) // 5)
    assert set(_rows(by_tag)) == {r for r in _expected(fleet) if r[0] in staging_ids}

    # Several key values (one filter, any value) and resource-id, as the product reads them.
    some = sorted(staging_ids)[:3]
    two_keys = INSTANCES + [
        {"Name": "key", "Values": ["Name", "Criticality"]},
        {"Name": "resource-id", "Values": some},
    ]
    pages = _pages(ec2, Filters=two_keys, MaxResults=5)
    assert [len(p["Tags"]) for p in pages] == [5, 1]
    assert {(r, k) for r, k, _ in _rows(pages)} == {(i, k) for i in some for k in ("Name", "Criticality")}


@pytest.mark.parametrize("size", [0, 4, 1001, 5000])
def test_max_results_outside_5_to_1000_is_invalid_parameter_value(fleet, size: int) -> None:
    with pytest.raises(ClientError) as exc:
        _ec2(fleet).describe_tags(Filters=INSTANCES, MaxResults=size)
    error = exc.value.response["Error"]
    assert error["Code"] == "InvalidParameterValue"
    assert "maxResults" in error["Message"] and str(size) in error["Message"]


def test_without_max_results_a_response_holds_at_most_1000_tags(fleet) -> None:
    ec2 = _ec2(fleet)
    first = ec2.describe_tags(Filters=INSTANCES)
    assert len(first["Tags"]) == 1000 and first["NextToken"]
    rest = ec2.describe_tags(Filters=INSTANCES, NextToken=first["NextToken"])
    assert len(rest["Tags"]) == 50 and "NextToken" not in rest
    assert set(_rows([first, rest])) == _expected(fleet)
    # Fewer than 1,000 matching tags: one response, no token.
    only = ec2.describe_tags(Filters=INSTANCES + [{"Name": "key", "Values": ["Name"]}])
    assert len(only["Tags"]) == HOSTS and "NextToken" not in only


def test_a_token_continues_after_its_item_when_tags_change_between_pages(fleet) -> None:
    ec2 = _ec2(fleet)
    keyed = INSTANCES + [{"Name": "key", "Values": ["Owner"]}]
    ids = sorted(h["host_id"] for h in fleet.truth("alpha").values())[:12]
    ec2.create_tags(Resources=ids[:10], Tags=[{"Key": "Owner", "Value": "team-a"}])
    first = ec2.describe_tags(Filters=keyed, MaxResults=5)
    assert [t["ResourceId"] for t in first["Tags"]] == ids[:5]
    # A tag deleted from the first page and one added after it: no item repeated, the new one read.
    ec2.delete_tags(Resources=[ids[0]], Tags=[{"Key": "Owner"}])
    ec2.create_tags(Resources=[ids[11]], Tags=[{"Key": "Owner", "Value": "team-b"}])
    rest = _pages(ec2, Filters=keyed, MaxResults=5, NextToken=first["NextToken"])
    assert [r for r, _, _ in _rows(rest)] == ids[5:10] + [ids[11]]
    ec2.delete_tags(Resources=ids[1:12], Tags=[{"Key": "Owner"}])


def test_a_token_for_other_filters_or_not_issued_is_refused(fleet) -> None:
    ec2 = _ec2(fleet)
    token = ec2.describe_tags(Filters=INSTANCES, MaxResults=5)["NextToken"]
    for kwargs in (
        {"Filters": INSTANCES + [{"Name": "key", "Values": ["Name"]}], "NextToken": token},
        {"Filters": INSTANCES, "NextToken": "not-a-token"},
    ):
        with pytest.raises(ClientError) as exc:
            ec2.describe_tags(MaxResults=5, **kwargs)
        assert exc.value.response["Error"]["Code"] == "InvalidPaginationToken"


def test_an_unknown_filter_is_invalid_parameter_value(fleet) -> None:
    with pytest.raises(ClientError) as exc:
        _ec2(fleet).describe_tags(Filters=[{"Name": "owner-id", "Values": [ACCOUNT]}], MaxResults=5)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "owner-id" in exc.value.response["Error"]["Message"]
