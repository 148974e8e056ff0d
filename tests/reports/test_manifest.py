"""The SHA-256 manifest of an evidence pack and its verification."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from patchcycle.reports.manifest import (
    MANIFEST_NAME,
    build_manifest,
    manifest_bytes,
    manifest_sha256,
    sha256_hex,
    verify_pack,
)

PREVIOUS = "a" * 64


def _files() -> dict[str, bytes]:
    return {
        "report.pdf": b"%PDF-1.4 fake report\n%%EOF\n",
        "hosts.csv": "host_id,name\ni-1,café-01\n".encode(),
        "evidence.json": b'{"schema_version":"1.0"}\n',
    }


def _manifest(files: dict[str, bytes] | None = None, previous: str | None = PREVIOUS) -> dict:
    return build_manifest(
        _files() if files is None else files,
        tenant_id="cu_alpha",
        cycle_date="2026-11-22",
        run_id="manual__2026-11-22T02:00:00+00:00",
        created_at="2026-11-22T05:02:00+00:00",
        previous_manifest_sha256=previous,
    )


def test_build_manifest_shape() -> None:
    files = _files()
    manifest = _manifest(files)
    assert manifest["schema_version"] == "1.0"
    assert manifest["algorithm"] == "sha256"
    assert manifest["tenant_id"] == "cu_alpha"
    assert manifest["cycle_date"] == "2026-11-22"
    assert manifest["run_id"] == "manual__2026-11-22T02:00:00+00:00"
    assert manifest["created_at"] == "2026-11-22T05:02:00+00:00"
    assert manifest["previous_manifest_sha256"] == PREVIOUS
    assert [f["name"] for f in manifest["files"]] == ["report.pdf", "hosts.csv", "evidence.json"]
    for entry in manifest["files"]:
        assert entry["sha256"] == hashlib.sha256(files[entry["name"]]).hexdigest()
        assert entry["bytes"] == len(files[entry["name"]])
    assert MANIFEST_NAME == "manifest.json"


def test_build_rejects_self_listing_and_non_bytes() -> None:
    with pytest.raises(ValueError, match="manifest.json"):
        _manifest({**_files(), MANIFEST_NAME: b"{}"})
    with pytest.raises(TypeError, match="hosts.csv"):
        _manifest({"hosts.csv": "not bytes"})  # type: ignore[dict-item]


def test_manifest_bytes_canonical_and_stable() -> None:
    manifest = _manifest()
    data = manifest_bytes(manifest)
    assert data.endswith(b"}\n") and data.count(b"\n") == 1
    assert b": " not in data and b", " not in data
    assert json.loads(data) == manifest
    reordered = dict(reversed(list(manifest.items())))
    assert manifest_bytes(reordered) == data
    assert manifest_sha256(manifest) == sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert manifest_bytes(_manifest()) == data


def test_manifest_bytes_keeps_unicode() -> None:
    manifest = _manifest()
    manifest["tenant_id"] = "cu_ñandú"
    assert "cu_ñandú".encode() in manifest_bytes(manifest)


def test_clean_pack_verifies() -> None:
    files = _files()
    manifest = _manifest(files)
    assert verify_pack(manifest, files) == []
    assert verify_pack(manifest, files, expected_previous_sha256=PREVIOUS) == []
    assert verify_pack(manifest, files, expected_previous_sha256=PREVIOUS.upper()) == []


def test_verify_after_json_round_trip_and_with_manifest_file_present() -> None:
    files = _files()
    manifest = _manifest(files)
    loaded = json.loads(manifest_bytes(manifest))
    assert verify_pack(loaded, {**files, MANIFEST_NAME: manifest_bytes(manifest)}) == []


def test_changed_byte_names_the_file() -> None:
    files = _files()
    manifest = _manifest(files)
    tampered = dict(files)
    data = bytearray(tampered["hosts.csv"])
    data[-2] ^= 0x01
    tampered["hosts.csv"] = bytes(data)
    problems = verify_pack(manifest, tampered)
    assert len(problems) == 1
    assert "hosts.csv" in problems[0] and "changed" in problems[0]
    assert sha256_hex(bytes(data))[:12] in problems[0]
    assert sha256_hex(files["hosts.csv"])[:12] in problems[0]


def test_missing_file() -> None:
    files = _files()
    manifest = _manifest(files)
    del files["report.pdf"]
    assert verify_pack(manifest, files) == ["missing file report.pdf"]


def test_extra_file() -> None:
    files = _files()
    manifest = _manifest(files)
    problems = verify_pack(manifest, {**files, "notes.txt": b"hi"})
    assert problems == ["extra file notes.txt not in manifest"]


def test_reordered_files() -> None:
    files = _files()
    manifest = _manifest(files)
    reordered = {name: files[name] for name in ["hosts.csv", "report.pdf", "evidence.json"]}
    problems = verify_pack(manifest, reordered)
    assert problems == [
        "files reordered: expected ['report.pdf', 'hosts.csv', 'evidence.json'] "
        "got ['hosts.csv', 'report.pdf', 'evidence.json']"
    ]


def test_missing_file_alone_is_not_reported_as_reordering() -> None:
    files = _files()
    manifest = _manifest(files)
    problems = verify_pack(
        manifest, {"report.pdf": files["report.pdf"], "evidence.json": files["evidence.json"]}
    )
    assert problems == ["missing file hosts.csv"]


def test_chain_mismatch() -> None:
    files = _files()
    manifest = _manifest(files)
    problems = verify_pack(manifest, files, expected_previous_sha256="b" * 64)
    assert len(problems) == 1 and "broken chain" in problems[0] and "b" * 64 in problems[0]
    first = _manifest(files, previous=None)
    assert verify_pack(first, files) == []
    assert "broken chain" in verify_pack(first, files, expected_previous_sha256=PREVIOUS)[0]


def test_chain_links_consecutive_packs() -> None:
    first = _manifest(previous=None)
    second = _manifest(previous=manifest_sha256(first))
    assert verify_pack(second, _files(), expected_previous_sha256=manifest_sha256(first)) == []
    edited = copy.deepcopy(first)
    edited["created_at"] = "2026-11-22T06:00:00+00:00"
    assert verify_pack(second, _files(), expected_previous_sha256=manifest_sha256(edited))


def test_tampered_manifest_fields_are_reported_not_raised() -> None:
    files = _files()
    manifest = _manifest(files)
    manifest["files"][0]["sha256"] = "0" * 64
    manifest["files"][1]["bytes"] = 1
    manifest["files"].append(dict(manifest["files"][2]))
    manifest["algorithm"] = "md5"
    problems = verify_pack(manifest, files)
    joined = "\n".join(problems)
    assert "changed file report.pdf" in joined
    assert "size mismatch for hosts.csv" in joined
    assert "evidence.json listed more than once" in joined
    assert "unexpected algorithm 'md5'" in joined


def test_several_problems_at_once() -> None:
    files = _files()
    manifest = _manifest(files)
    tampered = {"evidence.json": b"{}", "report.pdf": files["report.pdf"], "extra.bin": b"x"}
    problems = verify_pack(manifest, tampered, expected_previous_sha256="c" * 64)
    assert any(p == "missing file hosts.csv" for p in problems)
    assert any(p.startswith("changed file evidence.json") for p in problems)
    assert any(p == "extra file extra.bin not in manifest" for p in problems)
    assert any(p.startswith("files reordered") for p in problems)
    assert any(p.startswith("broken chain") for p in problems)


@pytest.mark.parametrize(
    "key", ["schema_version", "tenant_id", "run_id", "algorithm", "previous_manifest_sha256", "files"]
)
def test_malformed_manifest_raises_naming_the_key(key: str) -> None:
    manifest = _manifest()
    del manifest[key]
    with pytest.raises(ValueError, match=key):
        verify_pack(manifest, _files())


@pytest.mark.parametrize("key", ["name", "sha256", "bytes"])
def test_malformed_file_entry_raises_naming_the_key(key: str) -> None:
    manifest = _manifest()
    del manifest["files"][1][key]
    with pytest.raises(ValueError, match=rf"files\[1\].*{key}"):
        verify_pack(manifest, _files())


def test_not_a_manifest_at_all() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        verify_pack(["not", "a", "manifest"], _files())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'files' must be a list"):
        verify_pack({**_manifest(), "files": "report.pdf"}, _files())
