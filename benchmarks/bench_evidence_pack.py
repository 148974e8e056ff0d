"""Benchmark: render a 10,000-host evidence pack (PDF + CSV + JSON + manifest) and measure it.

Run from the repo root:  .venv/bin/python benchmarks/bench_evidence_pack.py [--hosts N] [--repeat R]

Prints one line of JSON: {"hosts", "seconds", "peak_mb", "pack_bytes", "bytes_per_1000_hosts", ...}.
``seconds`` is the median wall time of ``--repeat`` runs after one warm-up run; ``peak_mb`` is the
tracemalloc peak of one extra, traced run (tracing slows code, so it is not timed); ``maxrss_mb``
is the process's peak resident set size (resource.getrusage) at the end, input document included.

The document carries the audit sections the PDF reports (controls and retention, risk and SLA with up
to ``--open-rows`` open rows, a 12-cycle trend, the exception register, the access review with
``--grants`` grants), sized like a 10,000-host tenant's; ``--without-sections`` leaves them out, as in
documents written before they existed. The document is the one the renderers' tests check
(:func:`devtools.evidence_documents.make_evidence`, newest schema version, 80 approved patches per OS
family). ``pdf_without_sections`` times the PDF of the same document
without them, for comparison.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from devtools.evidence_documents import make_evidence  # noqa: E402
from patchcycle.domain.evidence import EVIDENCE_SCHEMA_VERSION  # noqa: E402
from patchcycle.reports.manifest import build_manifest, manifest_bytes  # noqa: E402
from patchcycle.reports.pdf import render_cycle_report  # noqa: E402
from patchcycle.reports.tables import hosts_csv  # noqa: E402

AUDIT_KEYS = ("controls", "controls_summary", "retention", "risk", "trend", "exceptions", "access")
PATCHES_PER_FAMILY = 80


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

    evidence = make_evidence(
        args.hosts,
        seed=args.seed,
        patches_per_family=PATCHES_PER_FAMILY,
        sections=not args.without_sections,
        open_risk_rows=args.open_rows,
        access_grants=args.grants,
        schema_version=EVIDENCE_SCHEMA_VERSION,
    )
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
