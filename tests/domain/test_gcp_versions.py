"""GCP: planned vs installed read back from OS Config inventories, and the final state it implies.

OS Config patch jobs name packages without versions (Google, PatchConfig,
https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig, sections AptSettings, YumSettings,
WindowsUpdateSettings), so verify reads the installed version back from the inventory
(https://cloud.google.com/compute/docs/osconfig/rest/v1/projects.locations.instances.inventories,
sections Item, VersionedPackage, WindowsQuickFixEngineeringPackage, WindowsUpdatePackage).
"""

from __future__ import annotations

import pytest

from patchcycle.domain.inventory import gcp_installed_versions, gcp_missing_patch_ids, plan_patch_index
from patchcycle.domain.outcomes import classify_gcp_host
from patchcycle.domain.package_version import compare_versions


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.1.1k-14.el8_10", "1.1.1k-15.el8_10", -1),
        ("1.1.1k-14.el8_10", "1.1.1k-14.el8_10", 0),
        ("1:1.0-1", "2.0-1", 1),  # the epoch wins
        ("1.0-1.el8_10", "1.0-1.el8_9", 1),
        ("3.0.2-0ubuntu1.19", "3.0.2-0ubuntu1.9", 1),  # numbers compare numerically
        ("1.0~rc1", "1.0", -1),  # a tilde sorts first (rpm and dpkg)
        ("1.0a", "1.0", 1),
        ("1.0", "1.0.1", -1),
    ],
)
def test_compare_versions(a, b, expected):
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def _yum(name: str, version: str, *, installed: bool) -> dict:
    key = "installedPackage" if installed else "availablePackage"
    kind = "INSTALLED_PACKAGE" if installed else "AVAILABLE_PACKAGE"
    return {
        "type": kind,
        key: {"yumPackage": {"packageName": name, "architecture": "x86_64", "version": version}},
    }


def _inventory(*items: dict) -> dict:
    return {"name": "projects/p/locations/z/instances/1/inventory", "items": dict(enumerate(items))}


OPENSSL = {"id": "RHSA-2026:8902", "package": "openssl", "version": "1.1.1k-14.el8_10", "arch": "x86_64"}
CURL = {"id": "RHSA-2026:8950", "package": "curl", "version": "7.61.1-34.el8_10"}
KERNEL = {"id": "K", "package": "kernel", "version": "4.18.0-553.33.1.el8_10", "kernel_update": True}
UBUNTU_KERNEL = {
    "id": "USN-7120-1",
    "package": "linux-image-5.15.0-126-generic",
    "kernel_update": True,
    "version": "5.15.0-126.136",
}
KB = {"id": "KB5046615", "kb": "5046615"}


def test_installed_versions_name_exact_newer_older_and_absent():
    inventory = _inventory(
        _yum("openssl", "1.1.1k-15.el8_10", installed=True),  # the job installed a newer build
        _yum("curl", "7.61.1-33.el8_10", installed=True),
        _yum("curl", "7.61.1-35.el8_10", installed=False),  # still behind the plan
        _yum("kernel", "4.18.0-477.10.1.el8_8", installed=True),
        _yum("kernel", "4.18.0-553.33.1.el8_10", installed=True),  # kernels install side by side
    )
    got = {
        v["patch_id"]: v for v in gcp_installed_versions(inventory, [OPENSSL, CURL, KERNEL, UBUNTU_KERNEL])
    }
    assert got["RHSA-2026:8902"] == {
        "patch_id": "RHSA-2026:8902",
        "package": "openssl",
        "arch": "x86_64",
        "planned": "1.1.1k-14.el8_10",
        "installed": "1.1.1k-15.el8_10",
        "available": None,
        "status": "newer",
    }
    assert (got["RHSA-2026:8950"]["status"], got["RHSA-2026:8950"]["installed"]) == (
        "older",
        "7.61.1-33.el8_10",
    )
    assert got["K"]["status"] == "exact"
    # A kernel package that is not installed is not the plan's kernel, whatever the reason.
    assert got["USN-7120-1"]["status"] == "not_installed"


def test_a_package_the_instance_does_not_have_is_not_missing():
    # exclusivePackages: "If these packages are not installed, they will be ignored." (PatchConfig)
    (entry,) = gcp_installed_versions(_inventory(_yum("bash", "5.1", installed=True)), [OPENSSL])
    assert (entry["status"], entry["installed"]) == ("absent", None)


def test_windows_kbs_are_read_from_qfe_and_wua_packages():
    installed = {"type": "INSTALLED_PACKAGE", "installedPackage": {"qfePackage": {"hotFixId": "KB5046615"}}}
    offered = {"type": "AVAILABLE_PACKAGE", "availablePackage": {"wuaPackage": {"kbArticleIds": ["5046615"]}}}
    assert gcp_installed_versions(_inventory(installed), [KB])[0]["status"] == "exact"
    assert gcp_installed_versions(_inventory(offered), [KB])[0]["status"] == "older"
    # Neither installed nor offered: no document says why; the inventory cannot confirm it.
    assert gcp_installed_versions(_inventory(), [KB])[0]["status"] == "not_reported"


def test_missing_patch_ids_compare_versions_not_names():
    plan = {"approved": {"rhel_8": [{**OPENSSL, "kb": None}, {**CURL, "kb": None}]}}
    inventory = _inventory(
        _yum("openssl", "1.1.1k-14.el8_10", installed=True),
        _yum("openssl", "1.1.1k-15.el8_10", installed=False),  # a newer build offered: plan is met
        _yum("curl", "7.61.1-33.el8_10", installed=True),
    )
    assert gcp_missing_patch_ids(inventory, "rhel_8", plan_patch_index(plan)) == ["RHSA-2026:8950"]


NEWER = [
    {"package": "openssl", "planned": "1.1.1k-14.el8_10", "installed": "1.1.1k-15.el8_10", "status": "newer"}
]


def test_a_newer_build_than_planned_is_patched_with_the_deviation_named():
    final, reason = classify_gcp_host({"state": "SUCCEEDED"}, [], NEWER)
    assert final == "patched"
    assert reason.startswith(
        "installed newer than planned: openssl 1.1.1k-15.el8_10 (planned 1.1.1k-14.el8_10)"
    )


def test_no_inventory_after_the_job_is_not_assessed():
    assert classify_gcp_host({"state": "SUCCEEDED"}, None) == (
        "not_assessed",
        "no OS Config inventory of the instance could be read after the patch job",
    )
    assert classify_gcp_host({"nothing_to_install": True}, None)[0] == "not_assessed"


def test_nothing_planned_is_patched_only_when_the_inventory_shows_nothing_missing():
    assert classify_gcp_host({"nothing_to_install": True}, []) == ("patched", None)
    assert classify_gcp_host({"nothing_to_install": True}, ["X"])[0] == "non_compliant"
    assert classify_gcp_host({"state": "SUCCEEDED"}, ["RHSA-2026:8950"])[0] == "non_compliant"
