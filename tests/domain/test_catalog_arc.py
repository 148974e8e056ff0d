"""The Arc catalog source and the plan-vs-machine judgements over Update Manager's Resource Graph rows.

Fields as Microsoft documents them: Learn, "Access Azure Update Manager operations data using Azure
Resource Graph" (https://learn.microsoft.com/azure/update-manager/query-logs), "Description of the
patchassessmentresources property" (publishedDateTime "is not available in case of Linux updates") and
"Description of the patchinstallationresults property" (installationState).
"""

from __future__ import annotations

import datetime as dt

from patchcycle.config.models import Baseline, OsFamily
from patchcycle.domain.catalog_arc import (
    ARC_SOURCE,
    approvable_missing,
    arc_catalog,
    arc_package_mask,
    install_readback,
)
from patchcycle.domain.plan import age_date

LINUX_ROW = {
    "patchName": "openssl",
    "version": "3.0.7-27.el9",
    "classifications": ["Security"],
    "publishedDateTime": None,
}
WINDOWS_ROW = {
    "patchName": "2026-11 Cumulative Update",
    "kbId": "5046616",
    "classifications": ["Security"],
    "msrcSeverity": "Critical",
    "publishedDateTime": "2026-11-12T00:00:00Z",
}


def test_windows_rows_map_to_dated_kbs_and_linux_rows_to_undated_versions():
    catalog = arc_catalog(
        [
            (OsFamily.windows_2022, WINDOWS_ROW),
            (OsFamily.windows_2022, WINDOWS_ROW),
            (OsFamily.rhel_9, LINUX_ROW),
        ]
    )
    assert [p.id for p in catalog] == ["openssl_3.0.7-27.el9", "KB5046616"]
    linux, windows = catalog
    assert (linux.package, linux.version, linux.released, linux.first_seen) == (
        "openssl",
        "3.0.7-27.el9",
        None,
        None,
    )
    assert age_date(linux) is None and linux.source == ARC_SOURCE
    assert (windows.kb, windows.classification, windows.severity.value, windows.released) == (
        "5046616",
        "SecurityUpdates",
        "Critical",
        dt.date(2026, 11, 12),
    )


def test_masks_pin_package_and_version():
    """HybridCompute swagger 2024-07-10, definitions/LinuxParameters: ``packageName_packageVersion``."""
    assert arc_package_mask("openssl", "3.0.7-24.el9") == "openssl_3.0.7-24.el9"
    assert arc_package_mask("bash", "5.1-6", epoch="1") == "bash_1:5.1-6"
    assert arc_package_mask("curl", None) == "curl"


def test_nothing_planned_counts_undated_updates_of_the_baselines_classifications():
    baseline = Baseline(
        os_family=OsFamily.rhel_9,
        classifications=["Security"],
        severities=["Critical", "High"],
        approve_after_days=7,
    )
    other = {"patchName": "curl", "version": "7.76.1", "classifications": ["Other"]}
    assert approvable_missing(OsFamily.rhel_9, [LINUX_ROW, other], baseline, dt.date(2026, 12, 1)) == [
        "openssl 3.0.7-27.el9"
    ]
    assert approvable_missing(OsFamily.rhel_9, [other], baseline, dt.date(2026, 12, 1)) == []


def test_readback_shows_planned_against_installed_and_what_the_plan_does_not_hold():
    planned = [{"id": "RHSA-91", "package": "openssl", "version": "3.0.7-24.el9"}]
    rows = [
        {"patchName": "openssl", "version": "3.0.7-24.el9", "installationState": "Installed"},
        {"patchName": "curl", "version": "7.76.1-29.el9_4", "installationState": "Installed"},
        {"patchName": "openssl", "version": "3.0.7-27.el9", "installationState": "NotSelected"},
    ]
    readback = install_readback(planned, rows)
    assert readback["outside_plan"] == ["curl 7.76.1-29.el9_4"]
    assert readback["installed_versions"] == [
        {"package": "openssl", "planned": "3.0.7-24.el9", "installed": "3.0.7-24.el9"},
        {"package": "curl", "planned": None, "installed": "7.76.1-29.el9_4"},
    ]
    assert install_readback(planned, None) == {"installed_versions": None, "outside_plan": []}
