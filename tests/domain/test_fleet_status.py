"""The fleet status: which pack is a tenant's latest cycle, and what the Patchcycle page shows of it.

Evidence documents come from the project's builders (``evidence_packs``); the expectations are worked
out from the fleets described here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from patchcycle.config.exceptions import ExceptionRegister
from patchcycle.config.models import Tenant
from patchcycle.domain.fleet_status import (
    LISTED_HOST_STATES,
    LatestPacks,
    Listed,
    Pack,
    PackUnreadable,
    latest_packs,
    pack_file_parts,
    tenant_status,
)
from tests.domain.evidence_packs import CRITICAL_PATCH, HostSpec, cycle_evidence

NOV, DEC = "2026-11-22", "2026-12-27"
FLEET = [
    HostSpec("alpha-prd-web-01", "prod"),
    HostSpec("alpha-prd-db-07", "prod", "failed", "patch install exit code 1: yum transaction check error"),
    HostSpec("alpha-stg-app-02", "staging", "held", "SSM agent ConnectionLost"),
    HostSpec(
        "alpha-dev-app-03", "nonprod", "non_compliant", "2 approved patches still missing after install"
    ),
    HostSpec("alpha-dev-app-04", "nonprod"),
]


def key(cycle_date: str, segment: str, pack: str = "pack", name: str = "evidence.json") -> str:
    return f"cycles/{cycle_date}/runs/{segment}/{pack}/{name}"


class Store:
    """An evidence store's listing and documents, counting the documents read."""

    def __init__(self, packs: Mapping[str, Mapping[str, Any]], others: tuple[str, ...] = ()) -> None:
        self.packs = dict(packs)
        self.keys = sorted([*packs, *others])
        self.read_keys: list[str] = []

    def read(self, k: str) -> Mapping[str, Any]:
        self.read_keys.append(k)
        return self.packs[k]


@pytest.fixture
def completed(alpha: Tenant) -> dict[str, Any]:
    return cycle_evidence(alpha, cycle_date=NOV, run_id="scheduled__2026-11-22T02:00:00+00:00", fleet=FLEET)


def test_a_refused_run_and_a_dry_run_after_the_cycle_are_not_the_latest_cycle(alpha, completed) -> None:
    refused = cycle_evidence(
        alpha,
        cycle_date=DEC,
        run_id="scheduled__2026-12-27T02:00:00+00:00",
        refused_reasons=("scheduled run found stale: 3 days after its fourth Sunday",),
        finished_at="2026-12-30T02:00:05+00:00",
    )
    dry = cycle_evidence(
        alpha, cycle_date=DEC, run_id="manual__2026-12-29T10:00:00+00:00", fleet=FLEET, dry_run=True
    )
    store = Store(
        {
            key(NOV, "scheduled__2026-11-22T02_00_00_00_00"): completed,
            key(DEC, "scheduled__2026-12-27T02_00_00_00_00"): refused,
            key(DEC, "manual__2026-12-29T10_00_00_00_00"): dry,
        },
        others=(
            key(NOV, "scheduled__2026-11-22T02_00_00_00_00", name="report.pdf"),
            f"cycles/{NOV}/runs/scheduled__2026-11-22T02_00_00_00_00/events/plan.try-1.json",
            f"cycles/{NOV}/plans/{'ab' * 32}/plan.json",
        ),
    )
    latest = latest_packs(store.keys, store.read)
    assert latest.cycle is not None and latest.cycle.evidence is completed
    # Newest first: the refusal finished after the dry run.
    assert [p.evidence for p in latest.newer] == [refused, dry]
    row = tenant_status(
        tenant_id=alpha.id,
        display_name=alpha.display_name,
        dag_id=alpha.dag_id,
        latest=latest,
        register=None,
        as_of=dt.date(2026, 12, 30),
    )
    assert row.cycle is not None and row.cycle.cycle_date == NOV and row.cycle.outcome == "partial"
    assert row.last_attempt is not None
    assert (row.last_attempt.kind, row.last_attempt.cycle_date) == ("refused", DEC)
    assert row.last_attempt.reasons == ("scheduled run found stale: 3 days after its fourth Sunday",)


