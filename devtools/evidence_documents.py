"""Realistic, deterministic evidence documents of any size, for the evidence-pack renderers' tests and
the evidence-pack benchmark: one builder, so the benchmark measures the documents the tests check.

Internally consistent (summaries add up to the hosts, stages to their hosts, controls to their
summary), in every schema version the renderers read."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any

ENVIRONMENTS = ("nonprod", "staging", "prod")
FAILED_HOST_NAME = "alpha-prod-db-07"
FAILED_HOST_REASON = "patch install exit code 1: yum transaction check error"
HELD_HOST_NAME = "alpha-prod-core-02"
HELD_HOST_REASON = "change freeze: quarter-end ledger close"

# The audit sections (make_evidence(..., sections=True)).
CYCLE_DATE = dt.date(2026, 11, 22)
RETENTION_DAYS = 2555
MISSING_CONTROL_ID = "10.2"
ACTIVE_EXCEPTION_ID = "RX-2026-014"
ACTIVE_EXCEPTION_APPROVER = "Dana Whitfield"
EXPIRED_EXCEPTION_ID = "RX-2025-031"
ACCESS_USER_NAME = "mgarcia"
KEV_CATALOG_VERSION = "2026.11.20"
TREND_DATES = ("2026-08-23", "2026-09-20", "2026-10-25", "2026-11-22")

# Schema 1.1 (make_evidence(..., schema_version="1.1")).
NOT_ASSESSED_HOST_NAME = "alpha-prod-gce-rhel-01"
NOT_ASSESSED_REASON = "the OS Config inventory of this instance could not be read (403 PERMISSION_DENIED)"
DRIFT_HOST_NAME = "alpha-nonprod-gce-ubuntu-01"
DRIFT_PACKAGE = ("openssl", "3.0.2-0ubuntu1.18", "3.0.2-0ubuntu1.19")  # package, planned, installed
CATALOG_SOURCES = {
    "amazon_linux_2": ["ssm:DescribeAvailablePatches"],
    "rhel_9": ["gcp:osconfig.inventories", "ssm:ListComplianceItems"],
    "ubuntu_22_04": ["azure:patchassessmentresources", "gcp:osconfig.inventories"],
    "windows_server_2022": ["azure:patchassessmentresources"],
}
CATALOG_NOTE = (
    "2 catalog entries not approved: no release or first-detection date to age by (gcp:osconfig.inventories)"
)
RELEASED_BASES = ("vendor", "first_seen", "baseline")

_OS = {
    "aws": [("amazon_linux_2", "Amazon Linux 2"), ("rhel_9", "Red Hat Enterprise Linux 9.4")],
    "azure": [
        ("windows_server_2022", "Windows Server 2022 Datacenter"),
        ("ubuntu_22_04", "Ubuntu 22.04 LTS"),
    ],
    "gcp": [("ubuntu_22_04", "Ubuntu 22.04 LTS"), ("rhel_9", "Red Hat Enterprise Linux 9.4")],
}
_REGIONS = {"aws": ["us-east-1", "us-west-2"], "azure": ["eastus2", "centralus"], "gcp": ["us-central1"]}
_ROLES = ["web", "app", "db", "batch", "core", "mq", "api"]
_FAILURE_REASONS = [
    "ssm agent ConnectionLost",
    "patch install exit code 1: yum transaction check error",
    "reboot did not complete within 900s",
    "backup snapshot failed: quota exceeded",
]
_HELD_REASONS = ["change freeze: quarter-end ledger close", "owner requested hold (CHG0042137)"]
_STATES = (
    ["patched"] * 70
    + ["failed"] * 5
    + ["held"] * 6
    + ["non_compliant"] * 3
    + ["excepted"] * 3
    + ["not_run"] * 3
    + ["out_of_scope"] * 10
)


def _host_id(rng: random.Random, cloud: str, name: str, account: str, env: str) -> str:
    if cloud == "aws":
        return "i-0" + "".join(rng.choice("0123456789abcdef") for _ in range(16))
    if cloud == "azure":
        return (
            f"/subscriptions/{account}/resourceGroups/rg-alpha-{env}/providers/"
            f"Microsoft.Compute/virtualMachines/{name}"
        )
    return str(rng.randrange(10**18, 10**19))


def _account(rng: random.Random, cloud: str) -> str:
    if cloud == "aws":
        return rng.choice(["111111111111", "022222222222"])
    if cloud == "azure":
        return "5f1c0a7e-2b8d-4c1e-9a3f-0d6b7e8c9a10"
    return "alpha-fcu-prod-1234"


def _default_reason(rng: random.Random, state: str) -> str | None:
    if state == "failed":
        return rng.choice(_FAILURE_REASONS)
    if state == "held":
        return rng.choice(_HELD_REASONS)
    return {
        "not_run": "stage prod not run: nonprod gate failed",
        "excepted": "risk exception RX-2026-014 until 2026-12-31",
        "out_of_scope": "tag patchcycle:scope=none",
        # The schema wants a reason on every host that is not patched (evidence-1.3, hosts[].reason).
        "non_compliant": "1 approved patch still missing after the install",
        "not_assessed": "the cloud could not say what the host is missing",
    }.get(state)


def _make_host(
    rng: random.Random,
    index: int,
    state: str | None = None,
    *,
    name: str | None = None,
    environment: str | None = None,
    reason: str | None = None,
) -> dict:
    cloud = rng.choice(["aws", "aws", "azure", "gcp"])
    env = environment or rng.choice(["nonprod", "nonprod", "staging", "prod", "prod", "prod"])
    os_family, platform = rng.choice(_OS[cloud])
    name = name or f"alpha-{env}-{rng.choice(_ROLES)}-{index:05d}"
    account = _account(rng, cloud)
    state = state or rng.choice(_STATES)
    missing_before = rng.randint(0, 9) if state != "out_of_scope" else 0
    patched = state == "patched"
    ran = state in ("patched", "failed", "non_compliant")
    if reason is None:
        reason = _default_reason(rng, state)
    host = {
        "host_id": _host_id(rng, cloud, name, account, env),
        "name": name,
        "cloud": cloud,
        "account": account,
        "region": rng.choice(_REGIONS[cloud]),
        "environment": env,
        "os_family": os_family,
        "platform": platform,
        "criticality": rng.choice(["low", "medium", "high", "critical"]),
        "agent_status": "ConnectionLost" if reason == "ssm agent ConnectionLost" else "Online",
        "kernel": None if os_family.startswith("windows") else "5.10.230-223.885.amzn2.x86_64",
        "falcon_device_id": f"{index:032x}",
        "falcon_sensor_version": "7.14.16703.0",
        "falcon_rfm": False,
        "final_state": state,
        "reason": reason,
        "install_variant": "full" if ran else None,
        "backup_kind": ({"aws": "ami", "azure": "attestation"}.get(cloud, "disk_snapshot")) if ran else None,
        "backup_id": (f"ami-0{rng.randrange(16**16):016x}" if cloud == "aws" else f"snap-{index:06d}")
        if ran
        else None,
        "command_id": f"{rng.randrange(16**8):08x}-4c1e-4a3f-9d6b-{index:012d}" if ran else None,
        "missing_before": missing_before,
        "missing_after": 0 if patched else missing_before,
        "failed_after": rng.randint(1, 3) if state == "failed" else 0,
        "installed_after": rng.randint(20, 400) + (missing_before if patched else 0),
    }
    return host


def _rollup(hosts: list[dict], schema_version: str = "1.0") -> dict:
    in_scope = [h for h in hosts if h["final_state"] != "out_of_scope"]

    def ratio(key: str) -> float:
        if not in_scope:
            return 0.0
        return round(sum(1 for h in in_scope if h[key] == 0) / len(in_scope), 4)

    result = {
        "in_scope": len(in_scope),
        "patched": sum(h["final_state"] == "patched" for h in hosts),
        "failed": sum(h["final_state"] == "failed" for h in hosts),
        "held": sum(h["final_state"] == "held" for h in hosts),
        "not_run": sum(h["final_state"] == "not_run" for h in hosts),
        "compliance_before": ratio("missing_before"),
        "compliance_after": ratio("missing_after"),
    }
    if schema_version != "1.0":
        for state in ("excepted", "out_of_scope", "non_compliant", "not_assessed"):
            result[state] = sum(h["final_state"] == state for h in hosts)
    return result


def _add_schema_1_1_hosts(hosts: list[dict], not_assessed: int) -> None:
    """Schema 1.1 host facts, in place: ``not_assessed`` GCP prod hosts whose assessment could not be
    read (the first named NOT_ASSESSED_HOST_NAME), and ``installed_versions`` on every host (None, but
    planned against installed on GCP hosts the install reached; one drifted on DRIFT_HOST_NAME)."""
    rng = random.Random(1101)  # its own stream: the 1.0 part of the document stays as it was
    for host in hosts:
        ran = host["final_state"] in ("patched", "failed", "non_compliant")
        host["installed_versions"] = (
            [{"package": "libssl3", "planned": "3.0.2-0ubuntu1.18", "installed": "3.0.2-0ubuntu1.18"}]
            if host["cloud"] == "gcp" and ran
            else None
        )
    for i in range(not_assessed):
        name = NOT_ASSESSED_HOST_NAME if i == 0 else f"alpha-prod-gce-rhel-{i + 1:02d}"
        host = _make_host(rng, 90_000 + i, "not_run", name=name, environment="prod")
        host.update(
            host_id=str(rng.randrange(10**18, 10**19)),
            cloud="gcp",
            account=_account(rng, "gcp"),
            region="us-central1",
            os_family="rhel_9",
            platform="Red Hat Enterprise Linux 9.4",
            final_state="not_assessed",
            reason=NOT_ASSESSED_REASON,
            missing_before=None,
            missing_after=None,
            installed_versions=None,
        )
        hosts.append(host)
    drift = _make_host(rng, 90_100, "patched", name=DRIFT_HOST_NAME, environment="nonprod")
    package, planned, installed = DRIFT_PACKAGE
    drift.update(
        host_id=str(rng.randrange(10**18, 10**19)),
        cloud="gcp",
        account=_account(rng, "gcp"),
        region="us-central1",
        os_family="ubuntu_22_04",
        platform="Ubuntu 22.04 LTS",
        final_state="non_compliant",
        reason=f"1 package not at the plan's version: {package} {installed} (planned {planned})",
        installed_versions=[
            {"package": package, "planned": planned, "installed": installed},
            {"package": "libssl3", "planned": planned, "installed": planned},
        ],
    )
    hosts.append(drift)


SENT_PATCH_IDS = ["ALAS2-2026-2671", "ALAS2-2026-2688"]


def _add_schema_1_3_hosts(hosts: list[dict]) -> None:
    """Schema 1.3 host facts, in place: the patch ids sent to each host a stage patched or judged, and
    when its cloud says the install ended (none on GCP, as OS Config gives no per-host time)."""
    for i, host in enumerate(hosts):
        sent = host["final_state"] in ("patched", "failed", "non_compliant", "not_assessed")
        host["patch_ids"] = list(SENT_PATCH_IDS) if sent else None
        host["patched_at"] = (
            f"2026-11-22T03:{i % 60:02d}:00+00:00" if sent and host["cloud"] != "gcp" else None
        )


def _plan_1_1(approved: dict[str, list[dict]]) -> list[dict]:
    """Schema 1.1 plan facts, in place on ``approved`` (exact versions, source, released basis); returns
    the per-family baseline decisions with their catalog sources and notes."""
    for family, patches in approved.items():
        for index, patch in enumerate(patches):
            windows = family.startswith("windows")
            patch.update(
                package=None if windows else f"pkg-{index}",
                kb=f"50{41000 + index}" if windows else None,
                version=None if windows else f"1.{index}.0-{index + 1}.el9",
                arch=None if windows else "x86_64",
                epoch="1" if not windows and index % 3 == 0 else None,
                source=CATALOG_SOURCES[family][index % len(CATALOG_SOURCES[family])],
                released_basis=RELEASED_BASES[index % len(RELEASED_BASES)],
            )
    return [
        {
            "os_family": family,
            "cutoff": "2026-11-15",
            "sources": CATALOG_SOURCES.get(family, []),
            "notes": [CATALOG_NOTE] if family == "rhel_9" else [],
        }
        for family in sorted(approved)
    ]


def _approved_patches(rng: random.Random, per_family: int) -> dict[str, list[dict]]:
    approved: dict[str, list[dict]] = {}
    prefixes = {
        "amazon_linux_2": "ALAS2-2026-",
        "rhel_9": "RHSA-2026:",
        "ubuntu_22_04": "USN-7",
        "windows_server_2022": "KB50",
    }
    for family, prefix in prefixes.items():
        patches = []
        for i in range(per_family):
            cves = [f"CVE-2026-{rng.randint(1000, 49999)}" for _ in range(rng.randint(0, 6))]
            patches.append(
                {
                    "id": f"{prefix}{2100 + i}",
                    "title": f"Important: kernel and openssl security update {i}",
                    "severity": rng.choice(["Critical", "Important", "Moderate", "Low"]),
                    "classification": "Security",
                    "cves": cves,
                    "released": f"2026-11-{rng.randint(1, 20):02d}",
                }
            )
        approved[family] = patches
    return approved


_SEVERITY_NAMES = {"Critical": "Critical", "Important": "High", "Moderate": "Medium", "Low": "Low"}
_SLA_DAYS = {"Critical": 15, "High": 30, "Medium": 90, "Low": 180}
_CRITICALITY_WEIGHT = {"low": 0.8, "medium": 1.0, "high": 1.15, "critical": 1.3}


def _controls(n_events: int) -> list[dict]:
    """SOC 2 CC6.1..CC8.1 evidenced; PCI DSS 6.3.3 and 10.5.1 evidenced, 10.2 missing; references."""

    def control(
        framework: str, control_id: str, title: str, status: str, evidenced: list, missing: list, url: str
    ):
        return {
            "framework": framework,
            "control_id": control_id,
            "title": title,
            "status": status,
            "evidenced": [{"event": event, "count": count} for event, count in evidenced],
            "missing": missing,
            "references": [url],
        }

    return [
        control(
            "soc2",
            "CC6.1",
            "Logical access security",
            "evidenced",
            [("access.reviewed", 1)],
            [],
            "https://truvocyber.com/blog/soc-2-cc6-1-logical-access-security-1",
        ),
        control(
            "soc2",
            "CC7.1",
            "Detection of vulnerabilities and configuration changes",
            "evidenced",
            [("inventory.collected", 3), ("risk.assessed", 1), ("preflight.evaluated", 3)],
            [],
            "https://ac5labs.com/soc2-readiness/controls/CC7.1",
        ),
        control(
            "soc2",
            "CC7.2",
            "Monitoring of system components for anomalies",
            "evidenced",
            [("preflight.evaluated", 3), ("verify.host", n_events), ("preflight.held", 2)],
            [],
            "https://watchdogsecurity.io/soc2/monitor-for-anomalies-and-malicious-acts",
        ),
        control(
            "soc2",
            "CC8.1",
            "Change management",
            "evidenced",
            [
                ("plan.frozen", 1),
                ("backup.completed", 3),
                ("patch.sent", 3),
                ("stage.verified", 3),
                ("evidence.written", 1),
                ("approval.answered", 1),
            ],
            [],
            "https://hicomply.com/soc-2/soc-2-controls-change-management-cc8",
        ),
        control(
            "pci_dss",
            "6.3.3",
            "Known vulnerabilities are patched in time",
            "evidenced",
            [("risk.assessed", 1), ("patch.sent", 3), ("stage.verified", 3), ("exceptions.applied", 1)],
            [],
            "https://withpci.com/requirements/6/6.3/6.3.3.html",
        ),
        control(
            "pci_dss",
            MISSING_CONTROL_ID,
            "Audit logs of actions",
            "missing",
            [],
            [
                "evidence.written",
                f"events_attributed: 3 of {n_events} events lack actor, action, time or result",
            ],
            "https://withpci.com/requirements/10/10.2/10.2.2",
        ),
        control(
            "pci_dss",
            "10.5.1",
            "Audit log retention",
            "evidenced",
            [("evidence.written", 1)],
            [],
            "https://withpci.com/requirements/10/10.5/10.5.1",
        ),
        control(
            "references",
            "NIST-SP-800-40r4-RISK-RESPONSE",
            "Patching as risk response, verified",
            "evidenced",
            [("inventory.collected", 3), ("risk.assessed", 1), ("patch.sent", 3), ("verify.host", n_events)],
            [],
            "https://doi.org/10.6028/NIST.SP.800-40r4",
        ),
        control(
            "references",
            "NIST-SP-800-40r4-REPORTING",
            "Patch documentation, audit logging and reporting",
            "partial",
            [("evidence.written", 1)],
            ["evidence.distributed"],
            "https://doi.org/10.6028/NIST.SP.800-40r4",
        ),
    ]


def _summarise_controls(controls: list[dict]) -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = {}
    for c in controls:
        counts = summary.setdefault(c["framework"], {"evidenced": 0, "partial": 0, "missing": 0, "total": 0})
        counts[c["status"]] += 1
        counts["total"] += 1
    return summary


def _acceptance(
    ident: str, hosts: list[str] | None, approved_on: dt.date, expires_on: dt.date, **extra: Any
) -> dict:
    scope_hosts = ", ".join(hosts) if hosts is not None else "every host"
    return {
        "id": ident,
        "scope": f"all patches on {scope_hosts}",
        "hosts": hosts,
        "patches": None,
        "risk_rating": "Medium",
        "justification": "Vendor-certified core banking build; patches wait for the vendor's certification.",
        "compensating_control": "Hosts isolated in a segmented VLAN; EDR in block mode; weekly scans.",
        "requested_by": "Priya Raman (core banking)",
        "approver": ACTIVE_EXCEPTION_APPROVER,
        "approver_role": "CISO",
        "approved_on": approved_on.isoformat(),
        "expires_on": expires_on.isoformat(),
        "days_left": (expires_on - CYCLE_DATE).days,
        "ticket": "CHG0041877",
        **extra,
    }


def _exceptions(hosts: list[dict]) -> dict:
    excepted = [h for h in hosts if h["final_state"] == "excepted"]
    active = _acceptance(
        ACTIVE_EXCEPTION_ID,
        [h["name"] for h in excepted[:3]] or ["alpha-prod-core-00001"],
        dt.date(2026, 6, 30),
        dt.date(2026, 12, 31),
    )
    expired = _acceptance(
        EXPIRED_EXCEPTION_ID,
        [HELD_HOST_NAME],
        dt.date(2025, 10, 15),
        dt.date(2026, 10, 31),
        approver="Marcus Lee",
        approver_role="VP Information Security",
        ticket="CHG0038810",
        risk_rating="High",
    )
    lapsed = [
        {"host_id": h["host_id"], "name": h["name"], "exception_id": EXPIRED_EXCEPTION_ID}
        for h in hosts
        if h["name"] == HELD_HOST_NAME
    ]
    applied = [
        {
            "host_id": h["host_id"],
            "name": h["name"],
            "exception_id": ACTIVE_EXCEPTION_ID,
            "expires_on": active["expires_on"],
            "previous_state": "non_compliant",
            "previous_reason": f"{h['missing_before']} approved patches missing",
        }
        for h in sorted(excepted, key=lambda h: (h["name"], h["host_id"]))
    ]
    soon = [{"id": a["id"], "expires_on": a["expires_on"], "days_left": a["days_left"]} for a in [active]]
    return {
        "tenant_id": "cu_alpha",
        "as_of": CYCLE_DATE.isoformat(),
        "active": [active],
        "expired": [expired],
        "not_yet_valid": [],
        "applied": applied,
        "unused": [] if applied else [ACTIVE_EXCEPTION_ID],
        "expiring_soon": [s for s in soon if s["days_left"] <= 45],
        "partial": [],
        "lapsed": lapsed,
    }


def _access(rng: random.Random, n_grants: int) -> dict:
    people = [
        ("mgarcia", "Maria Garcia"),
        ("jdoe", "John Doe"),
        ("akim", "Alex Kim"),
        ("tnguyen", "Thao Nguyen"),
        ("rpatel", "Ravi Patel"),
        ("break-glass", "Break-glass administrator"),
    ]
    sets = [
        (
            "PatchcycleOperator",
            ["arn:aws:iam::aws:policy/AmazonSSMFullAccess"],
            "PT8H",
            "group patch-operators",
        ),
        ("PatchcycleAuditor", ["arn:aws:iam::aws:policy/ReadOnlyAccess"], "PT4H", "group audit-readers"),
        ("AdministratorAccess", ["arn:aws:iam::aws:policy/AdministratorAccess"], "PT1H", "direct assignment"),
    ]
    grants = []
    for i in range(n_grants):
        user, display = people[i % len(people)] if i < len(people) else (f"user{i:04d}", f"User {i:04d}")
        name, policies, duration, via = sets[0 if i == 0 else rng.randrange(len(sets))]
        grants.append(
            {
                "account": ("111111111111", "022222222222")[i % 2],
                "permission_set": name,
                "managed_policies": policies,
                "session_duration": duration,
                "user_name": user,
                "display_name": display,
                "email": f"{user}@alphafcu.example",
                "via": via,
            }
        )
    grants.sort(key=lambda r: (r["account"], r["permission_set"], r["user_name"]))
    return {
        "reviewed_at": "2026-11-22T01:55:00+00:00",
        "principals": len({g["user_name"] for g in grants}),
        "permission_sets": sorted({g["permission_set"] for g in grants}),
        "grants": grants,
    }


def _risk(rng: random.Random, hosts: list[dict], approved: dict[str, list[dict]], limit: int) -> dict:
    """Every approved patch on every in-scope host, on its SLA clock; at most ``limit`` open rows kept."""
    per_patch: dict[str, tuple[bool, float, dt.date, str, str]] = {}
    for family in sorted(approved):
        for index, patch in enumerate(approved[family]):
            severity = _SEVERITY_NAMES.get(patch["severity"], "Medium")
            kev = index == 0 or rng.random() < 0.12
            released = dt.date.fromisoformat(patch["released"])
            if kev:
                due, source = released + dt.timedelta(days=14), "CISA KEV"
            elif severity == "Critical":
                due, source = released + dt.timedelta(days=30), "PCI DSS 6.3.3"
            else:
                days = _SLA_DAYS[severity]
                due, source = (
                    released + dt.timedelta(days=days),
                    f"tenant policy ({severity.lower()}: {days} days)",
                )
            base = {"Critical": 9.1, "High": 7.5, "Medium": 5.0, "Low": 2.5}[severity] + rng.uniform(
                -1.0, 0.8
            )
            per_patch[patch["id"]] = (kev, round(base, 1), due, source, severity)
    statuses: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    by_priority: Counter[str] = Counter()
    rows: list[dict] = []
    for host in hosts:
        if host["final_state"] == "out_of_scope":
            continue
        patched = host["final_state"] == "patched"
        for patch in approved.get(host["os_family"], []):
            kev, base, due, source, severity = per_patch[patch["id"]]
            if patched:
                statuses["met" if due >= CYCLE_DATE else "late"] += 1
                continue
            score = round(min(10.0, base * _CRITICALITY_WEIGHT[host["criticality"]]), 1)
            priority = "P1" if kev or score >= 9 else "P2" if score >= 7 else "P3" if score >= 4 else "P4"
            days_left = (due - CYCLE_DATE).days
            status = "overdue" if days_left < 0 else "due_soon" if days_left <= 7 else "open"
            statuses[status] += 1
            by_priority[priority] += 1
            if status == "overdue":
                overdue[severity] += 1
            if len(rows) < limit:
                reasons = [f"{severity} severity as {base:.1f}"]
                reasons.append(
                    f"{host['criticality']} criticality x{_CRITICALITY_WEIGHT[host['criticality']]:g}"
                )
                if kev:
                    reasons.append(f"in CISA KEV ({(patch['cves'] or ['CVE-2026-1000'])[0]}, due {due})")
                rows.append(
                    {
                        "host_id": host["host_id"],
                        "name": host["name"],
                        "environment": host["environment"],
                        "patch_id": patch["id"],
                        "severity": severity,
                        "priority": priority,
                        "score": score,
                        "kev": kev,
                        "epss_percentile": round(rng.random(), 2),
                        "due": due.isoformat(),
                        "due_source": source,
                        "status": status,
                        "days_overdue": max(0, -days_left),
                        "reasons": reasons,
                    }
                )
    rows.sort(key=lambda r: (r["priority"], r["due"], r["name"], r["patch_id"]))
    return {
        "as_of": CYCLE_DATE.isoformat(),
        "feeds": {
            "kev_catalog_version": KEV_CATALOG_VERSION,
            "epss_model_version": "v2025.03.14",
            "epss_score_date": "2026-11-21T12:55:00Z",
            "source": "committed snapshot include/feeds (2026-11-21)",
        },
        "summary": {
            "by_status": dict(sorted(statuses.items())),
            "open_by_priority": dict(sorted(by_priority.items())),
            "overdue_by_severity": {s: overdue.get(s, 0) for s in ("Critical", "High", "Medium", "Low")},
            "open": sum(by_priority.values()),
        },
        "open": rows,
        "open_truncated": sum(by_priority.values()) > len(rows),
    }


def _trend(summary: dict, outcome: str) -> list[dict]:
    history = [(0.71, 0.93, "completed"), (0.64, 0.9, "completed"), (0.69, 0.86, "partial")]
    points = [
        {"cycle_date": date, "compliance_before": before, "compliance_after": after, "outcome": result}
        for date, (before, after, result) in zip(TREND_DATES, history, strict=False)
    ]
    points.append(
        {
            "cycle_date": TREND_DATES[-1],
            "compliance_before": summary["compliance_before"],
            "compliance_after": summary["compliance_after"],
            "outcome": outcome,
        }
    )
    return points


def add_audit_sections(
    evidence: dict, *, seed: int = 7, open_risk_rows: int = 6, access_grants: int = 6
) -> dict:
    """Add realistic ``controls``, ``controls_summary``, ``retention``, ``exceptions``, ``access``,
    ``risk`` and ``trend`` sections to ``evidence`` (in place; also returned).

    SOC 2 CC6.1..CC8.1 are evidenced, PCI DSS 10.2 is missing; one active acceptance
    (ACTIVE_EXCEPTION_ID, approved by ACTIVE_EXCEPTION_APPROVER) excepts the excepted hosts and one
    expired (EXPIRED_EXCEPTION_ID); the first open risk row's patch is in KEV; a 4-point trend.
    """
    rng = random.Random(seed * 7919 + 1)
    controls = _controls(max(len(evidence["events"]), 1))
    evidence["controls"] = controls
    evidence["controls_summary"] = _summarise_controls(controls)
    evidence["retention"] = {"days": RETENTION_DAYS, "mode": "COMPLIANCE"}
    evidence["exceptions"] = _exceptions(evidence["hosts"])
    evidence["access"] = _access(rng, access_grants)
    evidence["risk"] = _risk(rng, evidence["hosts"], evidence["plan"]["approved"], open_risk_rows)
    evidence["trend"] = _trend(evidence["summary"], evidence["cycle"]["outcome"])
    return evidence


def make_evidence(
    n_hosts: int = 40,
    *,
    seed: int = 7,
    outcome: str = "failed",
    patches_per_family: int = 8,
    sections: bool = False,
    open_risk_rows: int = 6,
    access_grants: int = 6,
    schema_version: str = "1.0",
    not_assessed: int = 1,
) -> dict:
    """Build a realistic, internally consistent evidence document (schema 1.0) with ``n_hosts`` hosts.

    ``schema_version="1.1"`` adds that version's facts (see :func:`_add_schema_1_1_hosts` and
    :func:`_plan_1_1`): ``not_assessed`` more hosts and one GCP host whose installed version drifted.

    The first two hosts (when ``n_hosts >= 2``) are a failed and a held prod host with known
    names and reasons (FAILED_HOST_NAME/REASON, HELD_HOST_NAME/REASON).

    ``sections=True`` adds the audit sections (``controls``, ``controls_summary``, ``retention``,
    ``exceptions``, ``access``, ``risk`` with at most ``open_risk_rows`` open rows, ``trend``); see
    :func:`add_audit_sections`. Without it the document has none of them, like older documents.
    """
    rng = random.Random(seed)
    hosts: list[dict] = []
    if n_hosts >= 2:
        hosts.append(
            _make_host(rng, 0, "failed", name=FAILED_HOST_NAME, environment="prod", reason=FAILED_HOST_REASON)
        )
        hosts.append(
            _make_host(rng, 1, "held", name=HELD_HOST_NAME, environment="prod", reason=HELD_HOST_REASON)
        )
    hosts += [_make_host(rng, i) for i in range(len(hosts), n_hosts)]
    v = schema_version
    if v != "1.0":
        _add_schema_1_1_hosts(hosts, not_assessed)
    if v not in ("1.0", "1.1", "1.2"):
        _add_schema_1_3_hosts(hosts)

    total = _rollup(hosts, v)
    summary: dict[str, Any] = {
        "hosts_total": len(hosts),
        "in_scope": total["in_scope"],
        "patched": total["patched"],
        "failed": total["failed"],
        "held": total["held"],
        "excepted": sum(h["final_state"] == "excepted" for h in hosts),
        "not_run": total["not_run"],
        "out_of_scope": sum(h["final_state"] == "out_of_scope" for h in hosts),
        "compliance_before": total["compliance_before"],
        "compliance_after": total["compliance_after"],
        "by_environment": {
            env: _rollup([h for h in hosts if h["environment"] == env], v)
            for env in ENVIRONMENTS
            if any(h["environment"] == env for h in hosts)
        },
        "by_cloud": {
            cloud: _rollup([h for h in hosts if h["cloud"] == cloud], v)
            for cloud in sorted({h["cloud"] for h in hosts})
        },
    }
    if v != "1.0":
        summary.update(non_compliant=total["non_compliant"], not_assessed=total["not_assessed"])
    stages = []
    status_for = {
        "nonprod": "succeeded",
        "staging": "succeeded",
        "prod": "failed" if outcome == "failed" else "succeeded",
    }
    for offset, env in enumerate(ENVIRONMENTS):
        env_hosts = [h for h in hosts if h["environment"] == env and h["final_state"] != "out_of_scope"]
        failed = sum(h["final_state"] == "failed" for h in env_hosts)
        extra = (
            {}
            if v == "1.0"
            else {"hosts_not_assessed": sum(h["final_state"] == "not_assessed" for h in env_hosts)}
        )
        stages.append(
            {
                **extra,
                "environment": env,
                "status": status_for[env],
                "started_at": f"2026-11-22T0{2 + offset}:05:00+00:00",
                "finished_at": f"2026-11-22T0{2 + offset}:55:00+00:00",
                "hosts_targeted": len(env_hosts),
                "hosts_succeeded": len(env_hosts) - failed,
                "hosts_failed": failed,
                "backups": sum(h["backup_id"] is not None for h in env_hosts),
                "command_ids": sorted({h["command_id"] for h in env_hosts if h["command_id"]})[:5],
                "reason": f"{failed} hosts failed (threshold 0) & rollback <not> required"
                if failed
                else None,
            }
        )
    plan_hash = "".join(rng.choice("0123456789abcdef") for _ in range(64))
    events = []
    for host in hosts[:50]:
        if host["backup_id"]:
            events.append(
                {
                    "at": "2026-11-22T02:10:00+00:00",
                    "actor": "airflow:patch_cycle__cu_alpha",
                    "action": "backup.created",
                    "target": host["host_id"],
                    "result": "ok",
                    "details": {"backup_id": host["backup_id"]},
                }
            )
    evidence: dict[str, Any] = {
        "schema_version": schema_version,
        "tenant": {
            "id": "cu_alpha",
            "display_name": "Alpha Federal Credit Union",
            "frameworks": ["soc2", "pci_dss"],
        },
        "cycle": {
            "cycle_date": "2026-11-22",
            "run_id": "manual__2026-11-22T02:00:00+00:00",
            "plan_hash": plan_hash,
            "dry_run": False,
            "started_at": "2026-11-22T02:00:00+00:00",
            "finished_at": "2026-11-22T05:01:00+00:00",
            "outcome": outcome,
            "generated_by": "patchcycle 0.1.0",
        },
        "summary": summary,
        "stages": stages,
        "hosts": hosts,
        "plan": {
            "hash": plan_hash,
            "cycle_date": "2026-11-22",
            "approved": _approved_patches(rng, patches_per_family),
        },
        "events": events,
    }
    if v != "1.0":
        evidence["plan"]["baselines"] = _plan_1_1(evidence["plan"]["approved"])
    if sections:
        add_audit_sections(evidence, seed=seed, open_risk_rows=open_risk_rows, access_grants=access_grants)
    return evidence


def empty_evidence() -> dict:
    """An evidence document with no hosts, stages, patches or events and all-zero counts."""
    evidence = make_evidence(0, outcome="planned", patches_per_family=0)
    evidence["plan"]["approved"] = {}
    evidence["summary"]["by_environment"] = {}
    evidence["summary"]["by_cloud"] = {}
    evidence["stages"] = []
    return evidence
