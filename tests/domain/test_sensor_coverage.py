"""The portfolio's Falcon sensor coverage and mode per tenant, from its latest roll-out pack or its cycle's
evidence.

Roll-out packs are built from the roll-out's own decisions (:func:`classify_hosts` for what each host
needs, :func:`validate_install` for what the Falcon API showed after the installs) over a fleet described
here; cycle evidence from the cycle's builder with the Falcon columns :func:`attach_falcon` fills. Expected
counts are worked out by hand from the fleet.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pypdf import PdfReader

from patchcycle.config.models import Tenant
from patchcycle.domain.evidence import build_evidence_document
from patchcycle.domain.falcon_rollout import classify_hosts, validate_install
from patchcycle.domain.portfolio import PORTFOLIO_COLUMNS, portfolio, tenant_row
from patchcycle.domain.sensor import attach_falcon
from patchcycle.domain.sensor_coverage import (
    SENSOR_COLUMNS,
    RolloutPack,
    latest_rollout_pack,
    rollout_host,
    sensor_columns,
)
from patchcycle.reports.portfolio_pdf import render_portfolio_report
from tests.domain.evidence_packs import HostSpec, inventory_row

LINUX = ["7.12.16500", "7.13.16606", "7.14.16703", "7.15.16807"]
BUILDS = [{"platform": "linux", "sensor_version": v, "stage": "prod"} for v in LINUX]
PROJECT = "alpha-dr-standby"
GROUP, PREVENTION, SENSOR_UPDATE = "grp-1", "prev-1", "su-1"
APPLIED = {
    "prevention": {"policy_id": PREVENTION, "applied": True},
    "sensor_update": {"policy_id": SENSOR_UPDATE, "applied": True},
}
SLIDER = {
    "id": "CloudAntiMalware",
    "type": "mlslider",
    "value": {"detection": "MODERATE", "prevention": "MODERATE"},
}
ROLLOUT = {
    "host_groups": {"nonprod": "cu-test-nonprod", "staging": "cu-test-staging", "prod": "cu-test-prod"},
    "sensor_version": {"max_versions_behind": 1},
    "prevention_phases": [
        {"name": "non-prod", "environments": ["nonprod", "staging"], "settings": [SLIDER]},
        {"name": "prod", "environments": ["prod"], "settings": [SLIDER]},
    ],
}


def row(name: str, environment: str = "nonprod", cloud: str = "aws", **kw: Any) -> dict[str, Any]:
    """An inventory row of the cycle's shape (Ubuntu 22.04 unless told)."""
    base = inventory_row(HostSpec(name, environment))
    base.update(os_family="ubuntu_22_04", platform="Ubuntu 22.04", private_ip=f"10.0.0.{len(name)}")
    if cloud == "gcp":
        base.update(cloud="gcp", account=PROJECT, region="us-central1-a", agent_kind="osconfig")
    if cloud == "azure":
        base.update(cloud="azure", account="6f1c2b1e", region="eastus", agent_kind="arc")
    return base | kw


def device(host: Mapping[str, Any], version: str = "7.15.16807.0", **kw: Any) -> dict[str, Any]:
    """The host's Falcon device record: by instance identity on AWS and GCP, by name and IP on Arc."""
    record: dict[str, Any] = {
        "device_id": f"aid-{host['name']}",
        "hostname": host["name"],
        "local_ip": host["private_ip"],
        "agent_version": version,
        "platform_name": "Linux",
        "reduced_functionality_mode": "no",
        "last_seen": "2026-12-01T06:00:00Z",
        "groups": [GROUP],
        "device_policies": APPLIED,
    }
    if host["cloud"] in ("aws", "gcp"):
        record.update(
            instance_id=host["host_id"],
            service_provider="AWS_EC2_V2" if host["cloud"] == "aws" else "GCP",
            service_provider_account_id=host["account"],
        )
    return record | kw