def test_reading_stops_at_the_newest_cycle_date_with_a_counting_pack(alpha, completed) -> None:
    older = cycle_evidence(alpha, cycle_date="2026-10-25", run_id="scheduled__2026-10-25T02:00:00+00:00")
    store = Store({key(NOV, "scheduled__a"): completed, key("2026-10-25", "scheduled__b"): older})
    assert latest_packs(store.keys, store.read) == LatestPacks(Pack(key(NOV, "scheduled__a"), completed), ())
    assert store.read_keys == [key(NOV, "scheduled__a")]


def test_within_a_cycle_date_the_run_that_finished_last_wins_whatever_its_run_id(alpha) -> None:
    # "scheduled__" sorts after "manual__" by name; the manual re-run finished later.
    first = cycle_evidence(
        alpha, cycle_date=NOV, run_id="scheduled__2026-11-22T02:00:00+00:00", fleet=FLEET[:2]
    )
    rerun = cycle_evidence(
        alpha,
        cycle_date=NOV,
        run_id="manual__2026-11-23T09:00:00+00:00",
        fleet=FLEET[:1],
        finished_at="2026-11-23T11:00:00+00:00",
    )
    store = Store({key(NOV, "scheduled__2026-11-22"): first, key(NOV, "manual__2026-11-23"): rerun})
    latest = latest_packs(store.keys, store.read)
    assert latest.cycle is not None and latest.cycle.evidence is rerun and latest.newer == ()


def test_a_retried_pack_beats_its_first_try_and_try_10_beats_try_2(alpha, completed) -> None:
    retry = dict(completed, cycle=dict(completed["cycle"]))
    store = Store(
        {
            key(NOV, "run", "pack"): completed,
            key(NOV, "run", "pack-try2"): completed,
            key(NOV, "run", "pack-try10"): retry,
        }
    )
    latest = latest_packs(store.keys, store.read)
    assert latest.cycle is not None and latest.cycle.key == key(NOV, "run", "pack-try10")
    assert latest.cycle.file_key("report.pdf") == key(NOV, "run", "pack-try10", "report.pdf")


def test_a_store_without_a_counting_pack_has_no_cycle_but_keeps_the_attempts(alpha) -> None:
    assert latest_packs([], lambda k: {}) == LatestPacks(None, ())
    refused = cycle_evidence(alpha, cycle_date=DEC, run_id="manual__x", refused_reasons=("bad conf",))
    store = Store({key(DEC, "manual__x"): refused})
    latest = latest_packs(store.keys, store.read)
    assert latest.cycle is None and [p.evidence for p in latest.newer] == [refused]
    row = tenant_status(
        tenant_id="cu_alpha",
        display_name="Alpha",
        dag_id="d",
        latest=latest,
        register=None,
        as_of=dt.date.today(),
    )
    assert row.cycle is None and row.last_attempt is not None and row.last_attempt.reasons == ("bad conf",)


def test_an_unreadable_pack_is_reported_with_its_key() -> None:
    def read(k: str) -> Mapping[str, Any]:
        raise PackUnreadable(k, "JSONDecodeError: Expecting value")

    with pytest.raises(PackUnreadable) as caught:
        latest_packs([key(NOV, "run")], read)
    assert caught.value.key == key(NOV, "run") and key(NOV, "run") in str(caught.value)


def test_only_pack_files_are_pack_files() -> None:
    assert pack_file_parts(key(NOV, "run", "pack-try3", "report.pdf")) == (NOV, "report.pdf")
    for other in (
        f"cycles/{NOV}/runs/run/events/plan.try-1.json",
        f"cycles/{NOV}/runs/run/pack/../../other/evidence.json",
        f"cycles/{NOV}/runs/run/packed/evidence.json",
        "rounds/2026-11-22/portfolio.json",
    ):
        assert pack_file_parts(other) is None, other


