"""What a tenant's Terraform root needs, built from the same facts and functions the cycle uses.

The tenant file stays the only place a baseline is written (docs/design/iac-drift.md, "One source of
truth"): ``python -m patchcycle terraform-vars <tenant>`` prints :func:`terraform_vars` as the root's
``terraform.tfvars.json``. Each patch baseline is :func:`~patchcycle.domain.catalog.baseline_request`
as of a date (the plan's own cutoff, :func:`~patchcycle.domain.plan.approval_cutoff`), the patch group
is :func:`~patchcycle.domain.catalog.patch_group`, the evidence retention is
:func:`~patchcycle.domain.controls.retention_days_for`, the connections are the tenant's.

One root instance (one state) manages one AWS account and region of the tenant (``aws_scope``); the
first scope of the tenant (its first account's first region) also holds what exists once per tenant:
the evidence bucket and the Azure and GCP orchestrator identities (``tenant_wide``). Terraform 1.11
cannot make provider configurations from data, so a root cannot fan out over accounts and regions.

Pure: no file or network access; the caller loads the tenant and the control catalogs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from patchcycle.config.models import Baseline, OsFamily, Severity, Tenant
from patchcycle.domain.catalog import PATCH_GROUP_TAG, BaselineRequest, baseline_request, patch_group
from patchcycle.domain.controls import ControlCatalog, retention_days_for
from patchcycle.domain.plan import approval_cutoff

__all__ = [
    "EXECUTION_ROLE",
    "FALCON_DOCUMENT",
    "AwsScope",
    "TerraformVarsError",
    "approved_patches_compliance_level",
    "aws_scopes",
    "compliance_tags",
    "falcon_parameter_names",
    "launch_template_vars",
    "patch_baseline_vars",
    "terraform_vars",
]

EXECUTION_ROLE = "PatchcycleExecution"
"""The role the tenant's AWS connection assumes in each account (docs/operator-guide.md)."""
FALCON_DOCUMENT = "Patchcycle-FalconSensorInstall"
"""The SSM Command document the Falcon roll-out runs (one per account and region)."""

# The public SSM parameters AWS publishes with the latest Amazon Linux AMI ids ("Query for the latest
# Amazon Linux AMI IDs using AWS Systems Manager Parameter Store"); their images ship the SSM agent.
AMAZON_LINUX_IMAGE_PARAMETERS: dict[OsFamily, str] = {
    OsFamily.amazon_linux_2: "/aws/service/ami-amazon-linux-latest/amzn2-ami-hvm-x86_64-gp2",
    OsFamily.amazon_linux_2023: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
}

# ApprovedPatchesComplianceLevel's values (API_CreatePatchBaseline: CRITICAL | HIGH | MEDIUM | LOW |
# INFORMATIONAL | UNSPECIFIED), for our severity scale.
_COMPLIANCE_LEVELS: dict[Severity, str] = {
    Severity.Critical: "CRITICAL",
    Severity.High: "HIGH",
    Severity.Medium: "MEDIUM",
    Severity.Low: "LOW",
}


class TerraformVarsError(ValueError):
    """The export cannot be built as asked (an AWS scope the tenant does not have, no AWS at all)."""


@dataclass(frozen=True)
class AwsScope:
    """One AWS account and region of a tenant: what one root instance (one state) manages."""

    account_id: str
    region: str
    connection_id: str

    @property
    def key(self) -> str:
        """``<account>/<region>``, as the state key and the command line name it."""
        return f"{self.account_id}/{self.region}"


def aws_scopes(tenant: Tenant) -> list[AwsScope]:
    """The tenant's AWS (account, region) pairs in file order; the first is the tenant-wide one."""
    if tenant.clouds.aws is None:
        return []
    return [
        AwsScope(account.account_id, region, tenant.aws_connection_id(account))
        for account in tenant.clouds.aws.accounts
        for region in account.regions
    ]


