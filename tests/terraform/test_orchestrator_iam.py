"""Least privilege, held to the code: the orchestrator's IAM actions (AWS), custom role actions (Azure)
and permissions (GCP) in include/terraform are exactly what the hooks in plugins/patchcycle/hooks/ call.

The calls are read from the hooks' source (AST), not listed by hand: a hook that starts calling a new
API fails here until the module grants it, and a grant no hook needs fails here until it is removed.
Each call becomes its IAM action through the service's own model (botocore's operation names), with the
few documented places where IAM names an action differently or a call needs a second permission.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name

from patchcycle.hooks import azure_arc
from tests.conftest import REPO
from tests.terraform.hcl import MODULES, read_dir

HOOKS = REPO / "plugins" / "patchcycle" / "hooks"

# -- reading the hooks ---------------------------------------------------------------------------


def _classes(path: Path) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)}


def _is_self_attr(node: ast.AST, name: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == name
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _client_type(cls: ast.ClassDef) -> str | None:
    """``kwargs["client_type"] = "ssm"`` in the hook's __init__ (the Amazon provider's AwsBaseHook)."""
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Subscript)
            and isinstance(node.targets[0].slice, ast.Constant)
            and node.targets[0].slice.value == "client_type"
            and isinstance(node.value, ast.Constant)
        ):
            return str(node.value.value)
    return None


def _str_arg(call: ast.Call, index: int) -> str | None:
    if len(call.args) > index and isinstance(call.args[index], ast.Constant):
        value = call.args[index].value
        return value if isinstance(value, str) else None
    return None


def boto3_calls(path: Path, cls: ast.ClassDef, default_service: str) -> set[tuple[str, str]]:
    """(service, boto3 method) for every client call a boto3-based hook makes.

    Receivers: ``self.conn`` and ``self.get_conn()`` (the hook's client), a local name bound to one of
    them or to ``self.get_client_type(...)``, and a cached property that builds another client with a
    literal ``client_type`` (IdentityCenterHook.identity_store). Method names: attribute calls on those,
    and the literal operation given to ``get_paginator``, to the hook's ``_pages`` helper, and to the
    provider's ``generate_presigned_url``; the provider's ``list_keys`` is ListObjectsV2.
    """
    service = _client_type(cls) or default_service
    other_clients: dict[str, str] = {}  # cached property name -> its client_type
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.keyword)
                    and node.arg == "client_type"
                    and isinstance(node.value, ast.Constant)
                ):
                    other_clients[fn.name] = str(node.value.value)
            # A cached property returning ``self.get_client_type(...)`` of the hook's own service
            # (SsmFleetHook._send_once_client: the same client without retries).
            decorated = any(
                getattr(d, "id", getattr(d, "attr", None)) == "cached_property" for d in fn.decorator_list
            )
            returns = [n.value for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value is not None]
            if (
                decorated
                and fn.name not in other_clients
                and any(isinstance(r, ast.Call) and _is_self_attr(r.func, "get_client_type") for r in returns)
            ):
                other_clients[fn.name] = service

    def receiver_service(node: ast.AST, local: dict[str, str]) -> str | None:
        if _is_self_attr(node, "conn"):
            return service
        if isinstance(node, ast.Call) and (
            _is_self_attr(node.func, "get_conn") or _is_self_attr(node.func, "get_client_type")
        ):
            return service
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return other_clients.get(node.attr)
        if isinstance(node, ast.Name):
            return local.get(node.id)
        return None

    calls: set[tuple[str, str]] = set()
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name in other_clients:
            continue
        local: dict[str, str] = {}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                svc = receiver_service(node.value, local)
                if svc:
                    local[node.targets[0].id] = svc
        for node in ast.walk(fn):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            method, target = node.func.attr, node.func.value
            if method == "get_paginator" and receiver_service(target, local):
                calls.add((receiver_service(target, local) or service, _str_arg(node, 0) or "?"))
            elif method == "_pages" and _is_self_attr(node.func, "_pages"):
                svc = receiver_service(node.args[0], local)
                calls.add((svc or "?", _str_arg(node, 1) or "?"))
            elif method == "generate_presigned_url" and isinstance(target, ast.Name) and target.id == "self":
                calls.add((service, _str_arg(node, 0) or "?"))
            elif method == "list_keys" and isinstance(target, ast.Name) and target.id == "self":
                calls.add((service, "list_objects_v2"))  # S3Hook.list_keys pages ListObjectsV2
            elif receiver_service(target, local):
                calls.add((receiver_service(target, local) or service, method))
    return calls


def aws_hook_calls() -> dict[str, set[tuple[str, str]]]:
    """Every boto3 call of every AWS hook, by hook class."""
    found = {}
    for path, default in (
        (HOOKS / "aws.py", "?"),
        (HOOKS / "s3.py", "s3"),
        (HOOKS / "aws_drift.py", "?"),
        (HOOKS / "terraform_state.py", "s3"),
        (HOOKS / "aws_iam_saml.py", "iam"),
    ):
        for name, cls in _classes(path).items():
            calls = boto3_calls(path, cls, default)
            if calls:
                found[name] = calls
    return found


# IAM's service prefix where it is not the boto3 client name (Service Authorization Reference:
# "AWS IAM Identity Center" actions are "sso:").
IAM_PREFIX = {"sso-admin": "sso"}
# Where the IAM action is not the API's name: ListObjectsV2 is authorized as s3:ListBucket (Amazon S3
# API Reference, ListObjectsV2, "Permissions").
# The bucket settings the drift report reads: GetBucketEncryption needs s3:GetEncryptionConfiguration,
# GetObjectLockConfiguration s3:GetBucketObjectLockConfiguration, GetPublicAccessBlock
# s3:GetBucketPublicAccessBlock (each call's "Permissions" in the Amazon S3 API Reference).
IAM_ACTION = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "GetBucketEncryption"): "s3:GetEncryptionConfiguration",
    ("s3", "GetObjectLockConfiguration"): "s3:GetBucketObjectLockConfiguration",
    ("s3", "GetPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
}
# A call that needs a second permission, each with the call that needs it and why.
IMPLIED = {
    # PutObject with ObjectLockMode/ObjectLockRetainUntilDate (hooks/s3.put_once): "s3:PutObjectRetention"
    # (Amazon S3 User Guide, Object Lock, "Required permissions").
    "s3:PutObjectRetention": "s3:PutObject",
    # CreateDBSnapshot and RestoreDBInstanceFromDBSnapshot with Tags need rds:AddTagsToResource (Amazon RDS
    # User Guide, "Tagging Amazon RDS resources"; docs/operator-guide.md lists it).
    "rds:AddTagsToResource": "rds:CreateDBSnapshot",
}


def iam_actions(calls: set[tuple[str, str]]) -> set[str]:
    """The IAM actions of boto3 calls, through botocore's service models (method -> operation)."""
    session = botocore.session.get_session()
    actions = set()
    for service, method in calls:
        operations = {xform_name(op): op for op in session.get_service_model(service).operation_names}
        assert method in operations, f"{service}.{method} is not an operation of {service}"
        operation = operations[method]
        actions.add(IAM_ACTION.get((service, operation), f"{IAM_PREFIX.get(service, service)}:{operation}"))
    return actions | {extra for extra, needed_by in IMPLIED.items() if needed_by in actions}


# -- reading the modules ---------------------------------------------------------------------------


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        statements.extend(dynamic["statement"]["content"])
    return statements


def policy_actions(module: str, document: str, principal_var: str | None = None) -> set[str]:
    """Allowed actions of one aws_iam_policy_document (optionally only statements naming a principal)."""
    doc = read_dir(MODULES / module)["data"]["aws_iam_policy_document"][document]
    actions = set()
    for statement in _statements(doc):
        if statement.get("effect", "Allow") != "Allow":
            continue
        if principal_var is not None:
            principals = [i for p in statement.get("principals", []) for i in p["identifiers"]]
            if principals != [f"${{var.{principal_var}}}"]:
                continue
        actions.update(statement["actions"])
    return actions


# -- AWS ---------------------------------------------------------------------------------------------


def test_the_hooks_calls_are_read_from_their_source() -> None:
    calls = aws_hook_calls()
    assert set(calls) == {
        "SsmFleetHook",
        "Ec2BackupHook",
        "RdsHook",
        "IdentityCenterHook",
        "EvidenceBucketHook",
        "IamReadHook",
        "SsmConfigHook",
        "LaunchTemplateHook",
        "AutoScalingHook",
        "BucketSettingsHook",
        "CloudTrailHook",
        "TerraformStateHook",
        "IamSamlHook",
    }
    # A few known calls, so a reader that finds nothing cannot pass the equality tests below.
    assert ("ssm", "send_command") in calls["SsmFleetHook"]
    assert ("ssm", "describe_instance_information") in calls["SsmFleetHook"]
    assert ("identitystore", "list_users") in calls["IdentityCenterHook"]
    assert ("s3", "put_object") in calls["EvidenceBucketHook"]


def test_execution_role_grants_exactly_what_the_ssm_ec2_and_rds_hooks_call() -> None:
    calls = aws_hook_calls()
    needed = iam_actions(calls["SsmFleetHook"] | calls["Ec2BackupHook"] | calls["RdsHook"])
    # The Falcon roll-out stages sensor packages with the Amazon provider's S3Hook.load_bytes, a PutObject
    # without Object Lock (operators/falcon_rollout.InstallSensorsAwsOperator).
    needed |= {"s3:PutObject"}
    granted = policy_actions("orchestrator_iam_aws", "execution")
    assert granted == needed, f"missing: {sorted(needed - granted)}; not called: {sorted(granted - needed)}"


def test_the_drift_reader_grants_the_execution_role_exactly_the_drift_hooks_reads_in_the_account() -> None:
    calls = aws_hook_calls()
    needed = iam_actions(
        calls["IamReadHook"]
        | calls["SsmConfigHook"]
        | calls["LaunchTemplateHook"]
        | calls["AutoScalingHook"]
        | calls["CloudTrailHook"]
    )
    granted = policy_actions("orchestrator_iam_aws", "drift_reader")
    assert granted == needed, f"missing: {sorted(needed - granted)}; not called: {sorted(granted - needed)}"
    assert all(a.split(":", 1)[1].startswith(("Get", "List", "Describe", "Lookup")) for a in granted)
    attached = read_dir(MODULES / "orchestrator_iam_aws")["resource"]["aws_iam_role_policy"]["drift_reader"]
    assert attached["role"] == "${aws_iam_role.execution.id}"


def test_the_saml_reader_grants_the_execution_role_exactly_the_saml_hooks_reads() -> None:
    needed = iam_actions(aws_hook_calls()["IamSamlHook"])
    assert needed == {"iam:ListSAMLProviders", "iam:GetSAMLProvider"}
    assert policy_actions("orchestrator_iam_aws", "saml_reader") == needed
    attached = read_dir(MODULES / "orchestrator_iam_aws")["resource"]["aws_iam_role_policy"]["saml_reader"]
    assert attached["role"] == "${aws_iam_role.execution.id}"


def test_the_platform_drift_reader_grants_exactly_the_state_and_bucket_settings_reads() -> None:
    calls = aws_hook_calls()
    needed = iam_actions(calls["BucketSettingsHook"] | calls["TerraformStateHook"])
    assert policy_actions("orchestrator_iam_aws", "drift_platform_reader") == needed


def test_identity_reader_grants_exactly_what_the_identity_center_hook_calls() -> None:
    needed = iam_actions(aws_hook_calls()["IdentityCenterHook"])
    assert policy_actions("orchestrator_iam_aws", "identity_reader") == needed


def test_evidence_bucket_grants_the_writer_exactly_what_the_evidence_hook_calls() -> None:
    needed = iam_actions(aws_hook_calls()["EvidenceBucketHook"])
    assert policy_actions("evidence_bucket", "bucket", "writer_principal_arn") == needed
    # SSE-KMS: PutObject needs kms:GenerateDataKey and GetObject kms:Decrypt on the bucket's key
    # (Amazon S3 User Guide, "Using server-side encryption with AWS KMS keys", Permissions).
    assert policy_actions("evidence_bucket", "key", "writer_principal_arn") == {
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }


def test_rds_actions_are_granted_only_where_the_account_patches_rds() -> None:
    doc = read_dir(MODULES / "orchestrator_iam_aws")["data"]["aws_iam_policy_document"]["execution"]
    plain = {a for s in doc["statement"] for a in s["actions"]}
    rds = [d for d in doc["dynamic"] if d["statement"]["for_each"] == "${var.rds ? [1] : []}"]
    conditional = {a for d in rds for s in d["statement"]["content"] for a in s["actions"]}
    assert conditional and all(a.startswith("rds:") for a in conditional)
    assert not any(a.startswith("rds:") for a in plain)


def test_the_falcon_rollout_may_send_only_its_document_and_write_only_its_two_parameters() -> None:
    doc = read_dir(MODULES / "orchestrator_iam_aws")["data"]["aws_iam_policy_document"]["execution"]
    falcon = {
        content["sid"]: content
        for d in doc["dynamic"]
        if d["statement"]["for_each"] == "${var.falcon == null ? [] : [var.falcon]}"
        for content in d["statement"]["content"]
    }
    assert set(falcon) == {"FalconInstallDocument", "FalconInstallSecrets"}
    (staging,) = [
        content
        for d in doc["dynamic"]
        if "falcon_installer_bucket" in d["statement"]["for_each"]
        for content in d["statement"]["content"]
    ]
    assert staging["actions"] == ["s3:PutObject"]
    assert staging["resources"] == ["arn:${local.p}:s3:::${statement.value}/falcon-sensor/*"]
    assert falcon["FalconInstallDocument"]["actions"] == ["ssm:SendCommand"]
    assert any(
        "document/${statement.value.document_name}" in r for r in falcon["FalconInstallDocument"]["resources"]
    )
    assert falcon["FalconInstallSecrets"]["actions"] == ["ssm:PutParameter"]
    # Everything else of the policy is as before: no other statement grants PutParameter.
    plain = {a for s in doc["statement"] for a in s["actions"]}
    assert "ssm:PutParameter" not in plain


# -- Azure -------------------------------------------------------------------------------------------

# ArcHook's SDK calls -> Azure RBAC actions (Microsoft.HybridCompute and Microsoft.ResourceGraph
# resource provider operations). The status URL a patch operation's 202 names may be an operationresults
# or an operationstatus URL of the machine's location; reading it needs the matching read action.
AZURE_CALLS = {
    "machines.list_by_resource_group": {"Microsoft.HybridCompute/machines/read"},
    "machines.get": {"Microsoft.HybridCompute/machines/read"},
    "machines.begin_install_patches": {"Microsoft.HybridCompute/machines/installPatches/action"},
    "machines.begin_assess_patches": {"Microsoft.HybridCompute/machines/assessPatches/action"},
    "send_request": {
        "Microsoft.HybridCompute/locations/operationresults/read",
        "Microsoft.HybridCompute/locations/operationstatus/read",
    },
    "graph.resources": {"Microsoft.ResourceGraph/resources/read"},
    # The Falcon roll-out's sensor extension (granted only to a tenant with a roll-out).
    "machine_extensions.begin_create_or_update": {"Microsoft.HybridCompute/machines/extensions/write"},
    "machine_extensions.get": {"Microsoft.HybridCompute/machines/extensions/read"},
}
FALCON_AZURE_ACTIONS = {
    "Microsoft.HybridCompute/machines/extensions/write",
    "Microsoft.HybridCompute/machines/extensions/read",
}


def arc_hook_calls() -> set[str]:
    """``self.client.<...>`` and ``self.graph.<...>`` calls of ArcHook, as ``machines.get`` etc."""
    cls = _classes(HOOKS / "azure_arc.py")["ArcHook"]
    found = set()
    for node in ast.walk(cls):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        chain, target = [node.func.attr], node.func.value
        while (
            isinstance(target, ast.Attribute)
            and not _is_self_attr(target, "client")
            and not _is_self_attr(target, "graph")
        ):
            chain.insert(0, target.attr)
            target = target.value
        if _is_self_attr(target, "client"):
            found.add(".".join(chain))
        elif _is_self_attr(target, "graph"):
            found.add("graph." + ".".join(chain))
    return found


def azure_role_actions() -> dict[str, set[str]]:
    roles = read_dir(MODULES / "azure_orchestrator")["resource"]["azurerm_role_definition"]
    return {name: {a for p in role["permissions"] for a in p["actions"]} for name, role in roles.items()}


def test_azure_custom_roles_grant_exactly_what_the_arc_hook_does() -> None:
    calls = arc_hook_calls()
    assert set(AZURE_CALLS) == calls, f"ArcHook calls {sorted(calls - set(AZURE_CALLS))} unmapped here"
    needed = set().union(*AZURE_CALLS.values())
    # Resource Graph returns only rows the caller may read: each result type the hook queries.
    types = [v for k, v in vars(azure_arc).items() if k.endswith("_TYPE") and isinstance(v, str)]
    assert len(types) == 3
    roles = azure_role_actions()
    granted = set().union(*roles.values())
    type_reads = {a.lower() for a in granted if a.lower().removesuffix("/read") in types}
    assert type_reads == {f"{t}/read" for t in types}
    assert {a for a in granted if a.lower() not in type_reads} == needed
    # Machines and their results where the machines are; operation status and the query per subscription.
    assert all("/locations/" not in a and "ResourceGraph" not in a for a in roles["arc_patching"])
    assert roles["arc_operations"] == {a for a in needed if "/locations/" in a or "ResourceGraph" in a}
    # Writing an extension can run code on a machine: only the Falcon role has it, only with a roll-out.
    assert roles["arc_falcon_extension"] == FALCON_AZURE_ACTIONS
    assert not FALCON_AZURE_ACTIONS & (roles["arc_patching"] | roles["arc_operations"])
    resources = read_dir(MODULES / "azure_orchestrator")["resource"]
    assert resources["azurerm_role_definition"]["arc_falcon_extension"]["count"] == (
        "${var.falcon_rollout ? 1 : 0}"
    )
    assert "var.falcon_rollout" in resources["azurerm_role_assignment"]["arc_falcon_extension"]["for_each"]


# -- GCP ---------------------------------------------------------------------------------------------

# The hooks' client methods -> IAM permissions (each REST method's "IAM Permissions": OS Config v1 and
# Compute Engine v1). Creating a snapshot or a disk with labels also needs setLabels; a disk from a
# snapshot reads the snapshot (useReadOnly); attaching a disk uses it (compute.disks.use).
GCP_CALLS = {
    "zonal.list_inventories": {"osconfig.inventories.list"},
    "zonal.list_vulnerability_reports": {"osconfig.vulnerabilityReports.list"},
    "service.execute_patch_job": {"osconfig.patchJobs.exec"},
    "service.get_patch_job": {"osconfig.patchJobs.get"},
    "service.list_patch_job_instance_details": {"osconfig.patchJobs.get"},
    "service.list_patch_jobs": {"osconfig.patchJobs.list"},
    "service.cancel_patch_job": {"osconfig.patchJobs.exec"},
    "instances_client.list": {"compute.instances.list"},
    "instances_client.get": {"compute.instances.get"},
    "instances_client.stop_unary": {"compute.instances.stop"},
    "instances_client.start_unary": {"compute.instances.start"},
    "instances_client.detach_disk_unary": {"compute.instances.detachDisk"},
    "instances_client.attach_disk_unary": {"compute.instances.attachDisk", "compute.disks.use"},
    "disks.create_snapshot_unary": {
        "compute.disks.createSnapshot",
        "compute.snapshots.create",
        "compute.snapshots.setLabels",
    },
    "disks.insert_unary": {
        "compute.disks.create",
        "compute.disks.setLabels",
        "compute.snapshots.useReadOnly",
    },
    "snapshots.list": {"compute.snapshots.list"},
    "snapshots.get": {"compute.snapshots.get"},
    "zone_operations.get": {"compute.zoneOperations.get"},
}
# The Falcon roll-out's OS policy assignments (granted only to a tenant with a roll-out). The transport is
# used for the assignments' operations only (osPolicyAssignments.operations.get: "Requires the following
# IAM permission: osconfig.osPolicyAssignments.get").
GCP_FALCON_CALLS = {
    "zonal.create_os_policy_assignment": {"osconfig.osPolicyAssignments.create"},
    "zonal.update_os_policy_assignment": {"osconfig.osPolicyAssignments.update"},
    "zonal.get_os_policy_assignment": {"osconfig.osPolicyAssignments.get"},
    "zonal.transport": {"osconfig.osPolicyAssignments.get"},
    "zonal.list_os_policy_assignment_reports": {"osconfig.osPolicyAssignmentReports.list"},
}
GCP_CLIENTS = {"zonal", "service", "instances_client", "disks", "snapshots", "zone_operations"}


def gcp_hook_calls() -> set[str]:
    """``self.<client>.<method>`` uses (called, or handed to ``_start_step``) in the GCP hooks."""
    found = set()
    for path in (HOOKS / "gcp_osconfig.py", HOOKS / "gcp_compute.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and any(_is_self_attr(node.value, c) for c in GCP_CLIENTS):
                found.add(f"{node.value.attr}.{node.attr}")  # type: ignore[attr-defined]
    return found


def test_gcp_custom_role_grants_exactly_what_the_os_config_and_compute_hooks_call() -> None:
    calls = gcp_hook_calls()
    mapped = set(GCP_CALLS) | set(GCP_FALCON_CALLS)
    assert calls == mapped, f"unmapped: {sorted(calls - mapped)}; gone: {sorted(mapped - calls)}"
    config = read_dir(MODULES / "gcp_orchestrator")
    (local_block,) = [b for b in config["locals"] if "permissions" in b]
    assert set(local_block["permissions"]) == set().union(*GCP_CALLS.values())
    assert set(local_block["falcon_permissions"]) == set().union(*GCP_FALCON_CALLS.values())
    role = config["resource"]["google_project_iam_custom_role"]["orchestrator"]
    assert role["permissions"] == (
        "${var.falcon_rollout ? concat(local.permissions, local.falcon_permissions) : local.permissions}"
    )


def test_no_hook_calls_a_cloud_the_modules_do_not_cover() -> None:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for path in sorted(HOOKS.glob("*.py")):
        text = path.read_text()
        for marker in ("AwsBaseHook", "S3Hook", "HybridComputeManagementClient", "osconfig_v1", "compute_v1"):
            if marker in text:
                by_kind[marker].append(path.name)
    assert by_kind == {
        "AwsBaseHook": ["aws.py", "aws_drift.py", "aws_iam_saml.py"],
        "S3Hook": ["s3.py", "terraform_state.py"],
        "HybridComputeManagementClient": ["azure_arc.py"],
        "osconfig_v1": ["gcp_osconfig.py"],
        "compute_v1": ["gcp_compute.py"],
    }
