"""The demo copies each pack into a folder an auditor can verify as is: the pack's files only, and the
distribution addendum beside the folder (it is not in the pack's manifest)."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.demo import download_pack
from devtools.local import REPO, fleetsim_s3, running_fleetsim
from patchcycle.config.loader import load_tenant


def test_the_pack_folder_holds_the_pack_and_the_addendum_sits_beside_it(tmp_path: Path) -> None:
    tenant = load_tenant(REPO / "include" / "tenants" / "cu_birch.yaml")
    run = "cycles/2026-11-22/runs/manual__x"
    with running_fleetsim(REPO / "fleetsim" / "scenarios" / "demo.yaml", tmp_path / "fleetsim") as url:
        s3 = fleetsim_s3(url, tenant.evidence.region)
        objects = {
            f"{run}/pack/evidence.json": json.dumps({"summary": {}}),
            f"{run}/pack/manifest.json": "{}",
            f"{run}/distribution/pack.json": json.dumps({"kind": "distribution_addendum"}),
            f"{run}/events/plan.json": "[]",
        }
        for key, body in objects.items():
            s3.put_object(Bucket=tenant.evidence.bucket, Key=key, Body=body.encode())
        evidence, files = download_pack(url, tenant, tmp_path / "out")
    out = tmp_path / "out" / tenant.id
    assert evidence == {"summary": {}}
    assert sorted(p.name for p in (out / "2026-11-22").iterdir()) == ["evidence.json", "manifest.json"]
    assert json.loads((out / "2026-11-22.distribution.json").read_text())["kind"] == "distribution_addendum"
    assert len(files) == 3
