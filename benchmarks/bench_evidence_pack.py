"""Benchmark: render a 10,000-host evidence pack (PDF + CSV + JSON + manifest) and measure it.

Run from the repo root:  .venv/bin/python benchmarks/bench_evidence_pack.py [--hosts N] [--repeat R]

Prints one line of JSON: {"hosts", "seconds", "peak_mb", "pack_bytes", "bytes_per_1000_hosts", ...}.
``seconds`` is the median wall time of ``--repeat`` runs after one warm-up run; ``peak_mb`` is the
tracemalloc peak of one extra, traced run (tracing slows code, so it is not timed); ``maxrss_mb``
is the process's peak resident set size (resource.getrusage) at the end, input document included.

The document carries the audit sections the PDF reports (controls and retention, risk and SLA with up
to ``--open-rows`` open rows, a 12-cycle trend, the exception register, the access review with
``--grants`` grants), sized like a 10,000-host tenant's; ``--without-sections`` leaves them out, as in
documents written before they existed. ``pdf_without_sections`` times the PDF of the same document
without them, for comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from patchcycle.reports.manifest import build_manifest, manifest_bytes  # noqa: E402
from patchcycle.reports.pdf import render_cycle_report  # noqa: E402
from patchcycle.reports.tables import hosts_csv  # noqa: E402

ENVIRONMENTS = ("nonprod", "staging", "prod")
CLOUDS = ("aws", "aws", "azure", "gcp")
OS_FAMILIES = {
    "aws": ("amazon_linux_2", "Amazon Linux 2"),
    "azure": ("windows_server_2022", "Windows Server 2022 Datacenter"),
    "gcp": ("ubuntu_22_04", "Ubuntu 22.04 LTS"),
}
STATES = (
    ("patched",) * 80
    + ("failed",) * 4
    + ("held",) * 4
    + ("non_compliant",) * 2
    + ("excepted",) * 2
    + ("not_run",) * 2
    + ("out_of_scope",) * 6
)
REASONS = {
    "failed": "patch install exit code 1: yum transaction check error",
    "held": "change freeze: quarter-end ledger close",
    "non_compliant": "2 approved patches still missing after install",
    "excepted": "risk exception RX-2026-014 until 2026-12-31",
    "not_run": "stage prod not run: staging gate failed",
    "out_of_scope": "tag patchcycle:scope=none",
}


def _rollup(hosts: list[dict]) -> dict[str, Any]:
    in_scope = [h for h in hosts if h["final_state"] != "out_of_scope"]
    n = len(in_scope) or 1
    return {
        "in_scope": len(in_scope),
        "patched": sum(h["final_state"] == "patched" for h in hosts),
        "failed": sum(h["final_state"] == "failed" for h in hosts),
        "held": sum(h["final_state"] == "held" for h in hosts),
        "not_run": sum(h["final_state"] == "not_run" for h in hosts),
        "compliance_before": round(sum(h["missing_before"] == 0 for h in in_scope) / n, 4),
        "compliance_after": round(sum(h["missing_after"] == 0 for h in in_scope) / n, 4),
    }


def synthetic_evidence(n_hosts: int, seed: int = 20261122) -> dict:
    """A deterministic evidence document (schema 1.0) with ``n_hosts`` hosts."""
    rng = random.Random(seed)
    hosts = []
    for i in range(n_hosts):
        cloud = rng.choice(CLOUDS)
        env = rng.choice(("nonprod", "staging", "prod", "prod"))
        state = rng.choice(STATES)
        os_family, platform = OS_FAMILIES[cloud]
        name = f"alpha-{env}-{rng.choice(('web', 'app', 'db', 'batch'))}-{i:05d}"
        account = {
            "aws": "111111111111",
            "azure": "5f1c0a7e-2b8d-4c1e-9a3f-0d6b7e8c9a10",
            "gcp": "alpha-prod",
        }[cloud]
        host_id = {
            "aws": f"i-0{rng.randrange(16**16):016x}",
            "azure": f"/subscriptions/{account}/resourceGroups/rg-{env}/providers/"
            f"Microsoft.Compute/virtualMachines/{name}",
            "gcp": str(rng.randrange(10**18, 10**19)),
        }[cloud]
        ran = state in ("patched", "failed", "non_compliant")
        missing_before = rng.randint(0, 9) if state != "out_of_scope" else 0
        hosts.append(
            {
                "host_id": host_id,
                "name": name,
                "cloud": cloud,
                "account": account,
                "region": {"aws": "us-east-1", "azure": "eastus2", "gcp": "us-central1"}[cloud],
                "environment": env,
                "os_family": os_family,
                "platform": platform,
                "criticality": rng.choice(("low", "medium", "high", "critical")),
                "agent_status": "Online",
                "final_state": state,
                "reason": REASONS.get(state),
                "backup_id": f"ami-0{rng.randrange(16**16):016x}" if ran else None,
                "command_id": f"{rng.randrange(16**8):08x}-4c1e-4a3f-9d6b-{i:012d}" if ran else None,
                "missing_before": missing_before,
                "missing_after": 0 if state == "patched" else missing_before,
                "failed_after": rng.randint(1, 3) if state == "failed" else 0,
                "installed_after": rng.randint(20, 400),
            }
        )
    plan_hash = f"{rng.randrange(16**64):064x}"
    approved = {
        family: [
            {
                "id": f"{family.upper()}-2026-{2100 + j}",
                "title": f"Security update {j}",
                "severity": rng.choice(("Critical", "Important", "Moderate", "Low")),
                "classification": "Security",
                "cves": [f"CVE-2026-{rng.randint(1000, 49999)}" for _ in range(rng.randint(0, 5))],
                "released": f"2026-11-{rng.randint(1, 20):02d}",
            }
            for j in range(80)
        ]
        for family, _ in OS_FAMILIES.values()
    }
    total = _rollup(hosts)
    return {
        "schema_version": "1.0",
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
            "outcome": "failed",
            "generated_by": "patchcycle 0.1.0",
        },
        "summary": {
            "hosts_total": len(hosts),
            **{k: total[k] for k in ("in_scope", "patched", "failed", "held", "not_run")},
            "excepted": sum(h["final_state"] == "excepted" for h in hosts),
            "out_of_scope": sum(h["final_state"] == "out_of_scope" for h in hosts),
            "compliance_before": total["compliance_before"],
            "compliance_after": total["compliance_after"],
            "by_environment": {e: _rollup([h for h in hosts if h["environment"] == e]) for e in ENVIRONMENTS},
            "by_cloud": {c: _rollup([h for h in hosts if h["cloud"] == c]) for c in sorted(set(CLOUDS))},
        },
        "stages": [
            {
                "environment": env,
                "status": "failed" if env == "prod" else "succeeded",
                "started_at": "2026-11-22T02:05:00+00:00",
                "finished_at": "2026-11-22T02:55:00+00:00",
                "hosts_targeted": sum(h["environment"] == env for h in hosts),
                "hosts_succeeded": sum(
                    h["environment"] == env and h["final_state"] == "patched" for h in hosts
                ),
                "hosts_failed": sum(h["environment"] == env and h["final_state"] == "failed" for h in hosts),
                "backups": sum(h["environment"] == env and h["backup_id"] is not None for h in hosts),
                "command_ids": [],
                "reason": "failure threshold exceeded" if env == "prod" else None,
            }
            for env in ENVIRONMENTS
        ],
        "hosts": hosts,
        "plan": {"hash": plan_hash, "cycle_date": "2026-11-22", "approved": approved},
        "events": [
            {
                "at": "2026-11-22T02:10:00+00:00",
                "actor": "airflow:patch_cycle__cu_alpha",
                "action": "backup.created" if h["backup_id"] else "host.skipped",
                "target": h["host_id"],
                "result": "ok",
                "details": {"backup_id": h["backup_id"]},
            }
            for h in hosts
        ],
    }


AUDIT_KEYS = ("controls", "controls_summary", "retention", "risk", "trend", "exceptions", "access")
CYCLE_DATE = dt.date(2026, 11, 22)
CONTROLS = (
    ("soc2", "CC6.1", "Logical access security", ("access.reviewed",)),
    ("soc2", "CC7.1", "Detection of vulnerabilities and configuration changes", ("inventory.collected",)),
    (
        "soc2",
        "CC7.2",
        "Monitoring of system components for anomalies",
        ("preflight.evaluated", "verify.host"),
    ),
    ("soc2", "CC8.1", "Change management", ("plan.frozen", "backup.completed", "patch.sent")),
    ("pci_dss", "6.3.3", "Known vulnerabilities are patched in time", ("risk.assessed", "patch.sent")),
    ("pci_dss", "10.2", "Audit logs of actions", ("evidence.written",)),
    ("pci_dss", "10.5.1", "Audit log retention", ("evidence.written",)),
    (
        "references",
        "NIST-SP-800-40r4-RISK-RESPONSE",
        "Patching as risk response, verified",
        ("risk.assessed",),
    ),
    ("references", "NIST-SP-800-40r4-REPORTING", "Patch documentation, audit logging and reporting", ()),
    ("references", "CIS-v8-7.3", "Automated operating system patch management", ("patch.sent",)),
    ("references", "CIS-v8-7.4", "Automated application patch management", ("patch.sent",)),
)
SEVERITIES = {"Critical": "Critical", "Important": "High", "Moderate": "Medium", "Low": "Low"}


def _controls(n_events: int) -> list[dict[str, Any]]:
    controls = []
    for framework, control_id, title, events in CONTROLS:
        missing = [] if events else ["evidence.distributed"]
        if control_id == "10.2":
            missing = [f"events_attributed: 12 of {n_events} events lack actor, action, time or result"]
        controls.append(
            {
                "framework": framework,
                "control_id": control_id,
                "title": title,
                "status": "missing" if missing and not events else ("partial" if missing else "evidenced"),
                "evidenced": [{"event": e, "count": n_events if e == "verify.host" else 3} for e in events],
                "missing": missing,
                "references": [f"https://example.org/controls/{framework}/{control_id}"],
            }
        )
    return controls


def _acceptance(ident: str, hosts: list[str], approved: dt.date, expires: dt.date) -> dict[str, Any]:
    return {
        "id": ident,
        "scope": f"all patches on {', '.join(hosts)}",
        "hosts": hosts,
        "patches": None,
        "risk_rating": "Medium",
        "justification": "Vendor-certified core banking build; patches wait for the vendor's certification.",
        "compensating_control": "Segmented VLAN; EDR in block mode; weekly authenticated scans.",
        "requested_by": "Priya Raman (core banking)",
        "approver": "Dana Whitfield",
        "approver_role": "CISO",
        "approved_on": approved.isoformat(),
        "expires_on": expires.isoformat(),
        "days_left": (expires - CYCLE_DATE).days,
        "ticket": f"CHG00{41000 + len(ident)}",
    }


def _exceptions(hosts: list[dict]) -> dict[str, Any]:
    excepted = sorted(
        (h for h in hosts if h["final_state"] == "excepted"), key=lambda h: (h["name"], h["host_id"])
    )
    groups = [excepted[i::4] for i in range(4)]
    active = [
        _acceptance(
            f"RX-2026-0{10 + i}",
            [h["name"] for h in group],
            dt.date(2026, 6, 1),
            dt.date(2026, 12, 1 + 7 * i),
        )
        for i, group in enumerate(groups)
    ]
    expired = [
        _acceptance("RX-2025-031", [h["name"] for h in hosts[:40]], dt.date(2025, 9, 1), dt.date(2026, 9, 30))
    ]
    return {
        "tenant_id": "cu_alpha",
        "as_of": CYCLE_DATE.isoformat(),
        "active": active,
        "expired": expired,
        "not_yet_valid": [],
        "applied": [
            {
                "host_id": h["host_id"],
                "name": h["name"],
                "exception_id": active[i % 4]["id"],
                "expires_on": active[i % 4]["expires_on"],
                "previous_state": "non_compliant",
                "previous_reason": f"{h['missing_before']} approved patches missing",
            }
            for i, h in enumerate(excepted)
        ],
        "unused": [],
        "expiring_soon": [
            {"id": a["id"], "expires_on": a["expires_on"], "days_left": a["days_left"]}
            for a in active
            if a["days_left"] <= 30
        ],
        "partial": [],
        "lapsed": [
            {"host_id": h["host_id"], "name": h["name"], "exception_id": "RX-2025-031"}
            for h in hosts[:40]
            if h["final_state"] not in ("patched", "out_of_scope", "excepted")
        ],
    }


def _access(rng: random.Random, n_grants: int) -> dict[str, Any]:
    sets = (
        (
            "PatchcycleOperator",
            "arn:aws:iam::aws:policy/AmazonSSMFullAccess",
            "PT8H",
            "group patch-operators",
        ),
        ("PatchcycleAuditor", "arn:aws:iam::aws:policy/ReadOnlyAccess", "PT4H", "group audit-readers"),
        ("AdministratorAccess", "arn:aws:iam::aws:policy/AdministratorAccess", "PT1H", "direct assignment"),
    )
    grants = []
    for i in range(n_grants):
        name, policy, duration, via = sets[rng.randrange(len(sets))]
        grants.append(
            {
                "account": f"{111111111111 * (1 + i % 9):012d}",
                "permission_set": name,
                "managed_policies": [policy],
                "session_duration": duration,
                "user_name": f"user{i // 3:04d}",
                "display_name": f"Staff member {i // 3:04d}",
                "email": f"user{i // 3:04d}@alphafcu.example",
                "via": via,
            }
        )
    grants.sort(key=lambda g: (g["account"], g["permission_set"], g["user_name"]))
    return {
        "reviewed_at": "2026-11-22T01:55:00+00:00",
        "principals": len({g["user_name"] for g in grants}),
        "permission_sets": sorted({g["permission_set"] for g in grants}),
        "grants": grants,
    }


def _risk(
    rng: random.Random, hosts: list[dict], approved: dict[str, list[dict]], limit: int
) -> dict[str, Any]:
    """Every approved patch on every in-scope host on its SLA clock, like ``risk_and_sla``."""
    clocks = {}
    for patches in approved.values():
        for patch in patches:
            severity = SEVERITIES[patch["severity"]]
            kev = rng.random() < 0.1
            released = dt.date.fromisoformat(patch["released"])
            days = 14 if kev else {"Critical": 30, "High": 30, "Medium": 90, "Low": 180}[severity]
            source = (
                "CISA KEV"
                if kev
                else ("PCI DSS 6.3.3" if severity == "Critical" else f"tenant policy ({days} days)")
            )
            score = {"Critical": 9.0, "High": 7.5, "Medium": 5.0, "Low": 2.5}[severity] + rng.uniform(-1, 1)
            clocks[patch["id"]] = (severity, kev, released + dt.timedelta(days=days), source, round(score, 1))
    statuses: dict[str, int] = {}
    overdue = dict.fromkeys(("Critical", "High", "Medium", "Low"), 0)
    by_priority: dict[str, int] = {}
    rows = []
    for host in hosts:
        if host["final_state"] == "out_of_scope":
            continue
        for patch in approved.get(host["os_family"], []):
            severity, kev, due, source, score = clocks[patch["id"]]
            if host["final_state"] == "patched":
                status = "met" if due >= CYCLE_DATE else "late"
                statuses[status] = statuses.get(status, 0) + 1
                continue
            left = (due - CYCLE_DATE).days
            status = "overdue" if left < 0 else ("due_soon" if left <= 7 else "open")
            priority = "P1" if kev or score >= 9 else ("P2" if score >= 7 else ("P3" if score >= 4 else "P4"))
            statuses[status] = statuses.get(status, 0) + 1
            by_priority[priority] = by_priority.get(priority, 0) + 1
            if status == "overdue":
                overdue[severity] += 1
            if len(rows) < limit:
                reasons = [f"{severity} severity as {score:.1f}", f"{host['criticality']} criticality"]
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
                        "days_overdue": max(0, -left),
                        "reasons": reasons,
                    }
                )
    rows.sort(key=lambda r: (r["priority"], r["due"], r["name"], r["patch_id"]))
    return {
        "as_of": CYCLE_DATE.isoformat(),
        "feeds": {
            "kev_catalog_version": "2026.11.20",
            "epss_model_version": "v2025.03.14",
            "epss_score_date": "2026-11-21T12:55:00Z",
            "source": "committed snapshot include/feeds (2026-11-21)",
        },
        "summary": {
            "by_status": dict(sorted(statuses.items())),
            "open_by_priority": dict(sorted(by_priority.items())),
            "overdue_by_severity": overdue,
            "open": sum(by_priority.values()),
        },
        "open": rows,
        "open_truncated": sum(by_priority.values()) > len(rows),
    }


def add_audit_sections(evidence: dict, *, open_rows: int, grants: int, seed: int) -> dict:
    """Add the audit sections of the PDF to ``evidence`` (in place; also returned)."""
    rng = random.Random(seed + 1)
    controls = _controls(len(evidence["events"]))
    summary: dict[str, dict[str, int]] = {}
    for control in controls:
        counts = summary.setdefault(
            control["framework"], {"evidenced": 0, "partial": 0, "missing": 0, "total": 0}
        )
        counts[control["status"]] += 1
        counts["total"] += 1
    evidence["controls"] = controls
    evidence["controls_summary"] = summary
    evidence["retention"] = {"days": 2555, "mode": "COMPLIANCE"}
    evidence["risk"] = _risk(rng, evidence["hosts"], evidence["plan"]["approved"], open_rows)
    evidence["exceptions"] = _exceptions(evidence["hosts"])
    evidence["access"] = _access(rng, grants)
    evidence["trend"] = [
        {
            "cycle_date": (CYCLE_DATE - dt.timedelta(days=28 * (11 - i))).isoformat(),
            "compliance_before": round(rng.uniform(0.55, 0.75), 4),
            "compliance_after": round(rng.uniform(0.85, 0.97), 4),
            "outcome": rng.choice(("completed", "completed", "partial")),
        }
        for i in range(11)
    ] + [
        {
            "cycle_date": CYCLE_DATE.isoformat(),
            "compliance_before": evidence["summary"]["compliance_before"],
            "compliance_after": evidence["summary"]["compliance_after"],
            "outcome": evidence["cycle"]["outcome"],
        }
    ]
    return evidence


def build_pack(evidence: dict) -> dict[str, bytes]:
    """Render every file of the pack, manifest last; return name -> bytes."""
    files = {
        "report.pdf": render_cycle_report(evidence),
        "hosts.csv": hosts_csv(evidence["hosts"]),
        "evidence.json": json.dumps(evidence, sort_keys=True, ensure_ascii=False).encode("utf-8"),
    }
    manifest = build_manifest(
        files,
        tenant_id=evidence["tenant"]["id"],
        cycle_date=evidence["cycle"]["cycle_date"],
        run_id=evidence["cycle"]["run_id"],
        created_at="2026-11-22T05:02:00+00:00",
        previous_manifest_sha256=None,
    )
    files["manifest.json"] = manifest_bytes(manifest)
    return files


def main() -> None:
    """Run the benchmark and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--open-rows", type=int, default=5000, help="open risk rows kept in the document")
    parser.add_argument("--grants", type=int, default=450, help="access grants in the access review")
    parser.add_argument("--without-sections", action="store_true", help="leave the audit sections out")
    args = parser.parse_args()

    evidence = synthetic_evidence(args.hosts, args.seed)
    if not args.without_sections:
        add_audit_sections(evidence, open_rows=args.open_rows, grants=args.grants, seed=args.seed)
    without_sections = {k: v for k, v in evidence.items() if k not in AUDIT_KEYS}
    build_pack(evidence)  # warm-up: imports, font metrics

    timings = []
    for _ in range(max(1, args.repeat)):
        start = time.perf_counter()
        pack = build_pack(evidence)
        timings.append(time.perf_counter() - start)

    step_seconds: dict[str, float] = {}
    for name, step in (
        ("pdf", lambda: render_cycle_report(evidence)),
        ("pdf_without_sections", lambda: render_cycle_report(without_sections)),
        ("csv", lambda: hosts_csv(evidence["hosts"])),
        ("json", lambda: json.dumps(evidence, sort_keys=True, ensure_ascii=False).encode("utf-8")),
    ):
        start = time.perf_counter()
        step()
        step_seconds[name] = round(time.perf_counter() - start, 3)

    tracemalloc.start()
    build_pack(evidence)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    pack_bytes = sum(len(data) for data in pack.values())
    result = {
        "hosts": args.hosts,
        "sections": not args.without_sections,
        "open_risk_rows": len((evidence.get("risk") or {}).get("open") or []),
        "grants": len((evidence.get("access") or {}).get("grants") or []),
        "seconds": round(statistics.median(timings), 3),
        "peak_mb": round(peak / 2**20, 1),
        "pack_bytes": pack_bytes,
        "bytes_per_1000_hosts": round(pack_bytes / max(args.hosts, 1) * 1000),
        "maxrss_mb": round(maxrss_kb / 1024, 1),
        "files": {name: len(data) for name, data in pack.items()},
        "step_seconds": step_seconds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
