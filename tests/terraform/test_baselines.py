"""The SSM patch baselines Terraform would declare for a tenant are the ones the cycle's plan asks SSM
for on the same date (patchcycle.domain.catalog.baseline_request with the plan's cutoff).

No provider runs here, so the module is evaluated the way Terraform would for these arguments: each
``aws_ssm_patch_baseline`` argument read from the module (python-hcl2), resolved against the tenant's
committed terraform.tfvars.json, and turned into CreatePatchBaseline's fields by the Terraform AWS
provider's documented mapping (resource ``aws_ssm_patch_baseline``: ``approval_rule`` -> ApprovalRules
PatchRules, ``patch_filter`` -> PatchFilterGroup PatchFilters, ...).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.domain.catalog import baseline_request
from patchcycle.domain.plan import approval_cutoff
from tests.terraform.hcl import MODULES, SHARED_ROOT, read_dir, reference, resolve, tenant_root_dirs

MODULE = MODULES / "ssm_patch_baselines"
# aws_ssm_patch_baseline argument -> CreatePatchBaseline field (Terraform AWS provider documentation).
TOP_LEVEL = {
    "name": "Name",
    "operating_system": "OperatingSystem",
    "description": "Description",
    "approved_patches_compliance_level": "ApprovedPatchesComplianceLevel",
    "rejected_patches": "RejectedPatches",
}
RULE = {
    "approve_until_date": "ApproveUntilDate",
    "approve_after_days": "ApproveAfterDays",
    "enable_non_security": "EnableNonSecurity",
    "compliance_level": "ComplianceLevel",
}
CYCLE_OWNED = {
    "${approval_rule[0].approve_until_date}",
    "${approval_rule[0].approve_after_days}",
    "description",
    "approved_patches",
    "approved_patches_enable_non_security",
}


def _value(expression: Any, scope: dict[str, Any]) -> Any:
    ref = reference(expression)
    return resolve(ref, scope) if ref else expression


def declared_baselines(tfvars: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """CreatePatchBaseline's fields per family, as the module declares them from these tfvars."""
    root_call = read_dir(SHARED_ROOT)["module"]["patch_baselines"]
    assert root_call["baselines"] == "${var.patch_baselines}"
    resource = read_dir(MODULE)["resource"]["aws_ssm_patch_baseline"]["family"]
    assert resource["for_each"] == "${var.baselines}"
    declared = {}
    for family, each_value in tfvars["patch_baselines"].items():
        scope = {
            "each": {"key": family, "value": each_value},
            "var": {"baselines": tfvars["patch_baselines"]},
        }
        fields = {api: _value(resource[arg], scope) for arg, api in TOP_LEVEL.items() if arg in resource}
        rules = []
        for rule_block in resource["approval_rule"]:
            rule: dict[str, Any] = {}
            for arg, api in RULE.items():
                value = _value(rule_block[arg], scope) if arg in rule_block else None
                if value is not None:  # Terraform leaves a null argument out of the request
                    rule[api] = value
            filters = []
            for dynamic in rule_block.get("dynamic", []):
                (block,) = dynamic["patch_filter"]["content"]
                for item in _value(dynamic["patch_filter"]["for_each"], scope):
                    inner = {**scope, "patch_filter": {"value": item}}
                    filters.append(
                        {"Key": _value(block["key"], inner), "Values": _value(block["values"], inner)}
                    )
            rule["PatchFilterGroup"] = {"PatchFilters": filters}
            rules.append(rule)
        fields["ApprovalRules"] = {"PatchRules": rules}
        declared[family] = fields
    return declared


def declared_patch_groups(tfvars: dict[str, Any]) -> dict[str, str]:
    group = read_dir(MODULE)["resource"]["aws_ssm_patch_group"]["family"]
    assert group["baseline_id"] == "${aws_ssm_patch_baseline.family[each.key].id}"
    return {
        family: _value(group["patch_group"], {"each": {"key": family, "value": value}})
        for family, value in tfvars["patch_baselines"].items()
    }


@pytest.mark.parametrize("root", tenant_root_dirs(), ids=lambda p: p.name)
def test_declared_baselines_equal_what_the_cycle_asks_ssm_for_on_the_same_date(root: Path) -> None:
    tfvars = json.loads((root / "terraform.tfvars.json").read_text())
    as_of = dt.date.fromisoformat(tfvars["as_of"])
    tenant = load_tenant(default_tenants_dir() / f"{root.name}.yaml")
    declared = declared_baselines(tfvars)
    groups = declared_patch_groups(tfvars)
    assert set(declared) == {b.os_family.value for b in tenant.baselines}
    for baseline in tenant.baselines:
        request = baseline_request(tenant.id, baseline, approval_cutoff(as_of, baseline.approve_after_days))
        mine = declared[baseline.os_family.value]
        # Everything the cycle sends (name, OS, rules with filters, cutoff and EnableNonSecurity,
        # description) is declared identically ...
        assert {k: mine[k] for k in request.create_kwargs()} == request.create_kwargs()
        assert groups[baseline.os_family.value] == request.patch_group
        # ... and the rest is Terraform's alone: nothing the cycle's UpdatePatchBaseline resets.
        assert set(mine) - set(request.create_kwargs()) == {
            "ApprovedPatchesComplianceLevel",
            "RejectedPatches",
        }


def test_the_rule_carries_no_compliance_level_since_the_cycle_rewrites_rules_without_one() -> None:
    (rule,) = read_dir(MODULE)["resource"]["aws_ssm_patch_baseline"]["family"]["approval_rule"]
    assert "compliance_level" not in rule and "approve_after_days" not in rule


def test_terraform_ignores_exactly_the_fields_the_cycle_owns() -> None:
    (lifecycle,) = read_dir(MODULE)["resource"]["aws_ssm_patch_baseline"]["family"]["lifecycle"]
    assert set(lifecycle["ignore_changes"]) == CYCLE_OWNED
    text = (MODULE / "main.tf").read_text()
    assert "Owned by the monthly cycle" in text  # the comment saying why stands beside the list


def test_a_different_date_moves_only_the_cycle_owned_fields() -> None:
    from patchcycle.domain.controls import load_control_catalogs
    from patchcycle.domain.terraform_vars import terraform_vars

    tenant = load_tenant(default_tenants_dir() / "cu_alpha.yaml")
    catalogs = load_control_catalogs()
    before = declared_baselines(terraform_vars(tenant, catalogs, dt.date(2026, 10, 25)))
    after = declared_baselines(terraform_vars(tenant, catalogs, dt.date(2026, 11, 22)))
    for family in before:
        b, a = before[family], after[family]
        assert {k: v for k, v in b.items() if k not in ("Description", "ApprovalRules")} == {
            k: v for k, v in a.items() if k not in ("Description", "ApprovalRules")
        }
        rule_b, rule_a = b["ApprovalRules"]["PatchRules"][0], a["ApprovalRules"]["PatchRules"][0]
        assert {k: v for k, v in rule_b.items() if k != "ApproveUntilDate"} == {
            k: v for k, v in rule_a.items() if k != "ApproveUntilDate"
        }
        if "ApproveUntilDate" in rule_a:  # not Ubuntu
            assert (rule_b["ApproveUntilDate"], rule_a["ApproveUntilDate"]) == ("2026-10-18", "2026-11-15")
