"""include/terraform as the tenant file declares it: every module parses with python-hcl2, every module
variable is fed, every root variable comes from ``python -m patchcycle terraform-vars`` and every key of
it is a root variable, and each tenant's committed terraform.tfvars.json is exactly the command's output.

``terraform validate``/``plan`` need the providers, which cannot be downloaded here: these tests check
what can be checked without them (README, "Infrastructure as code").
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patchcycle.config.loader import default_tenants_dir, load_tenant
from patchcycle.domain.controls import load_control_catalogs
from patchcycle.domain.terraform_vars import terraform_vars
from tests.conftest import REPO
from tests.terraform.hcl import (
    SHARED_ROOT,
    TERRAFORM,
    module_dirs,
    read_dir,
    reference,
    source_text,
    tenant_root_dirs,
)

SHARED_ROOT_FILES = ("main.tf", "outputs.tf", "providers.tf", "variables.tf", "versions.tf")
# Root variables that no tenant file holds: the platform's own principals (platform.auto.tfvars.json).
PLATFORM_VARIABLES = {"platform"}
EXPECTED_MODULES = {
    "azure_orchestrator",
    "evidence_bucket",
    "falcon_install_document",
    "gcp_orchestrator",
    "launch_template",
    "orchestrator_iam_aws",
    "ssm_patch_baselines",
}


def committed_tfvars(root: Path) -> dict:
    return json.loads((root / "terraform.tfvars.json").read_text())


def test_terraform_fmt_check_passes() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("the terraform binary is not on PATH (fmt needs no provider; install Terraform 1.11)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_CLI_CONFIG_FILE": "/dev/null"},
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt -check -recursive include/terraform:\n{result.stdout}"


def test_the_modules_the_issue_names_exist_and_each_parses() -> None:
    assert {p.name for p in module_dirs()} == EXPECTED_MODULES
    for module in module_dirs():
        config = read_dir(module)
        assert config.get("variable"), f"{module.name} declares no variable"
        assert config.get("resource"), f"{module.name} declares no resource"
        assert config.get("output"), f"{module.name} declares no output"


@pytest.mark.parametrize("module", module_dirs(), ids=lambda p: p.name)
def test_every_module_variable_is_described_typed_and_used(module: Path) -> None:
    variables = read_dir(module)["variable"]
    text = source_text(module)
    for name, spec in variables.items():
        assert spec.get("description"), f"{module.name}: variable {name} has no description"
        assert spec.get("type"), f"{module.name}: variable {name} has no type"
        assert re.search(rf"\bvar\.{name}\b", text), f"{module.name}: variable {name} is never used"


def test_every_module_call_feeds_each_required_variable_and_nothing_else() -> None:
    root = read_dir(SHARED_ROOT)
    called = set()
    for call_name, call in root["module"].items():
        source = (SHARED_ROOT / call["source"]).resolve()
        called.add(source.name)
        variables = read_dir(source)["variable"]
        arguments = set(call) - {"source", "count", "for_each", "providers", "depends_on"}
        assert arguments <= set(variables), f"module {call_name} passes unknown {arguments - set(variables)}"
        required = {name for name, spec in variables.items() if "default" not in spec}
        assert required <= arguments, f"module {call_name} leaves {required - arguments} unset"
    assert called == EXPECTED_MODULES


def _root_references(root_config: dict) -> set[str]:
    """Every ``var.X.Y...`` path the root's module calls pass (plain references only)."""
    paths = set()
    for call in root_config["module"].values():
        for value in call.values():
            ref = reference(value)
            if ref and ref.startswith("var."):
                paths.add(ref.removeprefix("var."))
    return paths


def _has_path(data: object, path: str) -> bool:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


@pytest.mark.parametrize("root", tenant_root_dirs(), ids=lambda p: p.name)
def test_root_variables_are_exactly_the_exports_keys_and_every_passed_path_exists(root: Path) -> None:
    variables = set(read_dir(SHARED_ROOT)["variable"])
    tfvars = committed_tfvars(root)
    assert set(tfvars) == variables - PLATFORM_VARIABLES
    platform = json.loads((root / "platform.auto.tfvars.json").read_text())
    assert set(platform) == PLATFORM_VARIABLES
    text = source_text(SHARED_ROOT)
    for name in variables:
        assert re.search(rf"\bvar\.{name}\b", text), f"root variable {name} is never used"
    values = {**tfvars, **platform}
    for path in _root_references(read_dir(SHARED_ROOT)):
        head = path.split(".")[0]
        if values.get(head) is None:  # a cloud the tenant does not have: its module has count 0
            continue
        assert _has_path(values, path), f"{root.name}: the root passes var.{path}, the export has no such key"


def test_one_example_root_per_demo_tenant_linking_the_shared_root() -> None:
    tenants = sorted(p.stem for p in default_tenants_dir().glob("*.yaml"))
    roots = tenant_root_dirs()
    assert [r.name for r in roots] == tenants
    for root in roots:
        for name in SHARED_ROOT_FILES:
            path = root / name
            assert path.is_symlink() and path.resolve() == (SHARED_ROOT / name).resolve(), path


@pytest.mark.parametrize("root", tenant_root_dirs(), ids=lambda p: p.name)
def test_each_root_has_an_s3_backend_keyed_by_tenant_account_and_region(root: Path) -> None:
    blocks = [b for b in read_dir(root)["terraform"] if "backend" in b]
    assert len(blocks) == 1
    (backend,) = blocks[0]["backend"]
    s3 = backend["s3"]
    scope = committed_tfvars(root)["aws_scope"]
    assert s3["key"] == f"tenants/{root.name}/{scope['account_id']}/{scope['region']}/terraform.tfstate"
    assert s3["encrypt"] is True and s3["use_lockfile"] is True


@pytest.mark.parametrize("root", tenant_root_dirs(), ids=lambda p: p.name)
def test_committed_tfvars_equal_the_commands_output(root: Path) -> None:
    as_of = committed_tfvars(root)["as_of"]
    result = subprocess.run(
        [sys.executable, "-m", "patchcycle", "terraform-vars", root.name, "--as-of", as_of],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (root / "terraform.tfvars.json").read_text(), (
        f"include/terraform/tenants/{root.name}/terraform.tfvars.json is stale: regenerate it with "
        f"python -m patchcycle terraform-vars {root.name} --as-of {as_of} > .../terraform.tfvars.json"
    )
    # The same as the builder's, in process (the command adds nothing of its own).
    tenant = load_tenant(default_tenants_dir() / f"{root.name}.yaml")
    built = terraform_vars(tenant, load_control_catalogs(), dt.date.fromisoformat(as_of))
    assert json.loads(result.stdout) == built


def test_the_command_refuses_an_unknown_tenant_and_a_missing_scope() -> None:
    unknown = subprocess.run(
        [sys.executable, "-m", "patchcycle", "terraform-vars", "cu_nobody"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert unknown.returncode == 2 and "unknown tenant 'cu_nobody'" in unknown.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "patchcycle", "terraform-vars", "cu_alpha", "--region", "eu-west-1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert (
        missing.returncode == 2
        and "no AWS scope" in missing.stderr
        and "111111111111/us-east-1" in missing.stderr
    )
