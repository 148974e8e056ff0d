"""What each OS family is called by the clouds' patch services, and how their words map to ours."""

from __future__ import annotations

from patchcycle.config.models import OsFamily, Severity

# SSM patch catalog Product for each family (describe_available_patches PRODUCT filter).
SSM_PRODUCTS: dict[OsFamily, str] = {
    OsFamily.amazon_linux_2: "AmazonLinux2",
    OsFamily.amazon_linux_2023: "AmazonLinux2023",
    OsFamily.rhel_7: "RedhatEnterpriseLinux7.9",
    OsFamily.rhel_8: "RedhatEnterpriseLinux8.8",
    OsFamily.rhel_9: "RedhatEnterpriseLinux9.2",
    OsFamily.centos_7: "CentOS7.9",
    OsFamily.ubuntu_20_04: "Ubuntu20.04",
    OsFamily.ubuntu_22_04: "Ubuntu22.04",
    OsFamily.windows_2016: "WindowsServer2016",
    OsFamily.windows_2019: "WindowsServer2019",
    OsFamily.windows_2022: "WindowsServer2022",
}

# Vendor severities (Amazon/Red Hat/Canonical "Severity", Microsoft "MsrcSeverity") on our scale.
_SEVERITY: dict[str, Severity] = {
    "critical": Severity.Critical,
    "important": Severity.High,
    "high": Severity.High,
    "moderate": Severity.Medium,
    "medium": Severity.Medium,
    "low": Severity.Low,
}


def normalize_severity(vendor_severity: str | None) -> Severity | None:
    """Map a vendor's severity word to ours; ``None`` for unspecified or unknown words."""
    return _SEVERITY.get((vendor_severity or "").strip().lower())


def os_family_from_ssm(platform_name: str, platform_version: str) -> OsFamily | None:
    """The OS family of a managed instance from SSM's PlatformName/PlatformVersion, if we patch it."""
    name, version = platform_name.lower(), platform_version.strip()
    major = version.split(".")[0]
    if name.startswith("amazon linux"):
        return {"2": OsFamily.amazon_linux_2, "2023": OsFamily.amazon_linux_2023}.get(major)
    if name.startswith("red hat enterprise linux"):
        return {"7": OsFamily.rhel_7, "8": OsFamily.rhel_8, "9": OsFamily.rhel_9}.get(major)
    if name.startswith("centos"):
        return OsFamily.centos_7 if major == "7" else None
    if name.startswith("ubuntu"):
        return {"20.04": OsFamily.ubuntu_20_04, "22.04": OsFamily.ubuntu_22_04}.get(version[:5])
    if "windows server" in name:
        for year, family in (
            ("2016", OsFamily.windows_2016),
            ("2019", OsFamily.windows_2019),
            ("2022", OsFamily.windows_2022),
        ):
            if year in name:
                return family
    return None


def os_family_from_label(label: str) -> OsFamily | None:
    """The OS family from a product label as Azure Arc (osSku) or OS Config (longName) reports it:
    "Ubuntu 22.04.4 LTS", "Red Hat Enterprise Linux 9.4 (Plow)", "Windows Server 2022 Datacenter"."""
    import re

    text = label.strip()
    if "windows server" in text.lower():
        return os_family_from_ssm(text, "")
    match = re.match(r"^(.*?)\s+(\d+(?:\.\d+)*)", text)
    if not match:
        return None
    return os_family_from_ssm(match.group(1), match.group(2))


# The baseline's classifications (SSM's words) in Azure Update Manager's words, for installPatches.
_ARC_LINUX = {"security": ("Critical", "Security")}
_ARC_WINDOWS = {
    "criticalupdates": ("Critical",),
    "securityupdates": ("Security",),
    "updaterollups": ("UpdateRollUp",),
    "featurepacks": ("FeaturePack",),
    "servicepacks": ("ServicePack",),
    "definitionupdates": ("Definition",),
    "tools": ("Tools",),
    "updates": ("Updates",),
}


def arc_classifications(classifications: list[str] | tuple[str, ...], windows: bool) -> list[str]:
    """A baseline's classifications as ``classificationsToInclude`` of Azure's installPatches.

    Linux: Security maps to Critical and Security; anything else (Bugfix, Enhancement, ...) to Other.
    Windows: the MSRC classifications map one to one; unknown ones are an error, not silently dropped.
    """
    out: list[str] = []
    for value in classifications:
        key = value.replace(" ", "").lower()
        if windows:
            if key not in _ARC_WINDOWS:
                raise ValueError(f"Windows classification {value!r} has no Azure Update Manager equivalent")
            mapped = _ARC_WINDOWS[key]
        else:
            mapped = _ARC_LINUX.get(key, ("Other",))  # type: ignore[assignment]
        out.extend(m for m in mapped if m not in out)
    return out


# Update Manager's classifications (the softwarepatches rows' words) in the baselines' (SSM's) words.
_BASELINE_OF_ARC_WINDOWS = {
    "critical": "CriticalUpdates",
    "security": "SecurityUpdates",
    "updaterollup": "UpdateRollups",
    "featurepack": "FeaturePacks",
    "servicepack": "ServicePacks",
    "definition": "DefinitionUpdates",
    "tools": "Tools",
    "updates": "Updates",
}


def arc_baseline_classification(classification: str, windows: bool) -> str:
    """An Update Manager classification as a baseline names it (the inverse of
    :func:`arc_classifications`): Linux Critical and Security are "Security", anything else "Other" (no
    baseline word for it, so no baseline approves it by classification); Windows one to one, unknown
    words as "Updates" (what Update Manager reports when the OS gives no category, Learn query-logs)."""
    key = classification.replace(" ", "").lower()
    if windows:
        return _BASELINE_OF_ARC_WINDOWS.get(key, "Updates")
    return "Security" if key in ("critical", "security") else "Other"
