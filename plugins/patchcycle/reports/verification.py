"""Verify evidence packs and the chain between them, from the evidence bucket or a downloaded copy.

What "untouched" means here, and what is checked:

- every file the manifest lists is present, byte for byte (SHA-256 and size), in the listed order,
  and nothing else is in the pack;
- each pack's ``previous_manifest_sha256`` is the digest of a manifest of an earlier cycle that is
  present and intact, so a pack cannot be removed or replaced without breaking its successor's link;
- in the bucket, each object has exactly one version (a second version means it was overwritten after
  it was written) and an Object Lock retention date (it cannot be deleted before it).

Pure: sources are read by :mod:`patchcycle.__main__`; this module only judges what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from patchcycle.reports.manifest import MANIFEST_NAME, manifest_sha256, verify_pack

# The order in which a pack lists its files (schema 1.0); a manifest listing them otherwise was edited.
PACK_FILE_ORDER = ("report.pdf", "evidence.json", "hosts.csv")


@dataclass
class PackCopy:
    """One pack as read from a source: its manifest, its files in source order, and storage facts."""

    location: str
    manifest: dict
    files: dict[str, bytes]
    # Storage facts where the source has them (S3): versions per object, and whether each is locked.
    versions: Mapping[str, int] | None = None
    retained: Mapping[str, bool] | None = None

    @property
    def cycle_date(self) -> str:
        return str(self.manifest.get("cycle_date", ""))

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("created_at", ""))

    @property
    def digest(self) -> str:
        return manifest_sha256(self.manifest)


@dataclass
class VerificationReport:
    """Problems found per pack location; empty lists mean intact."""

    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def lines(self) -> list[str]:
        out = []
        for location, problems in self.problems.items():
            if problems:
                out.extend(f"FAIL {location}: {p}" for p in problems)
            else:
                out.append(f"ok   {location}")
        return out


def _storage_problems(pack: PackCopy) -> list[str]:
    problems = []
    names = [f["name"] for f in pack.manifest.get("files", [])] + [MANIFEST_NAME]
    for name in names:
        if pack.versions is not None and pack.versions.get(name, 1) > 1:
            problems.append(f"{name} was overwritten after it was written ({pack.versions[name]} versions)")
        if pack.retained is not None and name in pack.retained and not pack.retained[name]:
            problems.append(f"{name} has no Object Lock retention")
    return problems


def _order_problems(pack: PackCopy) -> list[str]:
    listed = [f.get("name") for f in pack.manifest.get("files", []) if f.get("name") in PACK_FILE_ORDER]
    expected = [name for name in PACK_FILE_ORDER if name in listed]
    if listed != expected:
        return [f"files reordered in the manifest: {listed} (a pack lists them as {expected})"]
    return []


def verify_packs(packs: list[PackCopy], expected_manifest_sha256: str | None = None) -> VerificationReport:
    """Check every pack on its own, then the chain that links them by cycle date.

    ``expected_manifest_sha256`` is the digest the recipients were sent with the pack's link: it anchors
    the newest pack, which has no successor whose chain link would reveal an edited manifest.
    """
    report = VerificationReport()
    for pack in packs:
        try:
            problems = verify_pack(pack.manifest, pack.files)
        except ValueError as exc:
            problems = [f"manifest is not a valid manifest: {exc}"]
        report.problems[pack.location] = problems + _order_problems(pack) + _storage_problems(pack)
    if expected_manifest_sha256 and not any(p.digest == expected_manifest_sha256 for p in packs):
        for pack in packs:
            report.problems[pack.location].append(
                f"manifest digest {pack.digest[:12]} is not the digest sent with the pack "
                f"({expected_manifest_sha256[:12]})"
            )
    by_digest = {p.digest: p for p in packs}
    for pack in packs:
        previous = pack.manifest.get("previous_manifest_sha256")
        earlier = [p for p in packs if p.cycle_date < pack.cycle_date]
        if previous:
            linked = by_digest.get(previous)
            if linked is None and earlier:
                report.problems[pack.location].append(
                    f"chain broken: the previous manifest {previous[:12]} is not among the earlier packs"
                )
            elif linked is not None and linked.cycle_date >= pack.cycle_date:
                report.problems[pack.location].append(
                    f"chain broken: previous manifest {previous[:12]} is of cycle {linked.cycle_date}, "
                    "not an earlier one"
                )
        elif any(p.created_at < pack.created_at for p in earlier):
            report.problems[pack.location].append(
                "chain broken: no previous manifest recorded although an earlier cycle's pack existed"
            )
    return report
