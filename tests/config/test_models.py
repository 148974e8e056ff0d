"""Tests for the tenant configuration models, built directly from Python data."""

import copy
from datetime import UTC, datetime, time
from typing import Any

import pytest
from pydantic import ValidationError

from patchcycle.config import (
    ENVIRONMENT_ORDER,
    AwsAccount,
    AzureSubscription,
    ChangeWindow,
    Clouds,
    Contact,
    EnvironmentName,
    GcpProject,
    OsFamily,
    RateControl,
    Severity,
    Tenant,
    Weekday,
)

TENANT: dict[str, Any] = {
    "id": "cu_test",
    "display_name": "Test Credit Union",
    "owner": "sre-platform",
    "contacts": {
        "sre": [{"name": "SRE", "email": "sre@example.com"}],
        "compliance": [{"name": "Compliance", "email": "compliance@example.com"}],
    },
    "frameworks": ["soc2", "pci_dss"],
    "clouds": {"aws": {"accounts": [{"account_id": "123456789012", "regions": ["us-east-1"]}]}},
    "environments": [
        {"name": "nonprod", "rate_control": {"max_concurrency": "50%", "max_errors": "25%"}},
        {
            "name": "staging",
            "soak_hours": 24,
            "rate_control": {"max_concurrency": "25%", "max_errors": "10%"},
        },
        {
            "name": "prod",
            "change_window": {
                "timezone": "America/New_York",
                "days": ["sun"],
                "start": "01:00",
                "end": "06:00",
            },
            "rate_control": {"max_concurrency": "10%", "max_errors": "5%"},
            "canary": {"share": 0.1},
        },
    ],
    "baselines": [
        {
            "os_family": "amazon_linux_2",
            "classifications": ["Security"],
            "severities": ["Critical", "High"],
            "approve_after_days": 7,
        }
    ],
    "preflight": {"max_held_share": 0.25},
    "evidence": {"bucket": "patchcycle-evidence-cu-test"},
}


def tenant_data(**changes: Any) -> dict[str, Any]:
    """A deep copy of the valid tenant with top-level fields replaced."""
    data = copy.deepcopy(TENANT)
    data.update(changes)
    return data


def error_locations(exc: ValidationError) -> list[str]:
    return [".".join(str(part) for part in error["loc"]) for error in exc.errors()]


# --- vocabulary ---------------------------------------------------------------------------------


def test_os_family_platform() -> None:
    assert OsFamily.windows_2022.is_windows and not OsFamily.windows_2022.is_linux
    assert OsFamily.rhel_8.is_linux and not OsFamily.rhel_8.is_windows
    assert sum(family.is_windows for family in OsFamily) == 3


def test_severity_rank_and_values() -> None:
    assert [severity.value for severity in Severity] == ["Critical", "High", "Medium", "Low"]
    assert [severity.rank for severity in Severity] == [4, 3, 2, 1]


def test_environment_order() -> None:
    assert ENVIRONMENT_ORDER == (EnvironmentName.nonprod, EnvironmentName.staging, EnvironmentName.prod)


def test_weekday_numbers_match_datetime() -> None:
    sunday = datetime(2025, 1, 5)
    assert Weekday.sun.number == sunday.weekday() == 6
    assert Weekday.mon.number == 0


