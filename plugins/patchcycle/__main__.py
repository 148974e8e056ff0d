"""``python -m patchcycle``: commands for people who never open Airflow.

    python -m patchcycle verify-evidence cu_alpha [2026-11-22] [--endpoint-url URL]
    python -m patchcycle verify-evidence --dir out/cu_alpha

``verify-evidence`` checks every evidence pack of a tenant (or of one cycle) in the tenant's evidence
bucket, or a downloaded copy, and the chain between cycles. It prints one line per pack and exits 0
when everything is intact, 1 when anything was changed, removed, reordered or overwritten, 2 on bad
usage. Reading the bucket uses the standard AWS credential chain (an auditor's read-only role).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from patchcycle.reports.manifest import MANIFEST_NAME
from patchcycle.reports.verification import PackCopy, verify_packs


def packs_from_directory(root: Path) -> list[PackCopy]:
    """Every directory under ``root`` (or ``root`` itself) that holds a manifest, files in name order."""
    manifests = sorted(root.rglob(MANIFEST_NAME))
    packs = []
    for manifest_path in manifests:
        folder = manifest_path.parent
        manifest = json.loads(manifest_path.read_bytes())
        listed = [f.get("name") for f in manifest.get("files", [])]
        # Listed files first in manifest order, then anything extra: a reordering shows in the manifest,
        # extra or missing files show as such.
        present = {p.name: p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME}
        ordered = [n for n in listed if n in present] + sorted(n for n in present if n not in listed)
        packs.append(PackCopy(str(folder), manifest, {n: present[n].read_bytes() for n in ordered}))
    return packs


def packs_from_bucket(
    bucket: str, cycle: str | None, endpoint_url: str | None, region: str
) -> list[PackCopy]:
    """Every pack in the evidence bucket (of one cycle, or all), with versions and retention per object."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
    prefix = f"cycles/{cycle}/" if cycle else "cycles/"
    versions: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            versions[version["Key"]] = versions.get(version["Key"], 0) + 1
    manifests = sorted(k for k in versions if k.endswith(f"/{MANIFEST_NAME}") and "/pack" in k)
    packs = []
    for manifest_key in manifests:
        folder = manifest_key.rsplit("/", 1)[0]
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        names = sorted(k.rsplit("/", 1)[1] for k in versions if k.rsplit("/", 1)[0] == folder)
        listed = [f.get("name") for f in manifest.get("files", [])]
        ordered = [n for n in listed if n in names] + [
            n for n in names if n not in listed and n != MANIFEST_NAME
        ]
        files, retained, counts = {}, {}, {}
        for name in [*ordered, MANIFEST_NAME]:
            obj = s3.get_object(Bucket=bucket, Key=f"{folder}/{name}")
            if name != MANIFEST_NAME:
                files[name] = obj["Body"].read()
            retained[name] = bool(obj.get("ObjectLockRetainUntilDate"))
            counts[name] = versions[f"{folder}/{name}"]
        packs.append(PackCopy(f"s3://{bucket}/{folder}", manifest, files, counts, retained))
    return packs


def _verify(args: argparse.Namespace) -> int:
    if args.dir:
        packs = packs_from_directory(Path(args.dir))
    else:
        if not args.tenant:
            print("verify-evidence: give a tenant id or --dir", file=sys.stderr)
            return 2
        from patchcycle.config.loader import default_tenants_dir, load_tenant

        tenant = load_tenant(default_tenants_dir() / f"{args.tenant}.yaml")
        bucket = args.bucket or tenant.evidence.bucket
        packs = packs_from_bucket(bucket, args.cycle, args.endpoint_url, tenant.evidence.region)
    if not packs:
        print("verify-evidence: no evidence pack found", file=sys.stderr)
        return 1
    report = verify_packs(packs, args.expect_manifest)
    for line in report.lines():
        print(line)
    print(f"{len(packs)} pack(s): {'intact' if report.ok else 'PROBLEMS FOUND'}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m patchcycle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify-evidence", help="check evidence packs and their chain")
    verify.add_argument("tenant", nargs="?", help="tenant id (reads its evidence bucket)")
    verify.add_argument("cycle", nargs="?", help="cycle date YYYY-MM-DD (default: every cycle)")
    verify.add_argument("--dir", help="verify a downloaded copy instead (a pack folder or a folder of them)")
    verify.add_argument("--bucket", help="override the tenant's evidence bucket")
    verify.add_argument("--endpoint-url", help="S3 endpoint (e.g. fleetsim's URL)")
    verify.add_argument(
        "--expect-manifest", metavar="SHA256", help="the manifest digest that came with the pack's link"
    )
    args = parser.parse_args(argv)
    return _verify(args)


if __name__ == "__main__":
    sys.exit(main())
