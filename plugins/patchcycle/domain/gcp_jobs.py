"""How a stage's GCE instances are grouped into OS Config patch jobs: pure, from the plan and the rows.

A patch job carries one ``PatchConfig`` for all its instances: one ``apt`` / ``yum`` exclusive package
list and one ``windowsUpdate`` exclusive KB list (https://cloud.google.com/compute/docs/osconfig/rest/v1/PatchConfig).
An instance updates every listed package it has installed ("These are the only packages that will be
updated. If these packages are not installed, they will be ignored.", AptSettings / YumSettings), so
a yum list shared by RHEL 8 and RHEL 9 instances would update on RHEL 9 a package only RHEL 8's plan
approved. Instances therefore share a job only when their OS families' plans give the same lists.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcycle.domain.plan import FULL, install_selection


@dataclass(frozen=True)
class GcpPatchJobGroup:
    """The instances of one project and install variant that one patch job installs the same lists on."""

    project: str
    variant: str
    apt_packages: tuple[str, ...]
    yum_packages: tuple[str, ...]
    windows_kbs: tuple[str, ...]
    hosts: tuple[Mapping[str, Any], ...]


def package_manager(os_family: str) -> str:
    """Which PatchConfig settings an OS family takes: ``windowsUpdate``, ``apt`` or ``yum``."""
    if os_family.startswith("windows"):
        return "windowsUpdate"
    if os_family.startswith("ubuntu"):
        return "apt"
    return "yum"


def gcp_patch_job_groups(
    plan: Mapping[str, Any], hosts: Iterable[Mapping[str, Any]]
) -> tuple[list[GcpPatchJobGroup], list[Mapping[str, Any]]]:
    """(the patch jobs to start, the hosts with nothing to install).

    A host whose plan selection is empty gets no job: an empty exclusive list would make OS Config
    apply the OS's default update set. Groups are ordered by project, variant and lists.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    idle = []
    for host in hosts:
        variant = host.get("install_variant", FULL)
        selection = install_selection(plan, host["os_family"], variant)
        if not selection.patch_ids:
            idle.append(host)
            continue
        manager = package_manager(host["os_family"])
        lists = (
            selection.packages if manager == "apt" else (),
            selection.packages if manager == "yum" else (),
            selection.kbs if manager == "windowsUpdate" else (),
        )
        groups.setdefault((host["account"], variant, *lists), []).append(host)
    # One job may carry an apt, a yum and a KB list at once (each instance uses its own manager's), so
    # lists of different managers share jobs: as many jobs as the most distinct lists of one manager.
    merged: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (project, variant, apt, yum, kbs), rows in sorted(groups.items()):
        manager = "apt" if apt else "yum" if yum else "windowsUpdate"
        lists = {"apt": apt, "yum": yum, "windowsUpdate": kbs}[manager]
        jobs_here = merged.setdefault((project, variant), [])
        job = next((j for j in jobs_here if manager not in j), None)
        if job is None:
            job = {"hosts": []}
            jobs_here.append(job)
        job[manager] = lists
        job["hosts"].extend(rows)
    jobs = [
        GcpPatchJobGroup(
            project=project,
            variant=variant,
            apt_packages=tuple(job.get("apt", ())),
            yum_packages=tuple(job.get("yum", ())),
            windows_kbs=tuple(job.get("windowsUpdate", ())),
            hosts=tuple(sorted(job["hosts"], key=lambda h: (h["region"], h["name"]))),
        )
        for (project, variant), found in sorted(merged.items())
        for job in found
    ]
    return jobs, idle


def disruption_budget(max_errors: str) -> dict[str, int]:
    """The tenant's MaxErrors as an OS Config disruption budget (per zone): a count or a percent.

    The API takes ``fixed`` at least 1 or ``percent`` 1 to 100 (FixedOrPercent,
    https://cloud.google.com/compute/docs/osconfig/rest/v1/FixedOrPercent, and PatchRollout's "at least
    1"), where MaxErrors may be 0: a zero budget becomes 1, the least OS Config accepts.
    """
    if max_errors.endswith("%"):
        return {"percent": max(1, int(max_errors[:-1]))}
    return {"fixed": max(1, int(max_errors))}


@dataclass(frozen=True)
class GcpPatchJobName:
    """How one patch job names itself: a display name unique in the run's stage and batch, and a
    description naming the tenant, plan and run, by which a retry finds a job whose start it did not
    record (ExecutePatchJob takes no request id)."""

    display_name: str
    description: str


def patch_job_names(
    groups: Sequence[GcpPatchJobGroup],
    *,
    tenant_id: str,
    cycle_date: str,
    environment: str,
    batch: str | None,
    plan_hash: str,
    run_token: str,
) -> list[GcpPatchJobName]:
    """Each group's names, in order. Groups of one project and variant (different lists) are numbered
    ``-1``, ``-2``...; a lone group is not."""
    per_variant = Counter((g.project, g.variant) for g in groups)
    seen: Counter[tuple[str, str]] = Counter()
    names = []
    suffix = f"-{batch}" if batch else ""
    for group in groups:
        key = (group.project, group.variant)
        seen[key] += 1
        part = f"-{seen[key]}" if per_variant[key] > 1 else ""
        names.append(
            GcpPatchJobName(
                display_name=(
                    f"pc-{cycle_date}-{environment}{suffix}-{group.variant.replace('_', '-')}{part}"
                ),
                description=(
                    f"patchcycle {tenant_id} {cycle_date} {environment} "
                    f"plan {plan_hash[:12]} {group.variant} run {run_token}"
                ),
            )
        )
    return names


# ExecutePatchJob's createTime is the server's clock and the recorded intent is the worker's. No Google
# document bounds the difference between them; five minutes is the conservative reading (a job created
# slightly "before" its intent by our clock is still found; one of an earlier attempt has another run
# token in its description anyway).
CLOCK_SKEW = dt.timedelta(minutes=5)


def started_job(
    candidates: Iterable[Mapping[str, Any]], description: str, intent_at: dt.datetime
) -> Mapping[str, Any] | None:
    """Of the project's jobs with the group's display name, the one an earlier attempt started: the
    same description (tenant, plan, run), created no earlier than its recorded intent (less the clock
    skew). None when the earlier attempt stopped before OS Config created it."""
    since = intent_at - CLOCK_SKEW
    for job in candidates:
        created = job.get("createTime")
        if job.get("description") != description or not created:
            continue
        if dt.datetime.fromisoformat(str(created).replace("Z", "+00:00")) >= since:
            return job
    return None