# --- rate control -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "0%", "101%", "150%", "01", "-1", "ten", "10 %", ""])
def test_max_concurrency_rejects(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RateControl(max_concurrency=value, max_errors="0")
    assert error_locations(caught.value) == ["max_concurrency"]


@pytest.mark.parametrize("value", ["101%", "150%", "-1", "5.5%", "1e3"])
def test_max_errors_rejects(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RateControl(max_concurrency="1", max_errors=value)
    assert error_locations(caught.value) == ["max_errors"]


def test_rate_control_accepts_bare_integers() -> None:
    rate = RateControl.model_validate({"max_concurrency": 5, "max_errors": 0})
    assert (rate.max_concurrency, rate.max_errors) == ("5", "0")


# --- change window ------------------------------------------------------------------------------


def window(**changes: Any) -> ChangeWindow:
    data: dict[str, Any] = {"timezone": "UTC", "days": ["sun"], "start": "22:00", "end": "02:00"}
    data.update(changes)
    return ChangeWindow.model_validate(data)


def test_change_window_parses_hh_mm() -> None:
    parsed = window(start="01:00", end="06:30")
    assert (parsed.start, parsed.end, parsed.crosses_midnight) == (time(1), time(6, 30), False)


def test_change_window_crossing_midnight() -> None:
    # Whether a moment is inside is the domain's (patchcycle.domain.window); the model only parses.
    from patchcycle.domain.window import current_span

    parsed = window()  # Sunday 22:00 to Monday 02:00, UTC
    assert parsed.crosses_midnight
    assert current_span(parsed, datetime(2025, 1, 5, 23, 0, tzinfo=UTC))  # Sunday
    assert current_span(parsed, datetime(2025, 1, 6, 1, 59, tzinfo=UTC))  # Monday
    assert not current_span(parsed, datetime(2025, 1, 6, 2, 0, tzinfo=UTC))
    assert not current_span(parsed, datetime(2025, 1, 5, 1, 0, tzinfo=UTC))  # Sunday, before opening
    assert not current_span(parsed, datetime(2025, 1, 6, 23, 0, tzinfo=UTC))  # Monday evening


def test_change_window_uses_its_timezone() -> None:
    from patchcycle.domain.window import current_span

    parsed = window(timezone="America/New_York", start="01:00", end="06:00")
    assert current_span(parsed, datetime(2025, 1, 5, 7, 0, tzinfo=UTC))  # 02:00 EST on Sunday
    assert not current_span(parsed, datetime(2025, 1, 5, 2, 0, tzinfo=UTC))  # Saturday 21:00 EST
    with pytest.raises(ValueError, match="timezone-aware"):
        current_span(parsed, datetime(2025, 1, 5, 7, 0))


def test_change_window_rejects_empty_window() -> None:
    with pytest.raises(ValidationError, match="window would be empty"):
        window(start="03:00", end="03:00")


@pytest.mark.parametrize("value", ["24:00", "1:00", "01:00:00", "noon"])
def test_change_window_rejects_malformed_time(value: str) -> None:
    with pytest.raises(ValidationError, match="HH:MM"):
        window(start=value)


def test_change_window_explains_unquoted_yaml_time() -> None:
    # YAML 1.1 reads an unquoted 10:00 as the base-60 integer 600.
    with pytest.raises(ValidationError, match="quote times"):
        window(start=600)


def test_change_window_rejects_unknown_timezone() -> None:
    with pytest.raises(ValidationError, match="'Mars/Olympus_Mons'"):
        window(timezone="Mars/Olympus_Mons")


def test_change_window_rejects_repeated_day() -> None:
    with pytest.raises(ValidationError, match="repeated: 'sun'"):
        window(days=["sun", "sun"])


# --- pieces -------------------------------------------------------------------------------------


def test_contact_email_error_names_value() -> None:
    with pytest.raises(ValidationError, match="'not-an-email' is not a valid email address"):
        Contact(name="SRE", email="not-an-email")


@pytest.mark.parametrize("account_id", ["12345678901", "1234567890123", "12345678901a"])
def test_aws_account_id_must_be_twelve_digits(account_id: str) -> None:
    with pytest.raises(ValidationError):
        AwsAccount(account_id=account_id, regions=["us-east-1"])


def test_aws_account_id_must_be_quoted() -> None:
    with pytest.raises(ValidationError, match="quoted"):
        AwsAccount.model_validate({"account_id": 123456789012, "regions": ["us-east-1"]})


@pytest.mark.parametrize("region", ["us-east-1", "us-gov-west-1", "ap-southeast-2"])
def test_aws_region_accepts(region: str) -> None:
    AwsAccount(account_id="123456789012", regions=[region])


@pytest.mark.parametrize("region", ["us-east", "US-EAST-1", "useast1", "us-east-1a"])
def test_aws_region_rejects(region: str) -> None:
    with pytest.raises(ValidationError):
        AwsAccount(account_id="123456789012", regions=[region])


def test_azure_subscription_id_must_be_uuid() -> None:
    with pytest.raises(ValidationError):
        AzureSubscription(subscription_id="not-a-uuid", resource_groups=["rg"])
    sub = AzureSubscription(subscription_id="6F1C2B1E-4A8D-4C1E-9A52-0C3F6E7D8A10", resource_groups=["rg"])
    assert sub.subscription_id == "6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10"


@pytest.mark.parametrize(("project_id", "ok"), [("alpha-dr-standby", True), ("Alpha", False), ("ab", False)])
def test_gcp_project_id(project_id: str, ok: bool) -> None:
    if ok:
        GcpProject(project_id=project_id, zones=["us-central1-a"])
    else:
        with pytest.raises(ValidationError):
            GcpProject(project_id=project_id, zones=["us-central1-a"])


def test_clouds_needs_one_and_lists_declared() -> None:
    with pytest.raises(ValidationError, match="at least one cloud"):
        Clouds()
    clouds = Clouds.model_validate(
        {
            "gcp": {"projects": [{"project_id": "alpha-dr-standby", "zones": ["us-central1-a"]}]},
            "aws": {"accounts": [{"account_id": "123456789012", "regions": ["us-east-1"]}]},
        }
    )
    assert clouds.declared == ["aws", "gcp"]


def test_duplicate_aws_accounts_rejected() -> None:
    account = {"account_id": "123456789012", "regions": ["us-east-1"]}
    with pytest.raises(ValidationError, match="repeated: '123456789012'"):
        Clouds.model_validate({"aws": {"accounts": [account, account]}})


# --- tenant -------------------------------------------------------------------------------------


def test_valid_tenant_and_helpers() -> None:
    tenant = Tenant.model_validate(tenant_data())
    assert tenant.dag_id == "patch_cycle__cu_test"
    assert tenant.environment_names == list(ENVIRONMENT_ORDER)
    assert tenant.environment("prod").canary.share == 0.1
    assert tenant.environment(EnvironmentName.staging).soak_hours == 24
    assert tenant.environment("nonprod").matches_tag_values == ["nonprod"]
    assert tenant.baseline_for(OsFamily.amazon_linux_2) is tenant.baselines[0]
    assert tenant.baseline_for("amazon_linux_2") is tenant.baselines[0]
    assert tenant.baseline_for(OsFamily.windows_2019) is None
    assert tenant.host_tags.environment == "Environment"
    assert tenant.preflight.kernel_gate == "hold_kernel_update"
    assert tenant.evidence.connection_id == "patchcycle_evidence"
    assert tenant.evidence.link_expiry_hours == 72


def test_tenant_is_frozen() -> None:
    tenant = Tenant.model_validate(tenant_data())
    with pytest.raises(ValidationError):
        tenant.id = "cu_other"  # type: ignore[misc]


def test_missing_environment_is_a_clear_key_error() -> None:
    tenant = Tenant.model_validate(tenant_data(environments=TENANT["environments"][1:]))
    with pytest.raises(KeyError, match="'cu_test' has no environment 'nonprod'.*staging, prod"):
        tenant.environment("nonprod")


def test_connection_ids_default_per_tenant() -> None:
    tenant = Tenant.model_validate(tenant_data())
    account = tenant.clouds.aws.accounts[0]  # type: ignore[union-attr]
    assert tenant.aws_connection_id(account) == "aws_cu_test"
    assert (
        tenant.aws_connection_id(account.model_copy(update={"connection_id": "aws_shared"})) == "aws_shared"
    )
    sub = AzureSubscription(subscription_id="6f1c2b1e-4a8d-4c1e-9a52-0c3f6e7d8a10", resource_groups=["rg"])
    assert tenant.azure_connection_id(sub) == "azure_cu_test"
    project = GcpProject(project_id="alpha-dr-standby", zones=["us-central1-a"], connection_id="gcp_dr")
    assert tenant.gcp_connection_id(project) == "gcp_dr"
    assert tenant.gcp_connection_id(project.model_copy(update={"connection_id": None})) == "gcp_cu_test"


def test_environment_subset_in_order_is_fine() -> None:
    Tenant.model_validate(tenant_data(environments=TENANT["environments"][1:]))


def test_environments_out_of_order() -> None:
    staging, prod = TENANT["environments"][1:]
    with pytest.raises(ValidationError, match="out of order: 'staging' is listed after 'prod'") as caught:
        Tenant.model_validate(tenant_data(environments=[prod, staging]))
    assert error_locations(caught.value) == ["environments"]


def test_duplicate_environment() -> None:
    nonprod, _, prod = TENANT["environments"]
    with pytest.raises(ValidationError, match="'prod' is declared more than once"):
        Tenant.model_validate(tenant_data(environments=[nonprod, prod, prod]))


def test_environment_tag_value_claimed_twice() -> None:
    nonprod, staging, prod = copy.deepcopy(TENANT["environments"])
    staging["tag_values"] = ["stage", "preprod"]
    prod["tag_values"] = ["prod", "preprod"]
    with pytest.raises(ValidationError, match="'preprod' is claimed by both 'staging' and 'prod'"):
        Tenant.model_validate(tenant_data(environments=[nonprod, staging, prod]))


def test_duplicate_baseline_family() -> None:
    baseline = TENANT["baselines"][0]
    with pytest.raises(ValidationError, match="more than one baseline for os_family 'amazon_linux_2'"):
        Tenant.model_validate(tenant_data(baselines=[baseline, baseline]))


def test_duplicate_framework() -> None:
    with pytest.raises(ValidationError, match="repeated: 'soc2'"):
        Tenant.model_validate(tenant_data(frameworks=["soc2", "soc2"]))


@pytest.mark.parametrize("tenant_id", ["cu", "CU_alpha", "1cu", "cu_alpha_", "cu-alpha", "c" * 41])
def test_tenant_id_pattern(tenant_id: str) -> None:
    with pytest.raises(ValidationError):
        Tenant.model_validate(tenant_data(id=tenant_id))


@pytest.mark.parametrize(
    "bucket", ["ab", "Patchcycle", "bucket..name", "192.168.1.10", "xn--bucket", "name-", "a" * 64]
)
def test_evidence_bucket_rules(bucket: str) -> None:
    with pytest.raises(ValidationError):
        Tenant.model_validate(tenant_data(evidence={"bucket": bucket}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("soak_hours", 721),
        ("soak_hours", -1),
        ("health_error_rate_tolerance", 1.5),
        ("canary", {"share": 1.0}),
        ("canary", {"share": -0.1}),
    ],
)
def test_environment_ranges(field: str, value: Any) -> None:
    nonprod = {**TENANT["environments"][0], field: value}
    with pytest.raises(ValidationError):
        Tenant.model_validate(tenant_data(environments=[nonprod]))


def test_environment_tag_values_collide_case_insensitively():
    """Host tags are matched ignoring case, so 'Prod' on staging and the default 'prod' on prod clash."""
    import pytest
    import yaml
    from pydantic import ValidationError

    from patchcycle.config.models import Tenant
    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_alpha.yaml").read_text())
    data["environments"][1]["tag_values"] = ["Prod"]
    with pytest.raises(ValidationError, match="claimed by both"):
        Tenant.model_validate(data)


def test_rate_control_accepts_exactly_what_ssm_accepts():
    """SSM's SendCommand rejects '01', '05%' and '0' concurrency; so must the tenant file, before a cycle."""
    import pytest
    from pydantic import ValidationError

    from patchcycle.config.models import RateControl

    for good in (("1", "0"), ("10", "5%"), ("50%", "10%"), ("100%", "100%"), ("9%", "0%")):
        RateControl(max_concurrency=good[0], max_errors=good[1])
    for concurrency, errors in (("0", "0"), ("01", "0"), ("10", "05%"), ("10", "007"), ("101%", "0")):
        with pytest.raises(ValidationError):
            RateControl(max_concurrency=concurrency, max_errors=errors)


def test_sla_days_default_and_must_not_loosen_with_severity():
    import pytest
    from pydantic import ValidationError

    from patchcycle.config.models import SlaDays

    assert SlaDays() == SlaDays(critical=15, high=30, medium=60, low=90)
    with pytest.raises(ValidationError, match="must not loosen with severity"):
        SlaDays(critical=30, high=15)


# --- rollback -----------------------------------------------------------------------------------


def test_rollback_is_manual_unless_the_tenant_opts_in() -> None:
    assert Tenant.model_validate(tenant_data()).rollback is None
    assert Tenant.model_validate(tenant_data(rollback={})).rollback.automatic is False
    assert Tenant.model_validate(tenant_data(rollback={"automatic": True})).rollback.automatic is True
    with pytest.raises(ValidationError) as exc:
        Tenant.model_validate(tenant_data(rollback={"automatic": True, "hosts": "all"}))
    assert error_locations(exc.value) == ["rollback.hosts"]


def test_late_scheduled_runs_are_refused_unless_the_tenant_patches_them() -> None:
    default = Tenant.model_validate(tenant_data())
    assert (default.schedule.late_after_hours, default.schedule.patch_late_runs) == (12, False)
    catch_up = Tenant.model_validate(tenant_data(schedule={"patch_late_runs": True, "late_after_hours": 48}))
    assert (catch_up.schedule.late_after_hours, catch_up.schedule.patch_late_runs) == (48, True)


@pytest.mark.parametrize(
    "schedule",
    [{"late_after_hours": 0}, {"late_after_hours": 169}, {"late_after_hours": True}, {"catch_up": True}],
)
def test_a_bad_schedule_policy_is_refused_naming_the_field(schedule: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as exc:
        Tenant.model_validate(tenant_data(schedule=schedule))
    assert all(location.startswith("schedule") for location in error_locations(exc.value))
    assert next(iter(schedule)) in str(exc.value)
