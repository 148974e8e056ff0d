"""A trigger's conf: unknown keys, non-finite numbers and out-of-bounds cycle dates are refused."""

from __future__ import annotations

import datetime as dt

import pytest

from patchcycle.domain.run_conf import (
    CYCLE_PARAMS,
    DEFAULT_LOOKBACK_DAYS,
    ROLLBACK_PARAMS,
    conf_problems,
    cycle_date_problem,
    late_scheduled_run_problem,
    run_info,
)

NOW = dt.datetime(2026, 12, 3, 22, 0, tzinfo=dt.UTC)


def test_declared_keys_pass() -> None:
    conf = {"dry_run": True, "environments": ["nonprod"], "soak_hours_override": 0.0}
    assert conf_problems(conf, CYCLE_PARAMS, dag="patch_cycle__cu_alpha") == []
    assert conf_problems(None, CYCLE_PARAMS, dag="patch_cycle__cu_alpha") == []


@pytest.mark.parametrize(
    ("key", "suggested"),
    [
        ("dryrun", "dry_run"),
        ("cycle_dat", "cycle_date"),
        ("Dry_Run", "dry_run"),
        ("environment", "environments"),
    ],
)
def test_a_mistyped_key_is_refused_naming_the_key_it_resembles(key: str, suggested: str) -> None:
    (problem,) = conf_problems({key: True}, CYCLE_PARAMS, dag="patch_cycle__cu_alpha")
    assert repr(key) in problem and f"did you mean {suggested!r}" in problem
    assert "patch_cycle__cu_alpha" in problem


def test_a_rollback_has_no_dry_run() -> None:
    (problem,) = conf_problems(
        {"cycle": "2026-11-22", "hosts": ["h"], "reason": "r", "dry_run": True}, ROLLBACK_PARAMS, dag="rb"
    )
    assert "'dry_run' is not a parameter of rb" in problem


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused_wherever_they_are(value: float) -> None:
    problems = conf_problems({"soak_hours_override": value, "environments": [value]}, CYCLE_PARAMS, dag="d")
    assert len(problems) == 2
    assert any("conf.soak_hours_override" in p for p in problems)
    assert any("conf.environments[0]" in p for p in problems)


def test_cycle_dates_up_to_the_next_cycle_are_allowed() -> None:
    onboarded = dt.date(2026, 1, 1)
    # The next fourth Sunday after 3 December 2026 is 27 December 2026.
    assert cycle_date_problem(dt.date(2026, 12, 27), now=NOW, onboarded_on=onboarded) is None
    assert cycle_date_problem(dt.date(2026, 11, 22), now=NOW, onboarded_on=onboarded) is None
    assert cycle_date_problem(onboarded, now=NOW, onboarded_on=onboarded) is None


def test_a_cycle_date_after_the_next_cycle_is_refused() -> None:
    problem = cycle_date_problem(dt.date(2099, 1, 1), now=NOW, onboarded_on=None)
    assert problem is not None and "2099-01-01" in problem and "2026-12-27" in problem
    assert cycle_date_problem(dt.date(2026, 12, 28), now=NOW, onboarded_on=None) is not None


def test_a_cycle_date_before_onboarding_is_refused() -> None:
    problem = cycle_date_problem(dt.date(1900, 1, 1), now=NOW, onboarded_on=dt.date(2026, 1, 1))
    assert problem is not None and "onboarded_on" in problem and "2026-01-01" in problem


def test_without_an_onboarding_date_the_lookback_is_bounded() -> None:
    earliest = NOW.date() - dt.timedelta(days=DEFAULT_LOOKBACK_DAYS)
    assert cycle_date_problem(earliest, now=NOW, onboarded_on=None) is None
    problem = cycle_date_problem(earliest - dt.timedelta(days=1), now=NOW, onboarded_on=None)
    assert problem is not None and "onboarded_on" in problem


# --- late scheduled runs -------------------------------------------------------------------------------

SCHEDULED = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)


def _late(run_type: str, started: dt.datetime | None, hours: int = 12) -> str | None:
    return late_scheduled_run_problem(
        run_type=run_type,
        scheduled_for=SCHEDULED,
        started_at=started,
        late_after=dt.timedelta(hours=hours),
        dag_id="patch_cycle__cu_test",
        cycle_date=SCHEDULED.date(),
    )


def test_a_scheduled_run_on_time_or_within_its_grace_is_not_late():
    assert _late("scheduled", SCHEDULED + dt.timedelta(seconds=4)) is None
    assert _late("scheduled", SCHEDULED + dt.timedelta(hours=12)) is None


def test_a_scheduled_run_created_by_an_unpause_days_later_is_late_and_says_how_to_run_it():
    problem = _late("scheduled", dt.datetime(2026, 12, 3, 14, 5, tzinfo=dt.UTC))
    assert problem is not None
    assert "2026-11-22 cycle started 11.5 days after its scheduled time" in problem
    assert "trigger patch_cycle__cu_test with cycle_date 2026-11-22" in problem
    assert "airflow backfill create --dag-id patch_cycle__cu_test --from-date 2026-11-22" in problem
    assert "schedule.patch_late_runs" in problem
    assert "13.0 hours" in _late("scheduled", SCHEDULED + dt.timedelta(hours=13))


@pytest.mark.parametrize("run_type", ["manual", "backfill", "asset_triggered"])
def test_only_scheduled_runs_are_judged_late(run_type):
    assert _late(run_type, dt.datetime(2026, 12, 3, 14, 5, tzinfo=dt.UTC)) is None


def test_a_run_without_a_start_is_not_judged():
    assert _late("scheduled", None) is None


def test_a_frozen_plans_run_info_carries_the_runs_params_and_its_install_lists() -> None:
    info = run_info(
        cycle_date="2026-11-22",
        plan_hash="h",
        plan_url="s3://b/plan.json",
        install_list_urls={"full": "s3://b/full.yaml", "no_kernel": "s3://b/nk.yaml"},
        approved_patches=7,
        environments=["dev", "prod"],
        params={
            "dry_run": True,
            "soak_hours_override": 2,
            "soak_override_reason": "CAB-1",
            "window_override_reason": "  ",
        },
    )
    assert info["install_list_url"] == "s3://b/full.yaml"
    assert info["environments"] == ["dev", "prod"] and info["approved_patches"] == 7
    assert info["dry_run"] is True and info["soak_hours_override"] == 2
    assert info["window_override_reason"] is None, "a blank reason is no reason"
    assert "refused" not in info and "unplanned" not in info


def test_a_refused_or_unplanned_run_patches_nothing() -> None:
    for why in ({"refused": ["dryrun is not a parameter"]}, {"unplanned": "the plan task did not finish"}):
        info = run_info(cycle_date="2026-11-22", plan_hash="h", plan_url="u", **why)
        assert info["environments"] == [] and info["install_list_urls"] == {}
        assert info["install_list_url"] is None and info["dry_run"] is False
        key = next(iter(why))
        assert info[key] == why[key]
