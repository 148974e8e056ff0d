"""``Ec2BackupHook.instance_tags`` against fleetsim through boto3: more matching tags than one DescribeTags
page holds (MaxResults ``EC2_TAGS_PAGE``, the documented maximum 1000), so every tag is read across pages
by NextToken, in as many calls as pages and no more.

Document: DescribeTags (MaxResults "can be between 5 and 1000"; NextToken),
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeTags.html.
"""

from __future__ import annotations

import math

import pytest
from fleetsim_testkit import Fleet, group, patch, scenario_dict

from devtools.local import aws_connection
from patchcycle.hooks import aws as aws_hooks
from patchcycle.hooks.aws import EC2_TAGS_PAGE, Ec2BackupHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-aws-instance-tags")]

ACCOUNT = "111111111111"
CONN = "aws_instancetags"
HOSTS = 400  # x 3 keys read = 1,200 tags: two pages of 1,000
KEYS = ["Name", "Environment", "Criticality"]

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "tags",
            "aws": {
                "account_id": ACCOUNT,
                "region": "us-east-1",
                "groups": [
                    group("tp", HOSTS - 100, environment="prod", criticality="high"),
                    group("tn", 100, environment="nonprod", criticality="low"),
                ],
            },
        }
    ],
    catalog=[patch("ALAS2-1", "amazon_linux_2")],
)


@pytest.fixture
def ec2(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Ec2BackupHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", aws_connection(fleet.url, "us-east-1", ACCOUNT))
    return Ec2BackupHook(aws_conn_id=CONN, region_name="us-east-1")


def _truth_tags(fleet: Fleet) -> dict[str, dict[str, str]]:
    return {
        h["host_id"]: {"Name": name, "Environment": h["environment"], "Criticality": h["criticality"]}
        for name, h in fleet.truth("tags").items()
    }


def test_instance_tags_reads_every_tag_across_pages(fleet: Fleet, ec2: Ec2BackupHook) -> None:
    assert EC2_TAGS_PAGE == 1000
    ec2.conn  # noqa: B018 - the client (and its AssumeRole) made before the calls are counted
    fleet.post("/fleetsim/calls/reset")
    tags = ec2.instance_tags(KEYS)
    expected = _truth_tags(fleet)
    assert len(expected) == HOSTS
    assert tags == expected  # every host, each with exactly the keys asked for (no Tenant, no OsFamily)
    assert fleet.calls() == {"aws.ec2.DescribeTags": math.ceil(HOSTS * len(KEYS) / EC2_TAGS_PAGE)}


def test_instance_tags_at_the_smallest_documented_page(
    fleet: Fleet, ec2: Ec2BackupHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws_hooks, "EC2_TAGS_PAGE", 5)
    ec2.conn  # noqa: B018
    fleet.post("/fleetsim/calls/reset")
    tags = ec2.instance_tags(["Environment"])
    assert tags == {i: {"Environment": t["Environment"]} for i, t in _truth_tags(fleet).items()}
    assert fleet.calls() == {"aws.ec2.DescribeTags": HOSTS // 5}
