"""Tenants on one cloud alone plan, patch and verify from that cloud's own sources (no AWS account needed).

The three-cloud scenario's fleet, with cu_alpha's tenant file cut down to its Azure subscription or its
Google Cloud project: the plan reads only that cloud's assessment of what the tenant's hosts miss, and
the evidence says which source each family's plan came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.local import airflow_env, running_fleetsim
from tests.e2e.conftest import HERE, REPO, CycleRunner, write_scenario
from tests.e2e.test_patch_cycle import DAG_ID, NOV, assert_pack_intact
from tests.e2e.test_three_clouds import FIRST_SEEN

pytestmark = [pytest.mark.e2e]

ARC_SOURCE = "azure:patchassessmentresources"
GCP_SOURCE = "gcp:osconfig.inventories"
# An Ubuntu update in the baseline's classification (Security) that no plan of the tenant has seen
# before today: Update Manager dates no Linux update, so the plan cannot age it and leaves it out. Sent
# with classificationsToInclude, installPatches would install it "over and above" the plan's masks
# (https://learn.microsoft.com/azure/update-manager/manage-arc-enabled-servers-programmatically,
# "Update deployment", request body): it must still be missing on every machine afterwards.
UNPLANNED_UBUNTU = {
    "id": "USN-7166-1",
    "os_family": "ubuntu_22_04",
    "title": "curl 7.81.0-1ubuntu1.20",
    "classification": "Security",
    "severity": "Important",
    "cves": ["CVE-2024-11053"],
    "released": "2026-11-12",
}


def single_cloud(cloud: str, **fleet_extra: Any) -> Any:
    """A fixture: the three-cloud fleet, and cu_alpha's tenant file with only ``cloud`` left
    (``fleet_extra``: settings of that cloud's fleet in the scenario, e.g. a fault)."""

    @pytest.fixture
    def fixture(airflow_home: Path, tmp_path: Path) -> Iterator[CycleRunner]:
        data = yaml.safe_load((HERE / "scenarios" / "alpha_three_clouds.yaml").read_text())
        data["tenants"][0]["faults"] = {}  # no faults, and every sensor supports the plan's kernels:
        for group in data["tenants"][0][cloud]["groups"]:  # this test is about where the plan comes from
            group.pop("falcon_sensor", None)
        data["tenants"][0][cloud].update(fleet_extra)
        scenario = write_scenario(
            tmp_path / "scenario.yaml",
            "alpha_three_clouds.yaml",
            tenants=data["tenants"],
            patch_catalog=[*data["patch_catalog"], UNPLANNED_UBUNTU],
        )
        tenants = tmp_path / "tenants"
        tenants.mkdir()
        for source in (REPO / "include" / "tenants").glob("*.yaml"):
            (tenants / source.name).write_text(source.read_text())
        alpha = yaml.safe_load((tenants / "cu_alpha.yaml").read_text())
        alpha["clouds"] = {cloud: alpha["clouds"][cloud]}
        (tenants / "cu_alpha.yaml").write_text(yaml.safe_dump(alpha, sort_keys=False))
        with running_fleetsim(scenario, tmp_path / "fleetsim") as url:
            env = airflow_env(airflow_home, url, poll_seconds=0.5, tenants_dir=tenants)
            yield CycleRunner(url, env, tmp_path)

    return fixture


azure_only = single_cloud("azure")
azure_only_losing_an_answer = single_cloud("azure", lost_install_answers=1)
gcp_only = single_cloud("gcp")


def plan_sources(evidence: dict[str, Any]) -> dict[str, list[str]]:
    return {b["os_family"]: list(b.get("sources") or []) for b in evidence["plan"]["baselines"]}


def test_a_tenant_on_azure_alone_plans_from_update_manager_and_installs_only_the_plan(azure_only) -> None:
    fleet = azure_only
    fleet.seed_first_seen(FIRST_SEEN)
    result = fleet.run(DAG_ID, NOV)
    evidence = result.evidence
    hosts = {h["name"]: h for h in evidence["hosts"]}

    # Only the subscription's machines, planned from Update Manager's own assessments.
    assert {h["cloud"] for h in hosts.values()} == {"azure"}
    assert len(hosts) == 7
    sources = plan_sources(evidence)
    assert sources["ubuntu_22_04"] == [ARC_SOURCE] and sources["windows_2019"] == [ARC_SOURCE]
    assert not any(s.startswith("ssm:") for family in sources.values() for s in family)
    approved = evidence["plan"]["approved"]
    assert {p["package"] for p in approved["ubuntu_22_04"]} == {"linux-image-5.15.0-126-generic", "openssl"}
    assert all(p["version"] and p["released_basis"] == "first_seen" for p in approved["ubuntu_22_04"])
    assert [p["kb"] for p in approved["windows_2019"]] == ["5046615"]

    # Every Ubuntu machine the install reached got exactly the plan: the unplanned Security update of the
    # same classification is still missing everywhere (no classification widened the install).
    for name, truth in result.truth.items():
        if truth["os_family"] == "ubuntu_22_04":
            assert UNPLANNED_UBUNTU["id"] in truth["missing"], name
            assert UNPLANNED_UBUNTU["id"] not in truth["installed"], name
    for name in ("t-arc-dev-web-01", "t-arc-stg-web-01", "t-arc-prd-web-01", "t-arc-prd-win-01"):
        assert hosts[name]["final_state"] == "patched", hosts[name]
        installed = {v.get("package") or v.get("kb"): v for v in hosts[name]["installed_versions"] or []}
        assert installed and all(v["planned"] and v["installed"] == v["planned"] for v in installed.values())
    assert {s["environment"]: s["status"] for s in evidence["stages"]} == {
        "nonprod": "succeeded",
        "staging": "succeeded",
        "prod": "succeeded",
    }
    assert_pack_intact(result)


def test_a_tenant_on_gcp_alone_plans_from_os_config_and_reads_back_installed_versions(gcp_only) -> None:
    result = gcp_only.run(DAG_ID, NOV)
    evidence = result.evidence
    hosts = {h["name"]: h for h in evidence["hosts"]}

    assert {h["cloud"] for h in hosts.values()} == {"gcp"}
    assert plan_sources(evidence)["rhel_8"] == [GCP_SOURCE]
    approved = {p["package"]: p for p in evidence["plan"]["approved"]["rhel_8"]}
    # OS Config first detected the kernel on 2026-10-21 (inventory item createTime): aged, approved. It
    # lists only the newest openssl build, first seen after the cutoff: not approvable this cycle.
    assert set(approved) == {"kernel"} and approved["kernel"]["released_basis"] == "first_seen"
    for name, record in hosts.items():
        assert record["final_state"] == "patched", record
        (kernel,) = [v for v in record["installed_versions"] if v.get("package") == "kernel"]
        assert kernel["installed"] == kernel["planned"] == approved["kernel"]["version"]
        # The newer openssl build was not in the job's package list, so OS Config never installed it.
        assert "RHSA-2026:9120" not in result.truth[name]["installed"], name
    assert evidence["cycle"]["outcome"] in ("completed", "partial")
    assert_pack_intact(result)


def test_an_arc_install_whose_answer_was_lost_is_not_sent_again(azure_only_losing_an_answer) -> None:
    """installPatches takes no idempotency key. fleetsim loses the answer to the subscription's first
    one (the install runs; the caller sees HTTP 500): the machine is not asked again, by the SDK or by
    the operator, and is judged by its own assessment after the install."""
    fleet = azure_only_losing_an_answer
    fleet.seed_first_seen(FIRST_SEEN)
    result = fleet.run(DAG_ID, NOV)
    evidence = result.evidence
    lost = [e for e in evidence["events"] if e["action"] == "patch.answer_lost"]
    assert len(lost) == 1, [e["action"] for e in evidence["events"] if e["action"].startswith("patch.")]
    (host,) = [h for h in evidence["hosts"] if h["host_id"] == lost[0]["target"]]
    installs = {
        name: [a for a in truth["actions"] if a["action"] == "azure.installPatches"]
        for name, truth in result.truth.items()
    }
    assert len(installs[host["name"]]) == 1, installs[host["name"]]
    assert all(len(sent) <= 1 for sent in installs.values()), installs
    assert host["final_state"] == "patched", host
    assert_pack_intact(result)