def test_the_row_names_hosts_left_with_reasons_overdue_patches_and_open_exceptions(alpha, completed) -> None:
    register = ExceptionRegister.model_validate(
        {
            "tenant_id": "cu_alpha",
            "exceptions": [
                _acceptance("EXC-2026-001", "2026-09-30", "2027-01-10"),  # open, expiring soon
                _acceptance("EXC-2026-002", "2026-09-30", "2026-12-01"),  # expired before as_of
                _acceptance("EXC-2026-003", "2026-12-01", "2027-06-30"),  # open
            ],
        }
    )
    as_of = dt.date(2026, 12, 20)
    row = tenant_status(
        tenant_id=alpha.id,
        display_name=alpha.display_name,
        dag_id=alpha.dag_id,
        latest=LatestPacks(Pack(key(NOV, "run"), completed)),
        register=register,
        as_of=as_of,
        problems=["cu_alpha: something unreadable"],
    )
    c = row.cycle
    assert c is not None
    left = [h for h in FLEET if h.state in LISTED_HOST_STATES]
    # Failed first, then non compliant, then held: each with its own reason.
    assert [(h.state, h.name, h.reason) for h in c.hosts_left.shown] == [
        (h.state, h.name, h.reason) for h in sorted(left, key=lambda h: LISTED_HOST_STATES.index(h.state))
    ]
    assert c.hosts_left.more == 0 and c.not_run == 0
    assert c.compliance_before == completed["summary"]["compliance_before"]
    assert c.compliance_after == completed["summary"]["compliance_after"]
    unpatched = sum(1 for h in FLEET if h.state != "patched")
    assert c.overdue_critical == completed["risk"]["summary"]["overdue_by_severity"]["Critical"] == unpatched
    assert [(p.patch_id, p.hosts) for p in c.overdue_critical_patches.shown] == [
        (CRITICAL_PATCH["id"], unpatched)
    ]
    assert c.evidence_key == key(NOV, "run") and c.report_key == key(NOV, "run", name="report.pdf")
    assert [e.id for e in row.open_exceptions.shown] == ["EXC-2026-001", "EXC-2026-003"]
    soon = row.open_exceptions.shown[0]
    assert soon.expiring_soon and soon.days_left == (dt.date(2027, 1, 10) - as_of).days
    assert not row.open_exceptions.shown[1].expiring_soon
    assert row.problems == ("cu_alpha: something unreadable",)
    assert row.last_attempt is None


def test_long_lists_are_capped_with_how_many_more(alpha) -> None:
    fleet = [HostSpec(f"alpha-prd-web-{i:02d}", "prod", "failed", f"reason {i}") for i in range(13)]
    evidence = cycle_evidence(alpha, cycle_date=NOV, run_id="scheduled__x", fleet=fleet)
    row = tenant_status(
        tenant_id=alpha.id,
        display_name=alpha.display_name,
        dag_id=alpha.dag_id,
        latest=LatestPacks(Pack(key(NOV, "x"), evidence)),
        register=ExceptionRegister.empty("cu_alpha"),
        as_of=dt.date(2026, 11, 22),
        limit=5,
    )
    assert row.cycle is not None
    assert len(row.cycle.hosts_left.shown) == 5 and row.cycle.hosts_left.more == 8
    assert row.cycle.hosts_left.total == 13
    assert row.open_exceptions == Listed((), 0)


def test_a_pack_without_a_risk_section_has_no_overdue_figure(alpha, completed) -> None:
    older = {k: v for k, v in completed.items() if k != "risk"}
    row = tenant_status(
        tenant_id=alpha.id,
        display_name=alpha.display_name,
        dag_id=alpha.dag_id,
        latest=LatestPacks(Pack(key(NOV, "x"), older)),
        register=None,
        as_of=dt.date(2026, 11, 22),
    )
    assert row.cycle is not None and row.cycle.overdue_critical is None
    assert row.cycle.overdue_critical_patches.total == 0


def _acceptance(exception_id: str, approved: str, expires: str) -> dict[str, Any]:
    return {
        "id": exception_id,
        "hosts": ["alpha-prd-db-07"],
        "justification": "Standby database being decommissioned after the migration.",
        "compensating_control": "Reachable only from the DBA bastion.",
        "requested_by": "DBA lead",
        "approver": "J. Alvarez",
        "approver_role": "CISO",
        "approved_on": approved,
        "expires_on": expires,
        "risk_rating": "Medium",
    }