# The fleet the roll-out of 2026-12-01 found, and how it left each host:
WEB = row("alpha-dev-web-01")  # a current sensor: ok, validated
NEW = row("alpha-dev-new-01")  # no sensor: installed, validated
ARC = row("alpha-arc-dev-01", cloud="azure")  # no sensor: not installed (no Arc install yet), no record
GCE = row("alpha-gce-dev-02", cloud="gcp")  # in RFM: still in RFM after the run
OLD = row("alpha-prd-old-01", "prod")  # 7.12, below N-1: the upgrade did not happen
DRIFT = row("alpha-stg-app-01", "staging")  # a current sensor whose prevention policy is not applied
DB = row(
    "alpha-prd-db", "prod", os_family="rds", platform="RDS postgres 15", agent_kind="rds"
)  # no sensor goes
FLEET = [WEB, NEW, ARC, GCE, OLD, DRIFT, DB]
BEFORE = [
    device(WEB),
    device(GCE, reduced_functionality_mode="yes"),
    device(OLD, "7.12.16500.0"),
    device(DRIFT),
]
NOT_APPLIED = {**APPLIED, "prevention": {"policy_id": PREVENTION, "applied": False}}
AFTER = [
    device(WEB),
    device(NEW),
    device(GCE, reduced_functionality_mode="yes"),
    device(OLD, "7.12.16500.0"),
    device(DRIFT, device_policies=NOT_APPLIED),
]


