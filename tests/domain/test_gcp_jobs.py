"""GCP patch-job grouping: a shared exclusive list must not widen any OS family's plan.

exclusivePackages are "the only packages that will be updated. If these packages are not installed,
they will be ignored." (https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig,
AptSettings / YumSettings): every instance updates each listed package it has.
"""

from __future__ import annotations

import datetime as dt

from patchcycle.domain.gcp_jobs import disruption_budget, gcp_patch_job_groups, patch_job_names, started_job


def _p(pid: str, package: str | None = None, kb: str | None = None, kernel: bool = False) -> dict:
    return {"id": pid, "package": package, "kb": kb, "kernel_update": kernel}


PLAN = {
    "approved": {
        "rhel_8": [_p("R8-1", "openssl"), _p("R8-2", "kernel", kernel=True)],
        "rhel_9": [_p("R9-1", "curl")],
        "ubuntu_22_04": [_p("U-1", "openssl")],
        "windows_2022": [_p("KB5046615", kb="5046615")],
        "centos_7": [],
    }
}


def _host(name: str, family: str, variant: str = "full", project: str = "p1") -> dict:
    return {
        "host_id": name,
        "name": name,
        "region": "z1",
        "account": project,
        "os_family": family,
        "install_variant": variant,
    }


def test_families_with_different_yum_lists_never_share_a_job():
    hosts = [
        _host("r8", "rhel_8"),
        _host("r9", "rhel_9"),
        _host("u", "ubuntu_22_04"),
        _host("w", "windows_2022"),
        _host("c7", "centos_7"),
        _host("r8nk", "rhel_8", "no_kernel"),
    ]
    jobs, idle = gcp_patch_job_groups(PLAN, hosts)
    assert [h["name"] for h in idle] == ["c7"]  # an empty exclusive list would install the OS default set
    shown = [
        (j.variant, j.apt_packages, j.yum_packages, j.windows_kbs, [h["name"] for h in j.hosts]) for j in jobs
    ]
    assert shown == [
        ("full", ("openssl",), ("curl",), ("5046615",), ["r9", "u", "w"]),
        ("full", (), ("kernel", "openssl"), (), ["r8"]),
        ("no_kernel", (), ("openssl",), (), ["r8nk"]),
    ]


def test_max_errors_becomes_a_disruption_budget_os_config_accepts():
    # FixedOrPercent: fixed at least 1, percent 1..100; MaxErrors may be 0.
    assert disruption_budget("2") == {"fixed": 2}
    assert disruption_budget("0") == {"fixed": 1}
    assert disruption_budget("25%") == {"percent": 25}
    assert disruption_budget("0%") == {"percent": 1}


def _names(groups, batch=None):
    return patch_job_names(
        groups,
        tenant_id="cu_alpha",
        cycle_date="2026-11-22",
        environment="prod",
        batch=batch,
        plan_hash="abcdef0123456789",
        run_token="1a2b3c4d",
    )


def test_jobs_of_one_project_and_variant_are_numbered_and_a_lone_job_is_not():
    hosts = [_host("r8", "rhel_8"), _host("r9", "rhel_9"), _host("w", "windows_2022", project="p2")]
    groups, _ = gcp_patch_job_groups(PLAN, hosts)
    names = _names(groups)
    assert [n.display_name for n in names] == [
        "pc-2026-11-22-prod-full-1",
        "pc-2026-11-22-prod-full-2",
        "pc-2026-11-22-prod-full",
    ]
    assert names[0].description == "patchcycle cu_alpha 2026-11-22 prod plan abcdef012345 full run 1a2b3c4d"
    assert _names(groups[2:], batch="canary")[0].display_name == "pc-2026-11-22-prod-canary-full"


def test_a_held_kernel_variant_names_its_job_apart():
    groups, _ = gcp_patch_job_groups(PLAN, [_host("r8", "rhel_8", variant="no_kernel")])
    assert _names(groups)[0].display_name == "pc-2026-11-22-prod-no-kernel"


def test_a_retry_finds_the_job_its_earlier_attempt_started_and_nothing_else():
    intent = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
    mine = "patchcycle cu_alpha 2026-11-22 prod plan abcdef012345 full run 1a2b3c4d"
    jobs = [
        {
            "name": "j-other-run",
            "description": mine.replace("1a2b3c4d", "99999999"),
            "createTime": "2026-11-22T03:01:00Z",
        },
        {"name": "j-last-month", "description": mine, "createTime": "2026-10-25T03:01:00Z"},
        {"name": "j-no-time", "description": mine},
        {"name": "j-mine", "description": mine, "createTime": "2026-11-22T02:57:30.123Z"},
    ]
    assert started_job(jobs, mine, intent)["name"] == "j-mine"  # within the 5 minutes' clock skew
    assert started_job(jobs[:3], mine, intent) is None
