"""IAM Identity Center permission-set provisioning, read through the unmodified boto3 SDK, as AWS
documents it (IAM Identity Center API Reference: ProvisionPermissionSet provisions a set "to the
specified target"; ListPermissionSetsProvisionedToAccount "Lists all the permission sets that are
provisioned to a specified AWS account"): per account, each set once, whatever moto does underneath."""

from __future__ import annotations

import pytest
from fleetsim_testkit import group, patch, scenario_dict

pytestmark = pytest.mark.xdist_group("fleetsim-identity-center")

A, B = "111111111111", "222222222222"

SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "idc",
            "aws": {"account_id": A, "region": "us-east-1", "groups": [group("ic", 1, "amazon_linux_2")]},
        }
    ],
    catalog=[patch("ALAS2-1", "amazon_linux_2")],
    identity={
        "users": [
            {"user_name": "jlee", "display_name": "Jordan Lee", "email": "jlee@example.com"},
            {"user_name": "audit", "display_name": "Audit Reader", "email": "audit@example.com"},
        ],
        "groups": [{"name": "sre", "members": ["jlee"]}, {"name": "oncall", "members": ["jlee"]}],
        "permission_sets": [{"name": "Patching"}, {"name": "AuditReadOnly"}],
        "assignments": [
            # The same set reaches account A through two groups: provisioned there twice.
            {"permission_set": "Patching", "group": "sre", "accounts": [A, B]},
            {"permission_set": "Patching", "group": "oncall", "accounts": [A]},
            {"permission_set": "AuditReadOnly", "user": "audit", "accounts": [A]},
        ],
    },
)


def _sets(fleet, account: str, **paging) -> list[str]:
    sso = fleet.client("sso-admin", fleet.server.scenario.evidence.account_id)
    instance = sso.list_instances()["Instances"][0]["InstanceArn"]
    names = {}
    arns = []
    pages = sso.get_paginator("list_permission_sets_provisioned_to_account").paginate(
        InstanceArn=instance, AccountId=account, PaginationConfig=paging
    )
    for page in pages:
        arns += page["PermissionSets"]
    for arn in arns:
        names[arn] = sso.describe_permission_set(InstanceArn=instance, PermissionSetArn=arn)["PermissionSet"][
            "Name"
        ]
    return [names[a] for a in arns]


def test_each_account_lists_its_own_sets_once(fleet) -> None:
    assert sorted(_sets(fleet, A)) == ["AuditReadOnly", "Patching"]
    assert _sets(fleet, B) == ["Patching"]
    assert _sets(fleet, "333333333333") == []


def test_the_list_pages_by_max_results(fleet) -> None:
    assert sorted(_sets(fleet, A, PageSize=1)) == ["AuditReadOnly", "Patching"]
