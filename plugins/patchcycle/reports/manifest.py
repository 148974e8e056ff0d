"""Tamper-evidence for an evidence pack: a SHA-256 manifest and its verification.

A pack is a set of named files (report PDF, per-host CSV, evidence JSON, ...) written to the
evidence store next to ``manifest.json``. The manifest lists every file's SHA-256 and size in
a fixed order and records the SHA-256 of the previous cycle's manifest, so packs form a chain.
Pure functions (no I/O).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = "1.0"
ALGORITHM = "sha256"

_REQUIRED_KEYS: tuple[str, ...] = (
    "schema_version",
    "tenant_id",
    "cycle_date",
    "run_id",
    "created_at",
    "algorithm",
    "previous_manifest_sha256",
    "files",
)
_REQUIRED_FILE_KEYS: tuple[str, ...] = ("name", "sha256", "bytes")
_PREFIX = 12


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def build_manifest(
    files: dict[str, bytes],
    *,
    tenant_id: str,
    cycle_date: str,
    run_id: str,
    created_at: str,
    previous_manifest_sha256: str | None,
) -> dict[str, Any]:
    """Build the manifest of a pack; ``files`` order is kept and is part of what is verified.

    Raises ValueError if ``files`` contains :data:`MANIFEST_NAME` (a manifest cannot list itself)
    and TypeError if a file's content is not bytes.
    """
    entries = []
    for name, data in files.items():
        if name == MANIFEST_NAME:
            raise ValueError(f"{MANIFEST_NAME} cannot be listed in its own manifest")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"content of {name} must be bytes, not {type(data).__name__}")
        raw = bytes(data)
        entries.append({"name": name, "sha256": sha256_hex(raw), "bytes": len(raw)})
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "tenant_id": tenant_id,
        "cycle_date": cycle_date,
        "run_id": run_id,
        "created_at": created_at,
        "algorithm": ALGORITHM,
        "previous_manifest_sha256": previous_manifest_sha256,
        "files": entries,
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Serialise a manifest canonically (sorted keys, compact, UTF-8, trailing newline)."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """Return the SHA-256 of the canonical manifest bytes (the next pack's previous_manifest_sha256)."""
    return sha256_hex(manifest_bytes(manifest))


def _check_shape(manifest: Any) -> list[Mapping[str, Any]]:
    """Raise ValueError naming the first missing key; return the file entries."""
    if not isinstance(manifest, Mapping):
        raise ValueError(f"manifest must be a JSON object, not {type(manifest).__name__}")
    for key in _REQUIRED_KEYS:
        if key not in manifest:
            raise ValueError(f"manifest is missing key {key!r}")
    entries = manifest["files"]
    if not isinstance(entries, list):
        raise ValueError("manifest key 'files' must be a list")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ValueError(f"manifest files[{index}] must be an object")
        for key in _REQUIRED_FILE_KEYS:
            if key not in entry:
                raise ValueError(f"manifest files[{index}] is missing key {key!r}")
    return entries


def _prefix(digest: Any) -> str:
    return str(digest)[:_PREFIX]


def verify_pack(  # noqa: C901 - one check per manifest property an auditor relies on, each reported by name
    manifest: dict[str, Any],
    files: dict[str, bytes],
    *,
    expected_previous_sha256: str | None = None,
) -> list[str]:
    """Check a pack against its manifest; return human-readable problems (empty if intact).

    Reports missing, changed, extra and reordered files, a size mismatch, an unexpected schema
    version or algorithm, and a broken chain when ``expected_previous_sha256`` is given.
    A ``manifest.json`` entry in ``files`` is ignored. Never raises for a tampered pack; raises
    ValueError only when ``manifest`` is not a manifest (a required key is missing).
    """
    entries = _check_shape(manifest)
    problems: list[str] = []

    if manifest["schema_version"] != MANIFEST_SCHEMA_VERSION:
        problems.append(
            f"unexpected schema_version {manifest['schema_version']!r} (expected {MANIFEST_SCHEMA_VERSION!r})"
        )
    if manifest["algorithm"] != ALGORITHM:
        problems.append(f"unexpected algorithm {manifest['algorithm']!r} (files checked with {ALGORITHM})")

    listed: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        name = str(entry["name"])
        if name in seen:
            problems.append(f"file {name} listed more than once in the manifest")
            continue
        seen.add(name)
        listed.append(name)
        if name not in files:
            problems.append(f"missing file {name}")
            continue
        data = bytes(files[name])
        actual = sha256_hex(data)
        expected = str(entry["sha256"]).lower()
        if actual != expected:
            problems.append(
                f"changed file {name}: sha256 {_prefix(actual)}... "
                f"does not match manifest {_prefix(expected)}..."
            )
        elif entry["bytes"] != len(data):
            problems.append(f"size mismatch for {name}: {len(data)} bytes, manifest says {entry['bytes']}")

    present = [name for name in files if name != MANIFEST_NAME]
    for name in present:
        if name not in seen:
            problems.append(f"extra file {name} not in manifest")

    expected_order = [name for name in listed if name in files]
    got_order = [name for name in present if name in seen]
    if expected_order != got_order:
        problems.append(f"files reordered: expected {expected_order} got {got_order}")

    if expected_previous_sha256 is not None:
        previous = manifest["previous_manifest_sha256"]
        if previous is None or str(previous).lower() != expected_previous_sha256.lower():
            problems.append(
                f"broken chain: previous_manifest_sha256 is {previous!r}, "
                f"expected {expected_previous_sha256!r}"
            )
    return problems