def rollout_document(
    day: str,
    *,
    finished_at: str | None = None,
    fleet: Sequence[Mapping[str, Any]] = FLEET,
    before: Sequence[Mapping[str, Any]] = BEFORE,
    after: Sequence[Mapping[str, Any]] | None = AFTER,
    phases: Mapping[str, Any] | None | str = "absent",
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """A roll-out pack's report (``rollout.json``'s sections the portfolio reads) of a run over ``fleet``:
    needs from the devices ``before``, validations from the devices ``after`` (None: validate did not run)."""
    needs = [
        n.to_dict() for n in classify_hosts(fleet, before, BUILDS, _tenant().falcon.rollout.sensor_version)
    ]
    validations = None
    if after is not None:
        by_id = {str(d["device_id"]): d for d in after}
        validations = []
        for host in attach_falcon([h for h in fleet if h.get("agent_kind") != "rds"], after):
            need = next(n for n in needs if n["host_id"] == host["host_id"])
            expected = need["target_version"] or need["sensor_version"]
            validations.append(
                validate_install(
                    host,
                    by_id.get(str(host["falcon_device_id"])),
                    expected_version=expected,
                    host_group_id=GROUP,
                    prevention_policy_id=PREVENTION,
                    sensor_update_policy_id=SENSOR_UPDATE,
                ).to_dict()
            )
    failed = [f"{v['name']} failed validation" for v in validations or [] if not v["passed"]]
    document: dict[str, Any] = {
        "schema_version": "rollout-1.0",
        "kind": "falcon_rollout",
        "day": day,
        "run": {"run_id": f"scheduled__{day}", "finished_at": finished_at or f"{day}T07:00:00+00:00"},
        "outcome": "incomplete" if (failed or problems or after is None) else "complete",
        "problems": [*problems, *failed],
        "needs": needs,
        "validation": None if validations is None else {"validations": validations},
        "scopes": [{"cloud": "aws", "scope": "aws:111111111111:us-east-1", "status": "ok"}],
    }
    if phases != "absent":  # a pack written before phases were recorded has no such section
        document["phases"] = phases
    return document


def _tenant(**falcon: Any) -> Tenant:
    from tests.domain.conftest import tenant_data

    return Tenant.model_validate(tenant_data(falcon={"rollout": ROLLOUT, **falcon}))


def pack(day: str = "2026-12-01", **kw: Any) -> RolloutPack:
    return RolloutPack(
        f"falcon-rollout/{day}/runs/scheduled__{day}/pack/rollout.json", day, rollout_document(day, **kw)
    )


def cycle(cycle_date: str, fleet: Sequence[Mapping[str, Any]], devices: Sequence[Mapping[str, Any]]) -> dict:
    """A cycle's evidence over ``fleet``, its hosts matched to ``devices`` as the cycle's inventory does."""
    rows = attach_falcon(fleet, devices)
    return build_evidence_document(
        tenant=_tenant(),
        cycle={"cycle_date": cycle_date, "run_id": f"scheduled__{cycle_date}", "dry_run": False},
        plan={"approved": {}},
        inventory=rows,
        preflight={"halted": False, "in_scope": len(rows), "decisions": []},
        stages={},
        selected_environments=["nonprod", "staging", "prod"],
        events=[],
        scopes=[{"cloud": "falcon", "scope": "falcon", "status": "ok"}],
    )


def columns(
    tenant: Tenant, rollout: RolloutPack | None, evidence: Mapping[str, Any] | None
) -> dict[str, Any]:
    return sensor_columns(tenant.falcon, tenant.environment_names, rollout, evidence)


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return _tenant()


# --- the latest pack -------------------------------------------------------------------------------------


def test_the_latest_pack_is_the_newest_days_last_finished_run_and_its_retry() -> None:
    documents = {
        "falcon-rollout/2026-11-30/runs/scheduled__b/pack/rollout.json": {
            "run": {"finished_at": "2026-11-30T23"}
        },
        # Of the newest day, the run that finished last, whatever its id sorts like; its retry beats it.
        "falcon-rollout/2026-12-01/runs/manual__z/pack/rollout.json": {
            "run": {"finished_at": "2026-12-01T07"}
        },
        "falcon-rollout/2026-12-01/runs/scheduled__a/pack/rollout.json": {
            "run": {"finished_at": "2026-12-01T09"}
        },
        "falcon-rollout/2026-12-01/runs/scheduled__a/pack-try2/rollout.json": {
            "run": {"finished_at": "2026-12-01T09"}
        },
    }
    others = [
        "falcon-rollout/2026-12-02/runs/scheduled__c/records/needs.json",  # a run still going: no pack yet
        "falcon-rollout/2026-12-01/runs/scheduled__a/pack/manifest.json",
        "cycles/2026-12-27/runs/scheduled__x/pack/evidence.json",
    ]
    read: list[str] = []

    def reader(key: str) -> Mapping[str, Any]:
        read.append(key)
        return documents[key]

    latest = latest_rollout_pack(sorted([*documents, *others]), reader)
    assert latest is not None
    assert (latest.key, latest.day) == (
        "falcon-rollout/2026-12-01/runs/scheduled__a/pack-try2/rollout.json",
        "2026-12-01",
    )
    assert not any("2026-11-30" in key for key in read)  # only the newest day is read
    assert latest_rollout_pack(others, reader) is None


# --- coverage from a roll-out pack -----------------------------------------------------------------------


def test_a_rollout_pack_counts_each_host_as_the_run_left_it(tenant: Tenant) -> None:
    got = columns(tenant, pack(phases={"phase": None}), None)
    assert tuple(got) == SENSOR_COLUMNS
    # WEB and NEW healthy; ARC without a sensor; GCE in RFM; OLD below N-1; DRIFT failing; DB takes none.
    assert {k: got[k] for k in SENSOR_COLUMNS if k.startswith("sensor_") and k != "sensor_note"} == {
        "sensor_source": "falcon_rollout",
        "sensor_as_of": "2026-12-01",
        "sensor_hosts": 6,
        "sensor_healthy": 2,
        "sensor_coverage": 0.3333,
        "sensor_coverage_by_cloud": "aws 2/4; azure 0/1; gcp 0/1",
        "sensor_missing": 1,
        "sensor_rfm": 1,
        "sensor_below_policy": 1,
        "sensor_failed_validation": 4,
    }
    assert (got["rollout_day"], got["rollout_outcome"]) == ("2026-12-01", "incomplete")
    assert got["sensor_note"] is None


def test_an_upgrade_that_reached_its_target_but_fails_validation_is_no_longer_below_the_policy() -> None:
    need = {"host_id": "i-1", "cloud": "aws", "action": "upgrade", "target_version": "7.15.16807"}
    upgraded = {"host_id": "i-1", "passed": False, "device_id": "aid-1", "sensor_version": "7.15.16807.0"}
    not_yet = upgraded | {"sensor_version": "7.12.16500.0"}
    assert rollout_host(need, upgraded).state == "failing"  # type: ignore[union-attr]
    assert rollout_host(need, not_yet).state == "below_policy"  # type: ignore[union-attr]
    assert rollout_host(need, None).state == "below_policy"  # type: ignore[union-attr]
    assert rollout_host(need | {"action": "skip"}, None) is None


def test_a_pack_whose_validation_did_not_run_counts_hosts_as_found_and_says_so(tenant: Tenant) -> None:
    got = columns(tenant, pack(after=None, problems=["the validate task recorded no validation"]), None)
    # As the roll-out found them: WEB and DRIFT current, NEW and ARC without, GCE in RFM, OLD below N-1.
    assert (got["sensor_healthy"], got["sensor_missing"], got["sensor_rfm"], got["sensor_below_policy"]) == (
        2,
        2,
        1,
        1,
    )
    assert got["sensor_failed_validation"] == 0
    assert got["rollout_outcome"] == "incomplete"
    assert "the roll-out of 2026-12-01 recorded no validation" in got["sensor_note"]


def test_an_incomplete_pack_that_lists_no_host_falls_back_to_the_cycle_and_says_why(tenant: Tenant) -> None:
    broken = pack("2026-12-02", fleet=[], after=None, problems=["the find task wrote no needs (see its log)"])
    evidence = cycle("2026-11-22", FLEET, BEFORE)
    got = columns(tenant, broken, evidence)
    assert (got["sensor_source"], got["sensor_as_of"]) == ("cycle", "2026-11-22")
    assert (got["rollout_day"], got["rollout_outcome"]) == ("2026-12-02", "incomplete")
    assert "the roll-out pack of 2026-12-02 lists no host (the find task wrote no needs" in got["sensor_note"]
    alone = columns(tenant, broken, None)
    assert alone["sensor_hosts"] is None and alone["sensor_source"] is None


# --- coverage from the cycle's evidence ------------------------------------------------------------------


def test_without_a_rollout_the_cycles_falcon_columns_give_the_coverage(tenant: Tenant) -> None:
    evidence = cycle("2026-11-22", FLEET, BEFORE)
    got = columns(tenant, None, evidence)
    # WEB, OLD and DRIFT have a sensor not in RFM; NEW and ARC none; GCE in RFM; DB takes none.
    assert {k: got[k] for k in ("sensor_source", "sensor_as_of", "sensor_hosts", "sensor_healthy")} == {
        "sensor_source": "cycle",
        "sensor_as_of": "2026-11-22",
        "sensor_hosts": 6,
        "sensor_healthy": 3,
    }
    assert (got["sensor_missing"], got["sensor_rfm"]) == (2, 1)
    assert got["sensor_coverage_by_cloud"] == "aws 3/4; azure 0/1; gcp 0/1"
    # Neither judged: the evidence has no build list for N-x, and the cycle does not validate.
    assert got["sensor_below_policy"] is None and got["sensor_failed_validation"] is None
    assert (
        "version policy not judged: the version policy's N-x needs Falcon's build list" in got["sensor_note"]
    )
    assert "mode unknown: no roll-out pack records it" in got["sensor_note"]
    assert got["falcon_mode"] is None and got["rollout_day"] is None


def test_a_minimum_version_alone_is_judged_on_the_cycles_evidence() -> None:
    rollout = {**ROLLOUT, "sensor_version": {"max_versions_behind": None, "minimum_version": "7.14.16703"}}
    tenant = Tenant.model_validate(_tenant().model_dump(mode="json") | {"falcon": {"rollout": rollout}})
    got = columns(tenant, None, cycle("2026-11-22", FLEET, BEFORE))
    assert (got["sensor_healthy"], got["sensor_below_policy"]) == (2, 1)  # OLD runs 7.12


def test_the_newer_source_wins_and_a_tie_goes_to_the_rollout(tenant: Tenant) -> None:
    # After the roll-out, a cycle that found every sensor current (NEW installed, OLD upgraded since).
    fixed = [device(h) for h in FLEET if h is not DB]
    assert columns(tenant, pack("2026-12-01"), cycle("2026-12-27", FLEET, fixed))["sensor_source"] == "cycle"
    assert (
        columns(tenant, pack("2026-12-27"), cycle("2026-12-27", FLEET, fixed))["sensor_source"]
        == "falcon_rollout"
    )
    assert (
        columns(tenant, pack("2026-12-28"), cycle("2026-12-27", FLEET, fixed))["sensor_source"]
        == "falcon_rollout"
    )


def test_a_cycle_that_could_not_read_falcon_says_nothing_about_sensors(tenant: Tenant) -> None:
    evidence = cycle("2026-11-22", FLEET, BEFORE)
    evidence["scopes"] = [{"cloud": "falcon", "scope": "falcon", "status": "failed", "error": "401"}]
    got = columns(tenant, None, evidence)
    assert got["sensor_hosts"] is None
    assert got["sensor_note"].startswith("the cycle of 2026-11-22 could not read Falcon")


def test_a_tenant_without_falcon_has_no_sensor_figures() -> None:
    from tests.domain.conftest import tenant_data

    plain = Tenant.model_validate(tenant_data())
    got = columns(plain, None, cycle("2026-11-22", FLEET, BEFORE))
    assert {k: v for k, v in got.items() if v is not None} == {"sensor_note": "no Falcon in the tenant file"}


# --- the mode --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phases", "phase", "mode"),
    [
        ({"phase": None}, None, "nonprod Detection; staging Detection; prod Detection"),
        (
            {"phase": "non-prod"},
            "non-prod",
            "nonprod Prevention (non-prod); staging Prevention (non-prod); prod Detection",
        ),
        (
            {"phase": "prod"},
            "prod",
            "nonprod Prevention (non-prod); staging Prevention (non-prod); prod Prevention (prod)",
        ),
    ],
)
def test_the_phase_applied_and_those_before_it_are_in_prevention(
    tenant: Tenant, phases: dict[str, Any], phase: str | None, mode: str
) -> None:
    got = columns(tenant, pack(phases=phases), None)
    assert (got["falcon_phase"], got["falcon_mode"]) == (phase, mode)


