"""The tenant file's ``risk:`` section: off when absent (the demo tenants), and every wrong value refused
with an error that names its field."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchcycle.config import TenantConfigError, load_tenant
from patchcycle.config.loader import load_tenants

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMPLETE = HERE / "fixtures" / "good" / "cu_complete.yaml"
ZERO_DAY = {
    "emergency_soak_hours": 2,
    "emergency_change_window": "patch_outside_window",
    "approver": "J. Alvarez",
    "approver_role": "CISO",
    "approved_on": "2026-10-01",
}


@pytest.fixture
def base() -> dict[str, Any]:
    return yaml.safe_load(COMPLETE.read_text())


def write(tmp_path: Path, data: dict[str, Any], tenant_id: str = "cu_gen") -> Path:
    data = {**copy.deepcopy(data), "id": tenant_id}
    path = tmp_path / f"{tenant_id}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def fields_at_fault(path: Path) -> list[str]:
    with pytest.raises(TenantConfigError) as caught:
        load_tenant(path)
    return [where for where, _ in caught.value.problems]


def test_the_demo_tenants_fast_track_nothing_and_have_no_zero_day_cycle() -> None:
    for tenant in load_tenants(REPO / "include" / "tenants").tenants:
        assert tenant.risk.fast_track is False
        assert tenant.risk.zero_day is None


def test_a_complete_risk_section_is_read(tmp_path: Path, base: dict[str, Any]) -> None:
    base["risk"] = {"fast_track_kev": True, "fast_track_epss_at_least": 0.5, "zero_day": ZERO_DAY}
    risk = load_tenant(write(tmp_path, base)).risk
    assert risk.fast_track and risk.fast_track_epss_at_least == 0.5
    assert risk.zero_day.emergency_soak_hours == 2 and risk.zero_day.approved_on == dt.date(2026, 10, 1)
    assert risk.zero_day.automatic is True


@pytest.mark.parametrize(
    ("risk", "field"),
    [
        ({"fast_track_kev": "yes please"}, "risk.fast_track_kev"),
        ({"fast_track_epss_at_least": 1.5}, "risk.fast_track_epss_at_least"),
        ({"fast_track_epss_at_least": True}, "risk"),
        ({"fast_track_epss": 0.5}, "risk.fast_track_epss"),
        ({"zero_day": {**ZERO_DAY, "emergency_soak_hours": -1}}, "risk.zero_day.emergency_soak_hours"),
        (
            {"zero_day": {**ZERO_DAY, "emergency_change_window": "ignore"}},
            "risk.zero_day.emergency_change_window",
        ),
        ({"zero_day": {k: v for k, v in ZERO_DAY.items() if k != "approver"}}, "risk.zero_day.approver"),
        ({"zero_day": {**ZERO_DAY, "approved_on": "last week"}}, "risk.zero_day.approved_on"),
    ],
)
def test_a_wrong_value_names_its_field(tmp_path: Path, base: dict[str, Any], risk: dict, field: str) -> None:
    base["risk"] = risk
    assert any(where.startswith(field) for where in fields_at_fault(write(tmp_path, base))), field
