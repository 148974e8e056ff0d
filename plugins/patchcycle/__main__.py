"""``python -m patchcycle``: commands for people who never open Airflow.

    python -m patchcycle verify-evidence cu_alpha [2026-11-22] [--endpoint-url URL]
    python -m patchcycle verify-evidence --dir out/cu_alpha
    python -m patchcycle terraform-vars cu_alpha [--as-of 2026-11-22] [--account ID --region R]

``verify-evidence`` checks every evidence pack of a tenant (or of one cycle) in the tenant's evidence
bucket, or a downloaded copy, and the chain between cycles. It prints one line per pack; its exit codes
are ``VERIFY_EXIT_CODES`` (0 intact, 1 tampered, 2 bad usage or input, 3 the packs could not be read).
Reading the bucket uses the standard AWS credential chain (an auditor's read-only role).

``terraform-vars`` prints the tenant's ``terraform.tfvars.json`` for include/terraform (one AWS account
and region per root instance) from the tenant file, through the functions the cycle itself uses
(:mod:`patchcycle.domain.terraform_vars`); exit 0, or 2 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from patchcycle.reports.manifest import MANIFEST_NAME
from patchcycle.reports.verification import AddendumCopy, PackCopy, verify_packs

EXIT_INTACT, EXIT_TAMPERED, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3
VERIFY_EXIT_CODES = """exit codes:
  0  every pack is intact, and so is the chain between them
  1  tampered: a file was changed, removed, added or reordered, a chain link is broken (between
     cycles, or from a distribution addendum to its pack), or (bucket) an object was overwritten or
     is not locked
  2  bad usage or input: unknown tenant (the known ids are listed), a cycle that is not YYYY-MM-DD,
     an endpoint URL that is not http(s)://host[:port]
  3  the packs could not be read: no AWS credentials, endpoint unreachable, access denied, no such
     bucket, folder or pack (one line names the bucket/key or folder and the cause)"""


class PackReadError(Exception):
    """A source could not be read: ``location`` (s3://bucket/key or a folder) and the cause."""

    def __init__(self, location: str, cause: object) -> None:
        self.location = location
        super().__init__(f"cannot read {location}: {_one_line(cause)}")


def _one_line(cause: object) -> str:
    return " ".join(str(cause).split()) or type(cause).__name__


def _manifest_json(data: bytes) -> dict:
    """A manifest as read; one that is not a JSON object reads as empty (verification reports it)."""
    try:
        manifest = json.loads(data)
    except ValueError:
        return {}
    return manifest if isinstance(manifest, dict) else {}


def packs_from_directory(root: Path) -> list[PackCopy]:
    """Every directory under ``root`` (or ``root`` itself) that holds a manifest, files in name order.

    Raises :class:`PackReadError` when ``root`` is not a folder or a file in it cannot be read.
    """
    if not root.is_dir():
        raise PackReadError(str(root), "no such folder")
    packs = []
    try:
        for manifest_path in sorted(root.rglob(MANIFEST_NAME)):
            folder = manifest_path.parent
            manifest = _manifest_json(manifest_path.read_bytes())
            listed = [f.get("name") for f in manifest.get("files", []) if isinstance(f, dict)]
            # Listed files first in manifest order, then anything extra: a reordering shows in the
            # manifest, extra or missing files show as such.
            present = {p.name: p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME}
            ordered = [n for n in listed if n in present] + sorted(n for n in present if n not in listed)
            packs.append(PackCopy(str(folder), manifest, {n: present[n].read_bytes() for n in ordered}))
    except OSError as exc:
        raise PackReadError(exc.filename or str(root), exc.strerror or exc) from exc
    return packs


ADDENDUM_SUFFIX = ".distribution.json"
"""A downloaded addendum's name (the demo's ``<cycle>.distribution.json`` beside the pack folder)."""


def addenda_from_directory(root: Path) -> list[AddendumCopy]:
    """Every distribution addendum under ``root``: ``*.distribution.json`` or ``distribution/*.json``."""
    found = sorted(
        {
            *root.rglob(f"*{ADDENDUM_SUFFIX}"),
            *(p for p in root.rglob("*.json") if p.parent.name == "distribution"),
        }
    )
    try:
        return [AddendumCopy(str(path), _manifest_json(path.read_bytes())) for path in found]
    except OSError as exc:
        raise PackReadError(exc.filename or str(root), exc.strerror or exc) from exc


EVIDENCE_CHAINS = ("cycles", "drift", "falcon-rollout")
"""The chains of packs in a tenant's evidence bucket, each under its own prefix and linked on its own: the
cycles' (monthly and zero-day), the daily drift reports' (``reports/drift_store.py``) and the Falcon sensor
roll-outs' (``operators/falcon_rollout.py``)."""


def evidence_from_bucket(
    bucket: str, cycle: str | None, endpoint_url: str | None, region: str, chain: str = "cycles"
) -> tuple[list[PackCopy], list[AddendumCopy]]:
    """Every pack in the evidence bucket (of one cycle, or all), and every distribution addendum
    (``runs/<run>/distribution/<pack>.json``, with the location of the pack it belongs to), each object
    with its versions and whether it is locked; from one listing of the bucket's versions.

    Raises :class:`PackReadError` naming the bucket and key when the bucket cannot be read (no
    credentials, endpoint unreachable, access denied, no such bucket or key).
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = f"{chain}/{cycle}/" if cycle else f"{chain}/"
    location = f"s3://{bucket}/{prefix}"
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        versions: dict[str, int] = {}
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                versions[version["Key"]] = versions.get(version["Key"], 0) + 1
        manifests = sorted(k for k in versions if k.endswith(f"/{MANIFEST_NAME}") and "/pack" in k)
        packs = []
        for manifest_key in manifests:
            location = f"s3://{bucket}/{manifest_key}"
            folder = manifest_key.rsplit("/", 1)[0]
            manifest = _manifest_json(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
            names = sorted(k.rsplit("/", 1)[1] for k in versions if k.rsplit("/", 1)[0] == folder)
            listed = [f.get("name") for f in manifest.get("files", []) if isinstance(f, dict)]
            ordered = [n for n in listed if n in names] + [
                n for n in names if n not in listed and n != MANIFEST_NAME
            ]
            files, retained, counts = {}, {}, {}
            for name in [*ordered, MANIFEST_NAME]:
                location = f"s3://{bucket}/{folder}/{name}"
                obj = s3.get_object(Bucket=bucket, Key=f"{folder}/{name}")
                if name != MANIFEST_NAME:
                    files[name] = obj["Body"].read()
                retained[name] = bool(obj.get("ObjectLockRetainUntilDate"))
                counts[name] = versions[f"{folder}/{name}"]
            packs.append(PackCopy(f"s3://{bucket}/{folder}", manifest, files, counts, retained))
        addenda = []
        for key in sorted(k for k in versions if "/distribution/" in k and k.endswith(".json")):
            location = f"s3://{bucket}/{key}"
            obj = s3.get_object(Bucket=bucket, Key=key)
            run, _, name = key.partition("/distribution/")
            addenda.append(
                AddendumCopy(
                    location,
                    _manifest_json(obj["Body"].read()),
                    pack_location=f"s3://{bucket}/{run}/{name.removesuffix('.json')}",
                    versions=versions[key],
                    retained=bool(obj.get("ObjectLockRetainUntilDate")),
                )
            )
    except (BotoCoreError, ClientError) as exc:
        raise PackReadError(location, exc) from exc
    return packs, addenda


def _known_tenants(tenants_dir: Path) -> list[str]:
    try:
        return sorted(p.stem for p in tenants_dir.iterdir() if p.suffix.lower() in (".yaml", ".yml"))
    except OSError:
        return []


def _cycle_date(value: str) -> str:
    try:
        valid = dt.date.fromisoformat(value).isoformat() == value  # not 20261122 or 2026-W47-7
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date YYYY-MM-DD")
    return value


def _endpoint_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s)://host[:port] URL")
    return value


def _fail(code: int, message: str) -> int:
    print(f"verify-evidence: {message}", file=sys.stderr)
    return code


def _verify(args: argparse.Namespace) -> int:
    try:
        if args.dir:
            where = args.dir
            packs = packs_from_directory(Path(args.dir))
            addenda = addenda_from_directory(Path(args.dir))
        else:
            if not args.tenant:
                return _fail(EXIT_USAGE, "give a tenant id or --dir (see --help)")
            from patchcycle.config.loader import TenantConfigError, default_tenants_dir, load_tenant

            tenants_dir = default_tenants_dir()
            known = _known_tenants(tenants_dir)
            if args.tenant not in known:
                return _fail(
                    EXIT_USAGE,
                    f"unknown tenant {args.tenant!r} (known in {tenants_dir}: {', '.join(known) or 'none'})",
                )
            path = next(p for p in tenants_dir.iterdir() if p.stem == args.tenant)
            try:
                tenant = load_tenant(path)
            except TenantConfigError as exc:
                return _fail(EXIT_USAGE, _one_line(exc))
            bucket = args.bucket or tenant.evidence.bucket
            where = f"s3://{bucket}/{args.chain}/{args.cycle + '/' if args.cycle else ''}"
            packs, addenda = evidence_from_bucket(
                bucket, args.cycle, args.endpoint_url, tenant.evidence.region, args.chain
            )
    except PackReadError as exc:
        return _fail(EXIT_UNREADABLE, str(exc))
    if not packs:
        return _fail(EXIT_UNREADABLE, f"cannot read {where}: no evidence pack ({MANIFEST_NAME}) there")
    report = verify_packs(packs, args.expect_manifest, addenda)
    for line in report.lines():
        print(line)
    print(
        f"{len(packs)} pack(s), {len(addenda)} distribution addend{'um' if len(addenda) == 1 else 'a'}: "
        f"{'intact' if report.ok else 'PROBLEMS FOUND'}"
    )
    return EXIT_INTACT if report.ok else EXIT_TAMPERED


def _terraform_vars(args: argparse.Namespace) -> int:
    from patchcycle.config.loader import TenantConfigError, default_tenants_dir, load_tenant
    from patchcycle.domain.controls import load_control_catalogs
    from patchcycle.domain.schedule import most_recent_cycle_date
    from patchcycle.domain.terraform_vars import TerraformVarsError, terraform_vars

    def fail(message: str) -> int:
        print(f"terraform-vars: {message}", file=sys.stderr)
        return EXIT_USAGE

    tenants_dir = default_tenants_dir()
    known = _known_tenants(tenants_dir)
    if args.tenant not in known:
        return fail(f"unknown tenant {args.tenant!r} (known in {tenants_dir}: {', '.join(known) or 'none'})")
    try:
        tenant = load_tenant(next(p for p in tenants_dir.iterdir() if p.stem == args.tenant))
    except TenantConfigError as exc:
        return fail(_one_line(exc))
    as_of = (
        dt.date.fromisoformat(args.as_of) if args.as_of else most_recent_cycle_date(dt.datetime.now(dt.UTC))
    )
    try:
        tfvars = terraform_vars(tenant, load_control_catalogs(), as_of, args.account, args.region)
    except TerraformVarsError as exc:
        return fail(str(exc))
    print(json.dumps(tfvars, indent=2, sort_keys=True))
    return EXIT_INTACT


def main(argv: list[str] | None = None) -> int:
    """The ``python -m patchcycle`` command line: parse ``argv``, run ``verify-evidence`` or
    ``terraform-vars``, and return its exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m patchcycle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser(
        "verify-evidence",
        help="check evidence packs and their chain",
        description="Check evidence packs and the chain between cycles; one line per pack.",
        epilog=VERIFY_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("tenant", nargs="?", help="tenant id (reads its evidence bucket)")
    verify.add_argument(
        "cycle", nargs="?", type=_cycle_date, help="cycle date YYYY-MM-DD (default: every cycle)"
    )
    verify.add_argument("--dir", help="verify a downloaded copy instead (a pack folder or a folder of them)")
    verify.add_argument("--bucket", help="override the tenant's evidence bucket")
    verify.add_argument(
        "--chain",
        choices=EVIDENCE_CHAINS,
        default="cycles",
        help="which chain of packs: the cycles' (cycles/, the default) or the daily drift reports' "
        "(drift/; the day is then the report's day)",
    )
    verify.add_argument("--endpoint-url", type=_endpoint_url, help="S3 endpoint (e.g. fleetsim's URL)")
    verify.add_argument(
        "--expect-manifest", metavar="SHA256", help="the manifest digest that came with the pack's link"
    )
    tfvars = sub.add_parser(
        "terraform-vars",
        help="print a tenant's terraform.tfvars.json for include/terraform",
        description="Print the tenant's terraform.tfvars.json (one AWS account and region) from its file.",
    )
    tfvars.add_argument("tenant", help="tenant id")
    tfvars.add_argument(
        "--as-of",
        type=_cycle_date,
        help="cycle date whose cutoff seeds new baselines (default: the most recent fourth Sunday)",
    )
    tfvars.add_argument("--account", help="AWS account id (needed when the tenant has several AWS scopes)")
    tfvars.add_argument("--region", help="AWS region (needed when the tenant has several AWS scopes)")
    args = parser.parse_args(argv)
    if args.command == "terraform-vars":
        return _terraform_vars(args)
    return _verify(args)


if __name__ == "__main__":
    sys.exit(main())