def compliance_tags(tenant: Tenant, retention_days: int) -> dict[str, str]:
    """The tags every tagged resource of the tenant carries (the paper's ``local.compliance_tags``).

    Values keep to the characters every AWS service accepts in tags (letters, digits, spaces and
    ``_ . : / = + - @``), so frameworks are joined by spaces.
    """
    return {
        "patchcycle:tenant": tenant.id,
        "patchcycle:owner": tenant.owner,
        "patchcycle:frameworks": " ".join(sorted(f.value for f in tenant.frameworks)),
        "patchcycle:evidence-retention-days": str(retention_days),
        "patchcycle:managed-by": "terraform",
    }


def approved_patches_compliance_level(baseline: Baseline) -> str:
    """The compliance level of a patch the baseline approves and a host lacks: the least severe severity
    it approves (Critical and High approve nothing below High, so a missing one is at least HIGH; the
    paper's Table 1 pairs exactly that filter with ``HIGH``)."""
    least = min(baseline.severities, key=lambda s: s.rank)
    return _COMPLIANCE_LEVELS[least]


def patch_baseline_vars(tenant_id: str, baseline: Baseline, as_of: dt.date) -> dict[str, Any]:
    """One family's baseline as the ``ssm_patch_baselines`` module declares it, from the request the
    cycle's plan sends for a cycle on ``as_of`` (same cutoff, same rules, same name and patch group).

    ``approve_until_date`` and ``description`` seed the baseline when Terraform creates it; from then
    on the cycle owns them (the module ignores their changes). ``enable_non_security`` is None where
    the request leaves EnableNonSecurity out (Windows).
    """
    request: BaselineRequest = baseline_request(
        tenant_id, baseline, approval_cutoff(as_of, baseline.approve_after_days)
    )
    (rule,) = request.approval_rules["PatchRules"]
    return {
        "name": request.name,
        "operating_system": request.operating_system,
        "patch_group": request.patch_group,
        "description": request.description,
        "approved_patches_compliance_level": approved_patches_compliance_level(baseline),
        "approval_rule": {
            "patch_filters": [
                {"key": f["Key"], "values": list(f["Values"])}
                for f in rule["PatchFilterGroup"]["PatchFilters"]
            ],
            "approve_until_date": rule.get("ApproveUntilDate"),
            "enable_non_security": rule.get("EnableNonSecurity"),
        },
        # The tenant file names no rejected patches: the cycle leaves out what it does not install
        # through its InstallOverrideList, not through the baseline.
        "rejected_patches": [],
    }


def falcon_parameter_names(tenant_id: str) -> dict[str, str]:
    """The SecureString parameters (names only) holding the tenant's Falcon CID and installation token."""
    return {
        "cid": f"/patchcycle/{tenant_id}/falcon/cid",
        "installation_token": f"/patchcycle/{tenant_id}/falcon/installation-token",
    }


def launch_template_vars(tenant: Tenant) -> dict[str, dict[str, str]]:
    """One launch template per Amazon Linux family of the tenant: its name, the public parameter of its
    image, and the patch group its instances join at launch (so the cycle finds them in the group its
    baseline is registered with)."""
    return {
        b.os_family.value: {
            "name": f"patchcycle-{tenant.id}-{b.os_family.value}".replace("_", "-"),
            "image_parameter": AMAZON_LINUX_IMAGE_PARAMETERS[b.os_family],
            "patch_group": patch_group(tenant.id, b.os_family),
        }
        for b in sorted(tenant.baselines, key=lambda b: b.os_family.value)
        if b.os_family in AMAZON_LINUX_IMAGE_PARAMETERS
    }


