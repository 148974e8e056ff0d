"""Verification of packs and of the chain between cycles (pure)."""

from __future__ import annotations

import pytest

from patchcycle.reports.manifest import build_manifest, manifest_sha256
from patchcycle.reports.verification import PackCopy, verify_packs


def make_pack(cycle: str, previous: str | None, created: str, **overrides: bytes) -> PackCopy:
    files = {"report.pdf": b"%PDF " + cycle.encode(), "evidence.json": b"{}", "hosts.csv": b"host_id\n"}
    manifest = build_manifest(
        files,
        tenant_id="cu_x",
        cycle_date=cycle,
        run_id=f"r-{cycle}",
        created_at=created,
        previous_manifest_sha256=previous,
    )
    return PackCopy(f"pack-{cycle}", manifest, {**files, **overrides})


def chain(n: int) -> list[PackCopy]:
    packs, previous = [], None
    for i, cycle in enumerate(["2026-08-23", "2026-09-27", "2026-10-25", "2026-11-22"][:n]):
        pack = make_pack(cycle, previous, f"2026-11-0{i + 1}T00:00:00+00:00")
        packs.append(pack)
        previous = manifest_sha256(pack.manifest)
    return packs


def test_an_intact_chain_verifies() -> None:
    report = verify_packs(chain(4))
    assert report.ok
    assert report.lines() == [
        f"ok   pack-{c}" for c in ("2026-08-23", "2026-09-27", "2026-10-25", "2026-11-22")
    ]


def test_a_changed_file_is_named() -> None:
    packs = chain(2)
    packs[1].files["hosts.csv"] = b"host_id\ni-evil\n"
    report = verify_packs(packs)
    assert not report.ok
    assert any("hosts.csv" in p for p in report.problems["pack-2026-09-27"])
    assert report.problems["pack-2026-08-23"] == []


def test_a_removed_pack_breaks_its_successors_link() -> None:
    packs = chain(3)
    del packs[1]
    report = verify_packs(packs)
    assert report.problems["pack-2026-10-25"] == [
        f"chain broken: the previous manifest {packs[1].manifest['previous_manifest_sha256'][:12]} "
        "is not among the earlier packs"
    ]


def test_an_edited_manifest_breaks_the_next_link() -> None:
    packs = chain(2)
    packs[0].manifest["created_at"] = "2026-11-05T00:00:00+00:00"  # any edit changes its digest
    report = verify_packs(packs)
    assert any(p.startswith("chain broken") for p in report.problems["pack-2026-09-27"])


def test_a_reordered_manifest_is_caught() -> None:
    (pack,) = chain(1)
    pack.manifest["files"].reverse()
    pack.files = {f["name"]: pack.files[f["name"]] for f in pack.manifest["files"]}
    report = verify_packs([pack])
    assert report.problems["pack-2026-08-23"] == [
        "files reordered in the manifest: ['hosts.csv', 'evidence.json', 'report.pdf'] "
        "(a pack lists them as ['report.pdf', 'evidence.json', 'hosts.csv'])"
    ]


def test_the_newest_pack_is_anchored_by_the_digest_sent_with_its_link() -> None:
    packs = chain(2)
    assert verify_packs(packs, manifest_sha256(packs[1].manifest)).ok
    report = verify_packs(packs, "0" * 64)
    assert not report.ok


def test_a_missing_first_link_is_caught_when_an_earlier_pack_existed() -> None:
    first = make_pack("2026-10-25", None, "2026-11-01T00:00:00+00:00")
    second = make_pack("2026-11-22", None, "2026-11-02T00:00:00+00:00")
    report = verify_packs([first, second])
    assert report.problems["pack-2026-11-22"] == [
        "chain broken: no previous manifest recorded although an earlier cycle's pack existed"
    ]


@pytest.mark.parametrize(
    ("versions", "retained", "expected"),
    [
        ({"hosts.csv": 2}, None, "hosts.csv was overwritten after it was written (2 versions)"),
        (None, {"report.pdf": False}, "report.pdf has no Object Lock retention"),
    ],
)
def test_storage_facts(versions, retained, expected) -> None:
    (pack,) = chain(1)
    pack.versions, pack.retained = versions, retained
    assert verify_packs([pack]).problems["pack-2026-08-23"] == [expected]


def addendum(pack: PackCopy, **extra: object) -> dict:
    return {"kind": "distribution_addendum", "pack_manifest_sha256": pack.digest, **extra}


def test_a_distribution_addendum_is_chained_to_its_packs_manifest() -> None:
    from patchcycle.reports.verification import AddendumCopy

    packs = chain(2)
    addenda = [
        AddendumCopy("add-1", addendum(packs[1]), pack_location=packs[1].location, versions=1, retained=True),
        # A downloaded copy does not say which folder its pack is in: any pack read with that digest.
        AddendumCopy("add-2", addendum(packs[0])),
    ]
    report = verify_packs(packs, addenda=addenda)
    assert report.ok, report.lines()
    assert report.lines()[-2:] == ["ok   add-1", "ok   add-2"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # The pack's manifest was replaced after the pack was sent (an edit that keeps the pack itself
        # consistent): the addendum still names the manifest that was distributed.
        (
            lambda p: {"document": addendum(p, pack_manifest_sha256="0" * 64), "pack_location": p.location},
            "the pack changed after it was distributed",
        ),
        (
            lambda p: {"document": addendum(p), "pack_location": "pack-elsewhere"},
            "its pack pack-elsewhere is not there",
        ),
        (lambda p: {"document": addendum(p, pack_manifest_sha256="f" * 64)}, "the manifest of no pack read"),
        (lambda p: {"document": {"kind": "something else"}}, "not a distribution addendum"),
        (lambda p: {"document": addendum(p), "versions": 2}, "overwritten after it was written (2 versions)"),
        (lambda p: {"document": addendum(p), "retained": False}, "no Object Lock retention"),
    ],
)
def test_a_broken_addendum_link_is_named(make, expected) -> None:
    from patchcycle.reports.verification import AddendumCopy

    packs = chain(1)
    report = verify_packs(packs, addenda=[AddendumCopy("add", **make(packs[0]))])
    assert not report.ok
    (line,) = [line for line in report.lines() if line.startswith("FAIL add:")]
    assert expected in line