def test_a_pack_without_phases_leaves_the_mode_unknown_and_says_why(tenant: Tenant) -> None:
    got = columns(tenant, pack(), None)
    assert got["falcon_mode"] is None and got["falcon_phase"] is None
    assert "the roll-out pack of 2026-12-01 records no phases" in got["sensor_note"]
    assert "not assumed to be Detection" in got["sensor_note"]
    assert got["sensor_hosts"] == 6  # the coverage is still the pack's


def test_no_phases_declared_or_no_phase_decided_leaves_the_mode_unknown(tenant: Tenant) -> None:
    unmanaged = columns(tenant, pack(phases=None), None)
    assert unmanaged["falcon_mode"] is None
    assert "the roll-out of 2026-12-01 manages no prevention policy" in unmanaged["sensor_note"]
    undecided = columns(
        tenant, pack(phases={"problems": ["the phase_decide task recorded no decision"]}), None
    )
    assert undecided["falcon_mode"] is None
    assert "records no phase (the phase_decide task recorded no decision)" in undecided["sensor_note"]


def test_a_phase_the_tenant_file_no_longer_declares_leaves_the_mode_unknown(tenant: Tenant) -> None:
    got = columns(tenant, pack(phases={"phase": "canary"}), None)
    assert (got["falcon_phase"], got["falcon_mode"]) == ("canary", None)
    assert (
        "phase 'canary' of the roll-out pack of 2026-12-01 is not in the tenant file's prevention_phases"
        in (got["sensor_note"])
    )


