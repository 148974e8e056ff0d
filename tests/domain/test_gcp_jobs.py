"""GCP patch-job grouping: a shared exclusive list must not widen any OS family's plan.

exclusivePackages are "the only packages that will be updated. If these packages are not installed,
they will be ignored." (https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig,
AptSettings / YumSettings): every instance updates each listed package it has.
"""

from __future__ import annotations

from patchcycle.domain.gcp_jobs import gcp_patch_job_groups


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
