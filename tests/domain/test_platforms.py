"""Vendor severity words and SSM platform names mapped to our vocabulary."""

from __future__ import annotations

import pytest

from patchcycle.config.models import OsFamily, Severity
from patchcycle.domain.platforms import SSM_PRODUCTS, normalize_severity, os_family_from_ssm

# (vocabulary, vendor word, our severity)
_SEVERITY_WORDS = [
    # Amazon Linux, Red Hat and Canonical report "Severity".
    ("linux", "Critical", Severity.Critical),
    ("linux", "Important", Severity.High),
    ("linux", "High", Severity.High),
    ("linux", "Medium", Severity.Medium),
    ("linux", "Moderate", Severity.Medium),
    ("linux", "Low", Severity.Low),
    # Microsoft reports "MsrcSeverity".
    ("msrc", "Critical", Severity.Critical),
    ("msrc", "Important", Severity.High),
    ("msrc", "Moderate", Severity.Medium),
    ("msrc", "Low", Severity.Low),
    # Case and surrounding whitespace do not matter.
    ("any", "CRITICAL", Severity.Critical),
    ("any", "  important ", Severity.High),
    ("any", "moderate", Severity.Medium),
    ("any", "lOw", Severity.Low),
]


@pytest.mark.parametrize(
    ("word", "expected"),
    [pytest.param(w, e, id=f"{v}-{w.strip()}") for v, w, e in _SEVERITY_WORDS],
)
def test_normalize_severity_maps_vendor_words(word, expected):
    assert normalize_severity(word) is expected


@pytest.mark.parametrize(
    "word", [None, "", "   ", "Unspecified", "Negligible", "Untriaged", "Criticality", "urgent"]
)
def test_normalize_severity_unknown_or_missing_is_none(word):
    assert normalize_severity(word) is None


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("Amazon Linux", "2", OsFamily.amazon_linux_2),
        ("Amazon Linux", "2023", OsFamily.amazon_linux_2023),
        ("Amazon Linux", "2023.6.20241010", OsFamily.amazon_linux_2023),
        ("Red Hat Enterprise Linux Server", "7.9", OsFamily.rhel_7),
        ("Red Hat Enterprise Linux", "8.8", OsFamily.rhel_8),
        # Every RHEL minor version maps to its major family.
        ("Red Hat Enterprise Linux", "8.6", OsFamily.rhel_8),
        ("Red Hat Enterprise Linux", "8.10", OsFamily.rhel_8),
        ("Red Hat Enterprise Linux", "9.2", OsFamily.rhel_9),
        ("Red Hat Enterprise Linux", "9.4", OsFamily.rhel_9),
        ("CentOS Linux", "7.9.2009", OsFamily.centos_7),
        ("Ubuntu", "20.04", OsFamily.ubuntu_20_04),
        ("Ubuntu", "22.04", OsFamily.ubuntu_22_04),
        ("Ubuntu", "22.04.4", OsFamily.ubuntu_22_04),
        ("Microsoft Windows Server 2016 Datacenter", "10.0.14393", OsFamily.windows_2016),
        ("Microsoft Windows Server 2019 Datacenter", "10.0.17763", OsFamily.windows_2019),
        ("Microsoft Windows Server 2019 Standard", "10.0.17763", OsFamily.windows_2019),
        ("Microsoft Windows Server 2022 Datacenter", "10.0.20348", OsFamily.windows_2022),
        ("Microsoft Windows Server 2022 Datacenter: Azure Edition", "10.0.20348", OsFamily.windows_2022),
        # Platform names are matched case-insensitively; versions may carry whitespace.
        ("AMAZON LINUX", " 2 ", OsFamily.amazon_linux_2),
        ("ubuntu", "20.04", OsFamily.ubuntu_20_04),
    ],
)
def test_os_family_from_ssm_known_platforms(name, version, expected):
    assert os_family_from_ssm(name, version) is expected


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("Amazon Linux AMI", "2018.03"),
        ("Amazon Linux", "1"),
        ("Red Hat Enterprise Linux", "6.10"),
        ("Red Hat Enterprise Linux", "10.0"),
        ("CentOS Linux", "8.5.2111"),
        ("CentOS Stream", "9"),
        ("Ubuntu", "18.04"),
        ("Ubuntu", "24.04"),
        ("Ubuntu", "20.10"),
        ("Microsoft Windows Server 2012 R2 Standard", "6.3.9600"),
        ("Microsoft Windows Server 2025 Datacenter", "10.0.26100"),
        ("Microsoft Windows 10 Enterprise", "10.0.19045"),
        ("Oracle Linux Server", "8.9"),
        ("SLES", "15.5"),
        ("Debian GNU/Linux", "12"),
        ("macOS", "14.1"),
        ("", ""),
    ],
)
def test_os_family_from_ssm_unpatched_platforms_are_none(name, version):
    assert os_family_from_ssm(name, version) is None


def test_every_os_family_has_an_ssm_product():
    assert set(SSM_PRODUCTS) == set(OsFamily)
    assert len(set(SSM_PRODUCTS.values())) == len(SSM_PRODUCTS)
    assert SSM_PRODUCTS[OsFamily.windows_2019] == "WindowsServer2019"
    assert SSM_PRODUCTS[OsFamily.amazon_linux_2] == "AmazonLinux2"


def test_baseline_classifications_in_azure_update_manager_words():
    from patchcycle.domain.platforms import arc_classifications

    assert arc_classifications(["Security", "Bugfix"], windows=False) == ["Critical", "Security", "Other"]
    assert arc_classifications(["SecurityUpdates", "CriticalUpdates"], windows=True) == [
        "Security",
        "Critical",
    ]
    with pytest.raises(ValueError, match="'Drivers' has no Azure Update Manager equivalent"):
        arc_classifications(["Drivers"], windows=True)
