"""One normalized host table across clouds.

Each cloud's agent registry and tags are mapped to the same columns, so the gates, the stages and the
evidence never care where a host lives. Rows are plain dicts (JSON-ready); :func:`inventory_frame`
gives the pandas view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from patchcycle.config.models import Tenant
from patchcycle.domain.platforms import normalize_severity, os_family_from_label, os_family_from_ssm

# The documented schema of the inventory table: column -> meaning.
INVENTORY_COLUMNS: dict[str, str] = {
    "cloud": "aws | azure | gcp",
    "account": "AWS account id, Azure subscription id or GCP project id",
    "region": "AWS region, Azure location, or GCP zone",
    "resource_group": "Azure resource group (empty elsewhere)",
    "boot_disk": "GCE: the name of the instance's boot disk, which backups snapshot (empty elsewhere)",
    "host_id": "the cloud's id of the host (EC2 instance id, RDS DB instance ARN, Arc resource id, GCE "
    "instance id)",
    "name": "host name (Name tag, RDS DB instance identifier, machine name, instance name)",
    "private_ip": "private IP address the cloud reports (joins Falcon records of servers without cloud ids)",
    "environment": "nonprod | staging | prod, from the environment tag; empty when the tag matches none",
    "environment_tag": "the raw value of the host's environment tag",
    "os_family": "our OS family (e.g. amazon_linux_2; rds for RDS DB instances, whose OS AWS manages); "
    "empty when we do not patch this platform",
    "platform": "the platform name and version the agent reports",
    "kernel": "running kernel release, where the cloud reports it",
    "agent_kind": "ssm | arc | osconfig | rds (no agent: RDS applies the update itself)",
    "agent_status": "the agent's own status word (SSM PingStatus Online/ConnectionLost/Inactive; Arc "
    "Connected/Disconnected/Error; OS Config ACTIVE/NO_AGENT_DETECTED; RDS DBInstanceStatus)",
    "agent_online": "True when the agent can take commands now",
    "agent_status_changed_at": "when the agent last changed status (Arc lastStatusChange; empty elsewhere)",
    "criticality": "low | medium | high | critical, from the criticality tag (default medium)",
    "missing_count": "patches the last scan found missing",
    "failed_count": "patches the last operation failed to install",
    "installed_count": "patches installed",
    "last_patch_operation": "Scan | Install, the last patch operation the cloud recorded",
    "last_patch_time": "when that operation ended (ISO-8601)",
    "missing_critical": "missing patches rated Critical",
    "missing_high": "missing patches rated High (vendor Important)",
    "missing_medium": "missing patches rated Medium (vendor Moderate)",
    "missing_low": "missing patches rated Low",
    "missing_unrated": "missing patches the cloud reports without a rating (SSM reports only critical "
    "and total counts in its batch APIs)",
    "missing_cves": "CVE ids the missing patches fix, where the cloud or the plan names them",
    "missing_patch_ids": "the plan's patch ids the cloud reports missing (None: counts only)",
}

SEVERITY_COLUMNS = {
    "Critical": "missing_critical",
    "High": "missing_high",
    "Medium": "missing_medium",
    "Low": "missing_low",
}


def _no_missing_detail() -> dict[str, Any]:
    return {
        "missing_critical": 0,
        "missing_high": 0,
        "missing_medium": 0,
        "missing_low": 0,
        "missing_unrated": 0,
        "missing_cves": [],
        "missing_patch_ids": None,
    }


CRITICALITIES = ("low", "medium", "high", "critical")


def _ordered(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with exactly the documented columns, in the documented order."""
    return {column: row.get(column) for column in INVENTORY_COLUMNS}


def environment_for_tag(tenant: Tenant, tag_value: str | None) -> str | None:
    """Our environment name for a host's environment tag value, if the tenant patches it."""
    if not tag_value:
        return None
    wanted = tag_value.strip().lower()
    for env in tenant.environments:
        if wanted in {v.lower() for v in env.matches_tag_values}:
            return env.name.value
    return None