def _scope(tenant: Tenant, account_id: str | None, region: str | None) -> tuple[AwsScope, bool]:
    scopes = aws_scopes(tenant)
    if not scopes:
        raise TerraformVarsError(f"tenant {tenant.id!r} declares no AWS account: nothing for the AWS root")
    if account_id is None and region is None:
        if len(scopes) > 1:
            known = ", ".join(s.key for s in scopes)
            raise TerraformVarsError(
                f"tenant {tenant.id!r} has {len(scopes)} AWS scopes ({known}): name one with "
                "--account and --region (one root instance, one state, per account and region)"
            )
        return scopes[0], True
    for position, scope in enumerate(scopes):
        if (account_id in (None, scope.account_id)) and (region in (None, scope.region)):
            return scope, position == 0
    known = ", ".join(s.key for s in scopes)
    raise TerraformVarsError(
        f"tenant {tenant.id!r} has no AWS scope {account_id or '*'}/{region or '*'} (it has: {known})"
    )


def terraform_vars(
    tenant: Tenant,
    catalogs: Mapping[str, ControlCatalog],
    as_of: dt.date,
    account_id: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The root's ``terraform.tfvars.json`` for one AWS scope of the tenant, as of a cycle date.

    Every key is a variable of ``include/terraform/tenants/<tenant>`` and every variable is a key
    (tests/terraform holds both). Raises :class:`TerraformVarsError` when the tenant has no AWS
    account, has several scopes and none is named, or has no such scope.
    """
    scope, tenant_wide = _scope(tenant, account_id, region)
    retention = retention_days_for([f.value for f in tenant.frameworks], catalogs)
    families = sorted(tenant.baselines, key=lambda b: b.os_family.value)
    scopes = aws_scopes(tenant)
    azure = tenant.clouds.azure
    gcp = tenant.clouds.gcp
    rollout = tenant.falcon.rollout if tenant.falcon is not None else None
    return {
        "tenant_id": tenant.id,
        "as_of": as_of.isoformat(),
        "aws_scope": {
            "account_id": scope.account_id,
            "region": scope.region,
            "connection_id": scope.connection_id,
            "execution_role_name": EXECUTION_ROLE,
        },
        "tenant_wide": tenant_wide,
        "compliance_tags": compliance_tags(tenant, retention),
        "patch_group_tag_key": PATCH_GROUP_TAG,
        "patch_baselines": {b.os_family.value: patch_baseline_vars(tenant.id, b, as_of) for b in families},
        "launch_templates": launch_template_vars(tenant),
        "falcon": (
            {
                "document_name": rollout.install.aws.document_name if rollout else FALCON_DOCUMENT,
                "parameter_names": falcon_parameter_names(tenant.id),
            }
            if tenant.falcon is not None
            else None
        ),
        # Whether the Arc and GCP orchestrator roles may install the sensor (extension, OS policy assignment).
        "falcon_rollout": rollout is not None,
        # Where the Falcon roll-out stages sensor packages (the orchestrator may write falcon-sensor/ there).
        "falcon_installer_bucket": rollout.install.aws.installer_bucket if rollout else None,
        "evidence": {
            "bucket": tenant.evidence.bucket,
            "region": tenant.evidence.region,
            "connection_id": tenant.evidence.connection_id,
            "retention_days": retention,
            # The hosts of every account read their install lists from the bucket (InstallOverrideList).
            "reader_account_ids": sorted({s.account_id for s in scopes}),
        },
        "rds": any(a.rds for a in tenant.clouds.aws.accounts if a.account_id == scope.account_id)
        if tenant.clouds.aws
        else False,
        "azure": (
            {
                "subscriptions": [
                    {
                        "subscription_id": sub.subscription_id,
                        "resource_groups": list(sub.resource_groups),
                        "connection_id": tenant.azure_connection_id(sub),
                    }
                    for sub in azure.subscriptions
                ]
            }
            if azure is not None
            else None
        ),
        "gcp": (
            {
                "projects": [
                    {
                        "project_id": project.project_id,
                        "zones": list(project.zones),
                        "connection_id": tenant.gcp_connection_id(project),
                    }
                    for project in gcp.projects
                ]
            }
            if gcp is not None
            else None
        ),
    }
