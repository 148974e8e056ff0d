"""patchcycle.domain.terraform_vars: the tfvars of a tenant's Terraform root, from the cycle's own
functions (baseline_request, patch_group, retention_days_for, the tenant's connections)."""

from __future__ import annotations

import datetime as dt

import pytest

from patchcycle.config.models import Baseline, Tenant
from patchcycle.domain.catalog import baseline_request, patch_group
from patchcycle.domain.controls import load_control_catalogs, retention_days_for
from patchcycle.domain.terraform_vars import (
    EXECUTION_ROLE,
    TerraformVarsError,
    approved_patches_compliance_level,
    aws_scopes,
    patch_baseline_vars,
    terraform_vars,
)

CATALOGS = load_control_catalogs()
AS_OF = dt.date(2026, 11, 22)
TWO_ACCOUNTS = {
    "aws": {
        "accounts": [
            {"account_id": "111111111111", "regions": ["us-east-1", "us-west-2"]},
            {"account_id": "222222222222", "regions": ["us-east-1"], "connection_id": "aws_b", "rds": True},
        ]
    }
}


def baseline(**overrides: object) -> Baseline:
    data = {
        "os_family": "amazon_linux_2",
        "classifications": ["Security"],
        "severities": ["Critical", "High"],
        "approve_after_days": 7,
    }
    return Baseline.model_validate({**data, **overrides})


def test_a_baseline_is_the_plans_request_for_the_same_cycle(tenant: Tenant) -> None:
    for b in tenant.baselines:
        exported = patch_baseline_vars(tenant.id, b, AS_OF)
        request = baseline_request(tenant.id, b, AS_OF - dt.timedelta(days=b.approve_after_days))
        (rule,) = request.approval_rules["PatchRules"]
        assert exported["name"] == request.name == patch_group(tenant.id, b.os_family)
        assert exported["patch_group"] == request.patch_group
        assert exported["operating_system"] == request.operating_system
        assert exported["description"] == request.description
        assert exported["approval_rule"]["approve_until_date"] == rule["ApproveUntilDate"] == "2026-11-15"
        assert [
            {"Key": f["key"], "Values": f["values"]} for f in exported["approval_rule"]["patch_filters"]
        ] == (rule["PatchFilterGroup"]["PatchFilters"])


def test_windows_leaves_enable_non_security_out_and_ubuntu_the_date() -> None:
    windows = patch_baseline_vars(
        "cu_t", baseline(os_family="windows_2022", classifications=["SecurityUpdates"]), AS_OF
    )
    assert windows["approval_rule"]["enable_non_security"] is None
    assert windows["approval_rule"]["patch_filters"][1] == {
        "key": "MSRC_SEVERITY",
        "values": ["Critical", "Important"],
    }
    ubuntu = patch_baseline_vars("cu_t", baseline(os_family="ubuntu_22_04"), AS_OF)
    assert ubuntu["approval_rule"] == {
        "patch_filters": [{"key": "PRODUCT", "values": ["*"]}],
        "approve_until_date": None,
        "enable_non_security": False,
    }


@pytest.mark.parametrize(
    ("severities", "level"),
    [(["Critical", "High"], "HIGH"), (["Critical"], "CRITICAL"), (["High", "Medium", "Low"], "LOW")],
)
def test_compliance_level_is_the_least_severe_approved_severity(severities: list[str], level: str) -> None:
    assert approved_patches_compliance_level(baseline(severities=severities)) == level


def test_one_scope_is_the_default_and_tenant_wide(tenant: Tenant) -> None:
    tfvars = terraform_vars(tenant, CATALOGS, AS_OF)
    assert tfvars["aws_scope"] == {
        "account_id": "111111111111",
        "region": "us-east-1",
        "connection_id": "aws_cu_test",
        "execution_role_name": EXECUTION_ROLE,
    }
    assert tfvars["tenant_wide"] is True
    assert tfvars["as_of"] == "2026-11-22"
    assert tfvars["azure"] is None and tfvars["gcp"] is None and tfvars["falcon"] is None
    retention = retention_days_for(["soc2", "pci_dss"], CATALOGS)
    assert tfvars["evidence"] == {
        "bucket": "patchcycle-evidence-cu-test",
        "region": "us-east-1",
        "connection_id": "patchcycle_evidence",
        "retention_days": retention,
        "reader_account_ids": ["111111111111"],
    }
    assert tfvars["compliance_tags"]["patchcycle:evidence-retention-days"] == str(retention)
    assert tfvars["compliance_tags"]["patchcycle:frameworks"] == "pci_dss soc2"
    assert set(tfvars["patch_baselines"]) == {"amazon_linux_2", "windows_2019"}
    assert tfvars["launch_templates"] == {
        "amazon_linux_2": {
            "name": "patchcycle-cu-test-amazon-linux-2",
            "image_parameter": "/aws/service/ami-amazon-linux-latest/amzn2-ami-hvm-x86_64-gp2",
            "patch_group": "patchcycle-cu_test-amazon_linux_2",
        }
    }


def test_several_scopes_need_one_named_and_only_the_first_is_tenant_wide(make_tenant) -> None:
    tenant = make_tenant(clouds=TWO_ACCOUNTS)
    assert [s.key for s in aws_scopes(tenant)] == [
        "111111111111/us-east-1",
        "111111111111/us-west-2",
        "222222222222/us-east-1",
    ]
    with pytest.raises(TerraformVarsError, match="has 3 AWS scopes .* --account and --region"):
        terraform_vars(tenant, CATALOGS, AS_OF)
    first = terraform_vars(tenant, CATALOGS, AS_OF, "111111111111", "us-east-1")
    second = terraform_vars(tenant, CATALOGS, AS_OF, "222222222222", "us-east-1")
    assert first["tenant_wide"] is True and second["tenant_wide"] is False
    assert (first["rds"], second["rds"]) == (False, True)
    assert second["aws_scope"]["connection_id"] == "aws_b"
    assert first["evidence"]["reader_account_ids"] == ["111111111111", "222222222222"]
    with pytest.raises(TerraformVarsError, match="no AWS scope 222222222222/us-west-2"):
        terraform_vars(tenant, CATALOGS, AS_OF, "222222222222", "us-west-2")


def test_a_tenant_without_aws_has_no_aws_root(make_tenant) -> None:
    tenant = make_tenant(
        clouds={"gcp": {"projects": [{"project_id": "cu-test-project", "zones": ["us-central1-a"]}]}}
    )
    with pytest.raises(TerraformVarsError, match="declares no AWS account"):
        terraform_vars(tenant, CATALOGS, AS_OF)


def test_azure_gcp_and_falcon_carry_the_tenants_connections_and_secret_names(alpha: Tenant) -> None:
    tfvars = terraform_vars(alpha, CATALOGS, AS_OF)
    assert tfvars["azure"] == {
        "subscriptions": [
            {
                "subscription_id": "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10",
                "resource_groups": ["rg-alpha-core"],
                "connection_id": "azure_cu_alpha",
            }
        ]
    }
    assert tfvars["gcp"]["projects"][0]["connection_id"] == "gcp_cu_alpha"
    # Names of SecureString parameters only: no secret value exists in the tenant file or the export.
    assert tfvars["falcon"] == {
        "document_name": "Patchcycle-FalconSensorInstall",
        "parameter_names": {
            "cid": "/patchcycle/cu_alpha/falcon/cid",
            "installation_token": "/patchcycle/cu_alpha/falcon/installation-token",
        },
    }
    assert tfvars["rds"] is True