def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _aws_row(
    tenant: Tenant, account: str, region: str, host_id: str, host_tags: Mapping[str, str], **facts: Any
) -> dict[str, Any]:
    """One EC2 instance's inventory row: what its tags say (name, environment, criticality), then the
    facts its source knows (``facts``: SSM's registration and patch state, or their absence)."""
    keys = tenant.host_tags
    criticality = host_tags.get(keys.criticality, "medium").strip().lower()
    env_tag = host_tags.get(keys.environment)
    row: dict[str, Any] = {
        "cloud": "aws",
        "account": account,
        "region": region,
        "host_id": host_id,
        "name": host_tags.get(keys.name) or host_id,
        "environment": environment_for_tag(tenant, env_tag),
        "environment_tag": env_tag,
        "kernel": None,
        "agent_kind": "ssm",
        "criticality": criticality if criticality in CRITICALITIES else "medium",
        "resource_group": None,
        **facts,
    }
    return _ordered(row)


def normalize_ssm_hosts(
    tenant: Tenant,
    account: str,
    region: str,
    instances: Iterable[Mapping[str, Any]],
    tags: Mapping[str, Mapping[str, str]],
    patch_states: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Rows for SSM managed instances (``describe_instance_information``), their EC2 tags and patch state."""
    rows = []
    for info in instances:
        host_id = info["InstanceId"]
        host_tags = tags.get(host_id, {})
        state = patch_states.get(host_id, {})
        family = os_family_from_ssm(info.get("PlatformName", ""), info.get("PlatformVersion", ""))
        rows.append(
            _aws_row(
                tenant,
                account,
                region,
                host_id,
                host_tags,
                name=host_tags.get(tenant.host_tags.name) or info.get("ComputerName") or host_id,
                os_family=family.value if family else None,
                platform=f"{info.get('PlatformName', '')} {info.get('PlatformVersion', '')}".strip(),
                agent_status=info.get("PingStatus", "Unknown"),
                agent_online=info.get("PingStatus") == "Online",
                missing_count=int(state.get("MissingCount", 0)),
                failed_count=int(state.get("FailedCount", 0)),
                installed_count=int(state.get("InstalledCount", 0)),
                last_patch_operation=state.get("Operation"),
                last_patch_time=_iso(state.get("OperationEndTime")),
                private_ip=info.get("IPAddress"),
                **_ssm_missing_detail(state),
            )
        )
    return rows


def _ssm_missing_detail(state: Mapping[str, Any]) -> dict[str, Any]:
    """SSM's batch patch states rate only critical patches; the rest are counted as unrated."""
    detail = _no_missing_detail()
    critical = int(state.get("CriticalNonCompliantCount", 0))
    missing = int(state.get("MissingCount", 0)) + int(state.get("FailedCount", 0))
    detail["missing_critical"] = critical
    detail["missing_unrated"] = max(0, missing - critical)
    return detail


def inventory_frame(rows: Iterable[Mapping[str, Any]]) -> Any:
    """The normalized inventory (cloud columns, then Falcon's) as a pandas DataFrame, columns in order."""
    import pandas as pd

    from patchcycle.domain.sensor import FALCON_COLUMNS

    return pd.DataFrame(list(rows), columns=[*INVENTORY_COLUMNS, *FALCON_COLUMNS])


def unregistered_ec2_hosts(
    tenant: Tenant,
    account: str,
    region: str,
    tags: Mapping[str, Mapping[str, str]],
    managed_ids: set[str],
) -> list[dict[str, Any]]:
    """Rows for EC2 instances that carry an environment tag but are not SSM managed instances.

    These are the hosts a cycle would silently skip (an AMI refresh that lost the agent bootstrap);
    they are inventoried so the pre-flight gate holds them with a reason and someone is told.
    """
    rows = []
    for host_id, host_tags in sorted(tags.items()):
        if host_id in managed_ids or tenant.host_tags.environment not in host_tags:
            continue
        rows.append(
            _aws_row(
                tenant,
                account,
                region,
                host_id,
                host_tags,
                os_family=None,
                platform="unknown (no SSM registration)",
                agent_status="NotRegistered",
                agent_online=False,
                missing_count=0,
                failed_count=0,
                installed_count=0,
                last_patch_operation=None,
                last_patch_time=None,
                private_ip=None,
                **_no_missing_detail(),
            )
        )
    return rows


def normalize_rds_instances(
    tenant: Tenant,
    account: str,
    region: str,
    instances: Iterable[Mapping[str, Any]],
    os_updates: Mapping[str, Mapping[str, Any]],
    planned_updates: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Rows for RDS DB instances (``describe_db_instances``, tags inline) that carry the tenant's
    environment tag, with the OS update RDS offers each (``os_updates`` by instance ARN).

    An instance is ready when RDS reports it ``available``; its one possible missing "patch" is its
    pending OS update, unrated (AWS rates none), named by the plan's id when the plan froze it.
    """
    from patchcycle.domain.plan import RDS_FAMILY, rds_update_id

    keys = tenant.host_tags
    planned = {d.strip() for d in planned_updates}
    rows = []
    for db in instances:
        tags = {t["Key"]: t["Value"] for t in db.get("TagList") or []}
        if keys.environment not in tags:
            continue  # not one of the tenant's patched databases
        arn = db["DBInstanceArn"]
        update = os_updates.get(arn)
        description = str((update or {}).get("Description") or "").strip()
        criticality = tags.get(keys.criticality, "medium").strip().lower()
        env_tag = tags.get(keys.environment)
        status = db.get("DBInstanceStatus", "unknown")
        detail = _no_missing_detail()
        detail["missing_unrated"] = 1 if update else 0
        detail["missing_patch_ids"] = (
            [rds_update_id(description)] if update and description in planned else []
        )
        rows.append(
            _ordered(
                {
                    "cloud": "aws",
                    "account": account,
                    "region": region,
                    "resource_group": None,
                    "host_id": arn,
                    "name": db["DBInstanceIdentifier"],
                    "private_ip": None,
                    "environment": environment_for_tag(tenant, env_tag),
                    "environment_tag": env_tag,
                    "os_family": RDS_FAMILY,
                    "platform": f"RDS {db.get('Engine', '')} {db.get('EngineVersion', '')}".strip(),
                    "kernel": None,
                    "agent_kind": "rds",
                    "agent_status": status,
                    "agent_online": status == "available",
                    "criticality": criticality if criticality in CRITICALITIES else "medium",
                    "missing_count": 1 if update else 0,
                    "failed_count": 0,
                    "installed_count": 0,
                    "last_patch_operation": "Scan",
                    "last_patch_time": None,
                    **detail,
                }
            )
        )
    return rows


def is_rds(row: Mapping[str, Any]) -> bool:
    """An RDS DB instance (patched by RDS's own OS update, backed up by a DB snapshot)."""
    return row.get("agent_kind") == "rds"


# -- the plan's patches by the names each cloud reports them under -----------------------------------


def plan_patch_index(plan: Mapping[str, Any]) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """The plan's approved patches per OS family, by ("pkg", package name) and ("kb", KB number)."""
    index: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for family, patches in plan.get("approved", {}).items():
        by_name: dict[tuple[str, str], dict[str, Any]] = {}
        for p in patches:
            if p.get("package"):
                by_name[("pkg", p["package"])] = p
            if p.get("kb"):
                by_name[("kb", str(p["kb"]).upper().removeprefix("KB"))] = p
        index[family] = by_name
    return index


def _tally(
    found: Iterable[tuple[str | None, list[str], str | None]],
) -> dict[str, Any]:
    """Missing-patch columns from (severity, cves, plan patch id) per missing patch."""
    detail = _no_missing_detail()
    cves: set[str] = set()
    ids: set[str] = set()
    for severity, patch_cves, patch_id in found:
        detail[SEVERITY_COLUMNS.get(severity or "", "missing_unrated")] += 1
        cves.update(patch_cves)
        if patch_id:
            ids.add(patch_id)
    detail["missing_cves"] = sorted(cves)
    detail["missing_patch_ids"] = sorted(ids)
    return detail


# -- Azure Arc ---------------------------------------------------------------------------------------


def _arc_ip(machine: Mapping[str, Any]) -> str | None:
    profile = (machine.get("properties") or {}).get("networkProfile") or {}
    for nic in profile.get("networkInterfaces") or []:
        for address in nic.get("ipAddresses") or []:
            if address.get("address") and address.get("ipAddressVersion", "IPv4") == "IPv4":
                return str(address["address"])
    return None


def arc_missing_patch_ids(
    assessment: Mapping[str, Any], os_family: str, index: Mapping[str, Mapping[tuple[str, str], Any]]
) -> list[str]:
    """The plan's patch ids an Arc assessment lists as missing (matched by package name or KB)."""
    family = index.get(os_family, {})
    ids = []
    for patch in assessment.get("patches") or []:
        hit = _arc_plan_patch(patch, family)
        if hit:
            ids.append(hit["id"])
    return sorted(set(ids))


def _arc_plan_patch(patch: Mapping[str, Any], family: Mapping[tuple[str, str], Any]) -> Any:
    """The plan's patch an assessment row names: by KB, else by package name and, where the plan froze
    one, version (another version of a planned package, e.g. a newer one the plan did not approve, is
    not the plan's patch)."""
    kb = str(patch.get("kbId") or "").upper().removeprefix("KB")
    if kb and ("kb", kb) in family:
        return family[("kb", kb)]
    planned = family.get(("pkg", str(patch.get("patchName") or "")))
    if planned and planned.get("version") and patch.get("version"):
        if not _same_version(str(planned["version"]), str(patch["version"]), planned.get("epoch")):
            return None
    return planned


def _same_version(planned: str, reported: str, epoch: str | None) -> bool:
    """The plan's version[-release] against the one a package manager reports (which may carry the
    epoch as ``epoch:``)."""
    if epoch and epoch != "0" and ":" not in planned:
        planned = f"{epoch}:{planned}"
    return reported == planned or reported.split(":", 1)[-1] == planned.split(":", 1)[-1]


def _arc_severity(patch: Mapping[str, Any], planned: Any) -> str | None:
    if planned:
        return str(planned["severity"]) if planned["severity"] is not None else None
    rated = normalize_severity(patch.get("msrcSeverity"))
    if rated:
        return rated.value
    classes = {str(c).lower() for c in patch.get("classifications") or []}
    return "Critical" if "critical" in classes else None


def normalize_arc_machines(
    tenant: Tenant,
    subscription: str,
    machines: Iterable[Mapping[str, Any]],
    assessments: Mapping[str, Mapping[str, Any]],
    plan_index: Mapping[str, Mapping[tuple[str, str], Any]],
) -> list[dict[str, Any]]:
    """Rows for Arc-enabled servers (ARM machine JSON) and their patch assessments (Resource Graph).

    Arc reports the running kernel release of a Linux machine as its ``osVersion``.
    """
    keys = tenant.host_tags
    rows = []
    for machine in machines:
        props = machine.get("properties") or {}
        tags = {k: str(v) for k, v in (machine.get("tags") or {}).items()}
        machine_id = str(machine["id"])
        resource_group = (
            machine_id.split("/resourceGroups/", 1)[1].split("/", 1)[0]
            if "/resourceGroups/" in machine_id
            else None
        )
        family = os_family_from_label(str(props.get("osSku") or ""))
        assessment = assessments.get(machine_id.lower())
        criticality = tags.get(keys.criticality, "medium").strip().lower()
        env_tag = tags.get(keys.environment)
        linux = str(props.get("osType") or "").lower() == "linux"
        if assessment is not None and family is not None:
            planned_family = plan_index.get(family.value, {})
            detail = _tally(
                (
                    _arc_severity(p, hit := _arc_plan_patch(p, planned_family)),
                    list(hit["cves"]) if hit else [],
                    hit["id"] if hit else None,
                )
                for p in assessment.get("patches") or []
            )
        else:
            detail = _no_missing_detail()
        missing = len((assessment or {}).get("patches") or [])
        rows.append(
            _ordered(
                {
                    "cloud": "azure",
                    "account": subscription,
                    "region": machine.get("location"),
                    "resource_group": resource_group,
                    "host_id": machine_id,
                    "name": machine.get("name") or (props.get("osProfile") or {}).get("computerName"),
                    "private_ip": _arc_ip(machine),
                    "environment": environment_for_tag(tenant, env_tag),
                    "environment_tag": env_tag,
                    "os_family": family.value if family else None,
                    "platform": str(props.get("osSku") or props.get("osName") or ""),
                    "kernel": props.get("osVersion") if linux else None,
                    "agent_kind": "arc",
                    "agent_status": props.get("status", "Unknown"),
                    "agent_online": props.get("status") == "Connected",
                    "agent_status_changed_at": props.get("lastStatusChange"),
                    "criticality": criticality if criticality in CRITICALITIES else "medium",
                    "missing_count": missing,
                    "failed_count": 0,
                    "installed_count": 0,
                    "last_patch_operation": "Scan" if assessment else None,
                    "last_patch_time": (assessment or {}).get("lastModifiedDateTime"),
                    **detail,
                }
            )
        )
    return rows


# -- GCP (Compute Engine instances + OS Config inventories and vulnerability reports) ----------------

_GCP_SEVERITY = {"CRITICAL": "Critical", "HIGH": "High", "MEDIUM": "Medium", "LOW": "Low", "MINIMAL": "Low"}


def _available_items(inventory: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    items = inventory.get("items") or {}
    return {
        item_id: item
        for item_id, item in items.items()
        if item.get("type") == "AVAILABLE_PACKAGE" and item.get("availablePackage")
    }


def _gcp_plan_patch(package: Mapping[str, Any], family: Mapping[tuple[str, str], Any]) -> Any:
    for kind in ("aptPackage", "yumPackage", "zypperPackage", "googetPackage"):
        if kind in package:
            return family.get(("pkg", str(package[kind].get("packageName") or "")))
    wua = package.get("wuaPackage")
    if wua:
        for kb in wua.get("kbArticleIds") or []:
            if ("kb", str(kb).upper().removeprefix("KB")) in family:
                return family[("kb", str(kb).upper().removeprefix("KB"))]
    return None


_VERSIONED = ("yumPackage", "aptPackage", "zypperPackage", "googetPackage")

# How a planned patch compares with what an OS Config inventory says the instance has.
VERSION_EXACT = "exact"  # the planned version (or KB) is installed
VERSION_NEWER = "newer"  # a newer version than planned is installed: the fix is there, not the frozen one
VERSION_OLDER = "older"  # only older versions are installed: the planned update is still missing
VERSION_ABSENT = "absent"  # the package is not installed at all: a patch job ignores it (see below)
KB_NOT_REPORTED = "not_reported"  # a KB neither installed nor offered: the inventory cannot confirm it
# A planned kernel update whose package is not installed (Ubuntu names one package per kernel release):
# the plan's kernel is not there, whatever the reason, so it is still missing.
KERNEL_NOT_INSTALLED = "not_installed"
VERSION_STILL_MISSING = frozenset({VERSION_OLDER, KB_NOT_REPORTED, KERNEL_NOT_INSTALLED})


def _inventory_packages(inventory: Mapping[str, Any], item_type: str, key: str) -> list[Mapping[str, Any]]:
    return [
        item[key]
        for item in (inventory.get("items") or {}).values()
        if item.get("type") == item_type and item.get(key)
    ]


def gcp_installed_versions(  # noqa: C901 - one pass over Google's inventory item shapes (installed package kinds and their version fields), each a branch
    inventory: Mapping[str, Any], planned: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Planned vs installed, per planned patch, from an instance's FULL OS Config inventory.

    OS Config patch jobs take package names and KBs, never versions, so what a job installed is read
    back here. Fields, per Google's Inventory reference
    (https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.inventories,
    sections Item, SoftwarePackage, VersionedPackage, WindowsQuickFixEngineeringPackage,
    WindowsUpdatePackage): ``items`` of ``type`` INSTALLED_PACKAGE / AVAILABLE_PACKAGE holding
    ``installedPackage`` / ``availablePackage``: ``yumPackage`` / ``aptPackage`` / ``zypperPackage`` /
    ``googetPackage`` (``packageName``, ``architecture``, ``version``), ``qfePackage`` (``hotFixId``)
    and ``wuaPackage`` (``kbArticleIds``).

    Each entry: ``{patch_id, package | kb, planned, installed, available, status}`` with status one
    of :data:`VERSION_EXACT`, :data:`VERSION_NEWER`, :data:`VERSION_OLDER`, :data:`VERSION_ABSENT`,
    :data:`KB_NOT_REPORTED`. A Linux package the instance does not have is ``absent``: a patch job's
    ``exclusivePackages`` are "the only packages that will be updated. If these packages are not
    installed, they will be ignored" (https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig,
    AptSettings / YumSettings), so the plan's update does not apply to that instance. No document says
    what Windows Update does with a KB it neither reports installed nor offers; the conservative
    reading is that the inventory cannot confirm it (``not_reported``: counted as still missing).
    """
    from patchcycle.domain.package_version import compare_versions

    installed: dict[str, list[str]] = {}
    available: dict[str, list[str]] = {}
    for target, item_type, key in (
        (installed, "INSTALLED_PACKAGE", "installedPackage"),
        (available, "AVAILABLE_PACKAGE", "availablePackage"),
    ):
        for package in _inventory_packages(inventory, item_type, key):
            for kind in _VERSIONED:
                if kind in package and package[kind].get("packageName"):
                    target.setdefault(str(package[kind]["packageName"]), []).append(
                        str(package[kind].get("version") or "")
                    )
    kbs_installed = {
        str(p["qfePackage"].get("hotFixId") or "").upper().removeprefix("KB")
        for p in _inventory_packages(inventory, "INSTALLED_PACKAGE", "installedPackage")
        if p.get("qfePackage")
    } | {
        str(kb).upper().removeprefix("KB")
        for p in _inventory_packages(inventory, "INSTALLED_PACKAGE", "installedPackage")
        for kb in (p.get("wuaPackage") or {}).get("kbArticleIds") or []
    }
    kbs_available = {
        str(kb).upper().removeprefix("KB")
        for p in _inventory_packages(inventory, "AVAILABLE_PACKAGE", "availablePackage")
        for kb in (p.get("wuaPackage") or {}).get("kbArticleIds") or []
    }
    out: list[dict[str, Any]] = []
    for patch in planned:
        if patch.get("kb"):
            kb = str(patch["kb"]).upper().removeprefix("KB")
            status = (
                VERSION_EXACT
                if kb in kbs_installed
                else VERSION_OLDER
                if kb in kbs_available
                else KB_NOT_REPORTED
            )
            out.append(
                {
                    "patch_id": patch["id"],
                    "kb": f"KB{kb}",
                    "planned": f"KB{kb}",
                    "installed": f"KB{kb}" if status == VERSION_EXACT else None,
                    "available": f"KB{kb}" if kb in kbs_available else None,
                    "status": status,
                }
            )
            continue
        name = patch.get("package")
        if not name:
            continue
        want = str(patch.get("version") or "")
        if patch.get("epoch") and ":" not in want:
            want = f"{patch['epoch']}:{want}"
        have = [v for v in installed.get(name, []) if v]
        newest = max(have, key=_version_key(compare_versions), default=None)
        offered = max(available.get(name, []), key=_version_key(compare_versions), default=None)
        is_offered = name in available
        absent = KERNEL_NOT_INSTALLED if patch.get("kernel_update") else VERSION_ABSENT
        if not want:  # a plan without versions: judged by name, an offered update is still missing
            status = VERSION_OLDER if is_offered else VERSION_EXACT if have else absent
            shown = newest
        elif any(compare_versions(v, want) == 0 for v in have):
            status, shown = VERSION_EXACT, want
        elif newest is not None and compare_versions(newest, want) > 0:
            status, shown = VERSION_NEWER, newest
        elif newest is not None or is_offered:
            # Older builds only, or offered but not reported installed: the planned update is missing.
            status, shown = VERSION_OLDER, newest
        else:
            status, shown = absent, None
        out.append(
            {
                "patch_id": patch["id"],
                "package": name,
                "arch": patch.get("arch"),
                "planned": want or None,
                "installed": shown,
                "available": offered or None,
                "status": status,
            }
        )
    return out


def _version_key(compare: Any) -> Any:
    import functools

    return functools.cmp_to_key(compare)


def gcp_missing_patch_ids(
    inventory: Mapping[str, Any], os_family: str, index: Mapping[str, Mapping[tuple[str, str], Any]]
) -> list[str]:
    """The plan's patch ids an OS Config inventory shows still missing: only older versions of the
    package installed, or a KB it cannot confirm (see :func:`gcp_installed_versions`)."""
    planned = {p["id"]: p for p in index.get(os_family, {}).values()}.values()
    return sorted(
        e["patch_id"]
        for e in gcp_installed_versions(inventory, planned)
        if e["status"] in VERSION_STILL_MISSING
    )


def normalize_gcp_instances(
    tenant: Tenant,
    project: str,
    instances: Iterable[Mapping[str, Any]],
    inventories: Mapping[str, Mapping[str, Any]],
    reports: Mapping[str, Mapping[str, Any]],
    plan_index: Mapping[str, Mapping[tuple[str, str], Any]],
) -> list[dict[str, Any]]:
    """Rows for Compute Engine instances (labels, IP), their OS Config inventory and vulnerability report.

    ``inventories`` and ``reports`` are keyed by instance id. An instance without an inventory has no
    OS Config agent reporting: it is inventoried (its labels say it is ours) and the gate holds it.
    """
    keys = tenant.host_tags
    rows = []
    for instance in instances:
        instance_id = str(instance["id"])
        labels = {k.lower(): str(v) for k, v in (instance.get("labels") or {}).items()}
        zone = str(instance.get("zone") or "").rsplit("/", 1)[-1]
        inventory = inventories.get(instance_id)
        os_info = (inventory or {}).get("osInfo") or {}
        family = os_family_from_label(str(os_info.get("longName") or "")) if inventory else None
        env_tag = labels.get(keys.environment.lower())
        criticality = labels.get(keys.criticality.lower(), "medium").strip().lower()
        available = _available_items(inventory or {})
        severity: dict[str, str | None] = {}
        cves: dict[str, list[str]] = {}
        for vuln in (reports.get(instance_id) or {}).get("vulnerabilities") or []:
            details = vuln.get("details") or {}
            rated = _GCP_SEVERITY.get(str(details.get("severity") or "").upper())
            for item_id in vuln.get("availableInventoryItemIds") or []:
                if details.get("cve"):
                    cves.setdefault(item_id, []).append(str(details["cve"]))
                if rated and (severity.get(item_id) is None or _rank(rated) > _rank(severity[item_id])):
                    severity[item_id] = rated
        planned = plan_index.get(family.value, {}) if family else {}
        detail = (
            _tally(
                (
                    hit["severity"]
                    if (hit := _gcp_plan_patch(item["availablePackage"], planned))
                    else severity.get(item_id),
                    [c for c in cves.get(item_id, []) if c] or (list(hit["cves"]) if hit else []),
                    hit["id"] if hit else None,
                )
                for item_id, item in available.items()
            )
            if inventory
            else _no_missing_detail()
        )
        nics = instance.get("networkInterfaces") or []
        boot: Mapping[str, Any] = next((d for d in instance.get("disks") or [] if d.get("boot")), {})
        rows.append(
            _ordered(
                {
                    "cloud": "gcp",
                    "account": project,
                    "region": zone,
                    "resource_group": None,
                    "boot_disk": str(boot.get("source") or "").rsplit("/", 1)[-1] or None,
                    "host_id": instance_id,
                    "name": instance.get("name"),
                    "private_ip": nics[0].get("networkIP") if nics else None,
                    "environment": environment_for_tag(tenant, env_tag),
                    "environment_tag": env_tag,
                    "os_family": family.value if family else None,
                    "platform": str(os_info.get("longName") or "unknown (no OS Config inventory)"),
                    "kernel": os_info.get("kernelRelease") if family and family.is_linux else None,
                    "agent_kind": "osconfig",
                    "agent_status": "ACTIVE" if inventory else "NO_AGENT_DETECTED",
                    "agent_online": inventory is not None and instance.get("status", "RUNNING") == "RUNNING",
                    "criticality": criticality if criticality in CRITICALITIES else "medium",
                    "missing_count": len(available),
                    "failed_count": 0,
                    "installed_count": sum(
                        1
                        for i in ((inventory or {}).get("items") or {}).values()
                        if i.get("type") == "INSTALLED_PACKAGE"
                    ),
                    "last_patch_operation": "Scan" if inventory else None,
                    "last_patch_time": (inventory or {}).get("updateTime"),
                    **detail,
                }
            )
        )
    return rows


def _rank(severity: str | None) -> int:
    return {"Critical": 4, "High": 3, "Medium": 2, "Low": 1}.get(severity or "", 0)
