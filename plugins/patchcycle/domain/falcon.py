"""CrowdStrike Falcon's kernel support table, read as policy: does a sensor version run on a kernel?

Falcon's Linux sensor hooks the kernel, so it only runs fully on kernels CrowdStrike has certified for
its version; on any other kernel it drops into reduced-functionality mode (RFM) and the host is blind
until the sensor is upgraded. The vendor's answer for one kernel release is a record of the
sensor-update-kernels API, with three lists of sensor versions ("7.14.16703") that support it: the
base package, and Zero Touch Linux (ZTL) support delivered by channel file or kernel module without a
sensor upgrade. A sensor supports the kernel when its version is in any of the three lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The lists of a kernel record naming the sensor versions that support the kernel.
SUPPORT_LISTS: tuple[str, ...] = (
    "base_package_supported_sensor_versions",
    "ztl_supported_sensor_versions",
    "ztl_module_supported_sensor_versions",
)


def sensor_build(agent_version: str) -> str:
    """A sensor version as the support table writes it: major.minor.build ("7.14.16703.0" -> "7.14.16703")."""
    return ".".join(agent_version.strip().split(".")[:3])


def sensor_supports_kernel(kernel_record: Mapping[str, Any], agent_version: str | None) -> bool:
    """Whether a sensor of ``agent_version`` (as a device record reports it, "7.14.16703.0") runs in
    full on the kernel that ``kernel_record`` (one sensor-update-kernels record) describes.

    A host without a sensor version (no sensor, or not reported) is never supported.
    """
    if not agent_version or not agent_version.strip():
        return False
    wanted = sensor_build(agent_version)
    for field in SUPPORT_LISTS:
        versions = kernel_record.get(field) or []
        if any(sensor_build(str(v)) == wanted for v in versions):
            return True
    return False


def supporting_versions(kernel_record: Mapping[str, Any]) -> list[str]:
    """Every sensor version (major.minor.build) that supports the record's kernel, sorted numerically."""
    found = {sensor_build(str(v)) for field in SUPPORT_LISTS for v in kernel_record.get(field) or []}
    return sorted(found, key=_version_key)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))
