"""Verify evidence packs and the chain between them, from the evidence bucket or a downloaded copy.

What "untouched" means here, and what is checked:

- every file the manifest lists is present, byte for byte (SHA-256 and size), in the listed order,
  and nothing else is in the pack;
- each pack's ``previous_manifest_sha256`` is the digest of a manifest of an earlier cycle that is
  present and intact, so a pack cannot be removed or replaced without breaking its successor's link;
- in the bucket, each object has exactly one version (a second version means it was overwritten after
  it was written) and an Object Lock retention date (it cannot be deleted before it);
- each distribution addendum (written after the pack was sent, beside it) names the digest of its
  pack's manifest as it is now: a pack changed after it was distributed, or an addendum moved to
  another pack, breaks that link.

Pure: sources are read by :mod:`patchcycle.__main__`; this module only judges what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from patchcycle.reports.manifest import MANIFEST_NAME, manifest_sha256, verify_pack

# The order in which a pack lists its files (schema 1.0); a manifest listing them otherwise was edited.
PACK_FILE_ORDER = ("report.pdf", "evidence.json", "hosts.csv")


@dataclass
class PackCopy:
    """One pack as read from a source: its manifest, its files in source order, and storage facts."""

    location: str
    manifest: dict[str, Any]
    files: dict[str, bytes]
    # Storage facts where the source has them (S3): versions per object, and whether each is locked.
    versions: Mapping[str, int] | None = None
    retained: Mapping[str, bool] | None = None

    @property
    def cycle_date(self) -> str:
        """The manifest's ``cycle_date`` (empty when absent)."""
        return str(self.manifest.get("cycle_date", ""))

    @property
    def created_at(self) -> str:
        """The manifest's ``created_at`` (empty when absent)."""
        return str(self.manifest.get("created_at", ""))

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical manifest: what the next pack's ``previous_manifest_sha256`` names."""
        return manifest_sha256(self.manifest)


@dataclass
class AddendumCopy:
    """One distribution addendum as read: its document, and where its pack is in the same source when
    the source says (the bucket: ``.../distribution/<pack>.json`` belongs to ``.../<pack>``)."""

    location: str
    document: dict[str, Any]
    pack_location: str | None = None
    versions: int | None = None
    retained: bool | None = None


@dataclass
class VerificationReport:
    """Problems found per pack location; empty lists mean intact."""

    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no location has a problem."""
        return not any(self.problems.values())

    def lines(self) -> list[str]:
        """One ``FAIL <location>: <problem>`` line per problem; ``ok   <location>`` for an intact location."""
        out: list[str] = []
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


def _addendum_problems(addendum: AddendumCopy, packs: list[PackCopy]) -> list[str]:
    document = addendum.document
    if document.get("kind") != "distribution_addendum":
        return ["not a distribution addendum (its kind is not distribution_addendum)"]
    digest = str(document.get("pack_manifest_sha256") or "")
    problems = []
    if addendum.pack_location is not None:
        pack = next((p for p in packs if p.location == addendum.pack_location), None)
        if pack is None:
            problems.append(f"its pack {addendum.pack_location} is not there")
        elif pack.digest != digest:
            problems.append(
                f"chained to manifest {digest[:12]}, but its pack's manifest is now {pack.digest[:12]}: "
                "the pack changed after it was distributed"
            )
    elif not any(p.digest == digest for p in packs):
        problems.append(f"chained to manifest {digest[:12]}, which is the manifest of no pack read")
    if addendum.versions is not None and addendum.versions > 1:
        problems.append(f"overwritten after it was written ({addendum.versions} versions)")
    if addendum.retained is False:
        problems.append("no Object Lock retention")
    return problems


def verify_packs(
    packs: list[PackCopy],
    expected_manifest_sha256: str | None = None,
    addenda: list[AddendumCopy] | None = None,
) -> VerificationReport:
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
    for addendum in addenda or []:
        report.problems[addendum.location] = _addendum_problems(addendum, packs)
    return report