# --- in the portfolio ------------------------------------------------------------------------------------


def test_the_portfolio_lists_each_tenants_coverage_and_mode_and_totals_them(tenant: Tenant) -> None:
    evidence = cycle("2026-11-22", FLEET, BEFORE)
    rows = [
        tenant_row(
            "cu_alpha",
            "Alpha",
            evidence,
            None,
            columns(tenant, pack(phases={"phase": "non-prod"}), evidence),
        ),
        tenant_row("cu_birch", "Birch", evidence, None, columns(tenant, None, evidence)),
        tenant_row("cu_cedar", "Cedar", None),
    ]
    assert all(tuple(r) == PORTFOLIO_COLUMNS for r in rows)
    view = portfolio(rows, "2026-12-01T08:00:00+00:00")
    t = view["totals"]
    assert (t["sensor_tenants"], t["sensor_hosts"], t["sensor_healthy"], t["sensor_coverage"]) == (
        2,
        12,
        5,
        0.4167,
    )
    assert (t["sensor_missing"], t["sensor_rfm"]) == (3, 2)
    # Known for the roll-out's tenant only; the cycle's cannot say.
    assert (t["sensor_below_policy"], t["sensor_failed_validation"]) == (1, 4)

    pages = PdfReader(io.BytesIO(render_portfolio_report(view))).pages
    text = re.sub(r"\s+", " ", " ".join(page.extract_text() for page in pages))
    assert "Falcon sensor coverage and mode" in text
    assert "5 of 12 hosts have a healthy sensor (41.7%) across 2 tenants" in text
    assert "2/6 (33.3%)" in text and "3/6 (50.0%)" in text
    assert "falcon_rollout (2026-12-01)" in text and "cycle (2026-11-22)" in text
    assert "nonprod Prevention (non-prod)" in text and "prod Detection" in text
    assert "cu_birch: version policy not judged" in text
