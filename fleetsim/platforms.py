"""How each OS family looks to the clouds' agents (what SSM reports), as fleetsim emulates it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    platform_type: str  # SSM PlatformType
    platform_name: str  # SSM PlatformName
    platform_version: str
    ssm_product: str  # the Product of its patches in SSM's catalog
    ssm_operating_system: str  # PatchBaseline OperatingSystem


PLATFORMS: dict[str, Platform] = {
    "amazon_linux_2": Platform("Linux", "Amazon Linux", "2", "AmazonLinux2", "AMAZON_LINUX_2"),
    "amazon_linux_2023": Platform("Linux", "Amazon Linux", "2023", "AmazonLinux2023", "AMAZON_LINUX_2023"),
    "rhel_7": Platform(
        "Linux",
        "Red Hat Enterprise Linux Server",
        "7.9",
        "RedhatEnterpriseLinux7.9",
        "REDHAT_ENTERPRISE_LINUX",
    ),
    "rhel_8": Platform(
        "Linux", "Red Hat Enterprise Linux", "8.8", "RedhatEnterpriseLinux8.8", "REDHAT_ENTERPRISE_LINUX"
    ),
    "rhel_9": Platform(
        "Linux", "Red Hat Enterprise Linux", "9.2", "RedhatEnterpriseLinux9.2", "REDHAT_ENTERPRISE_LINUX"
    ),
    "centos_7": Platform("Linux", "CentOS Linux", "7.9.2009", "CentOS7.9", "CENTOS"),
    "ubuntu_20_04": Platform("Linux", "Ubuntu", "20.04", "Ubuntu20.04", "UBUNTU"),
    "ubuntu_22_04": Platform("Linux", "Ubuntu", "22.04", "Ubuntu22.04", "UBUNTU"),
    "windows_2016": Platform(
        "Windows", "Microsoft Windows Server 2016 Datacenter", "10.0.14393", "WindowsServer2016", "WINDOWS"
    ),
    "windows_2019": Platform(
        "Windows", "Microsoft Windows Server 2019 Datacenter", "10.0.17763", "WindowsServer2019", "WINDOWS"
    ),
    "windows_2022": Platform(
        "Windows", "Microsoft Windows Server 2022 Datacenter", "10.0.20348", "WindowsServer2022", "WINDOWS"
    ),
    # RDS DB instances: AWS patches their operating system through maintenance actions, not SSM.
    "rds": Platform("Linux", "Amazon RDS", "", "", ""),
}
