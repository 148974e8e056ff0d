"""The tenant file's ``falcon.rollout`` section: absent from the demo tenants, its defaults for a tenant
that writes little, and every wrong value refused with an error naming its field and the value."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchcycle.config import TenantConfigError, load_tenant
from patchcycle.config.falcon_rollout import (
    FALCON_INSTALL_DOCUMENT,
    FalconRollout,
)
from patchcycle.config.loader import load_tenants
from patchcycle.config.vocabulary import EnvironmentName
from patchcycle.domain.terraform_vars import FALCON_DOCUMENT

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMPLETE = HERE / "fixtures" / "good" / "cu_complete.yaml"

SLIDER = {
    "id": "CloudAntiMalware",
    "type": "mlslider",
    "value": {"detection": "MODERATE", "prevention": "CAUTIOUS"},
}
TOGGLE = {"id": "ScriptBasedExecutionMonitoring", "type": "toggle", "value": {"enabled": True}}
ROLLOUT: dict[str, Any] = {
    "host_groups": {
        "nonprod": "cu-complete-nonprod",
        "staging": "cu-complete-staging",
        "prod": "cu-complete-prod",
    },
    "prevention_phases": [
        {"name": "non-prod", "environments": ["staging", "nonprod"], "settings": [SLIDER, TOGGLE]},
        {"name": "prod", "environments": ["prod"], "settings": [SLIDER]},
    ],
}


@pytest.fixture
def base() -> dict[str, Any]:
    return yaml.safe_load(COMPLETE.read_text())


def write(tmp_path: Path, data: dict[str, Any], rollout: dict[str, Any], tenant_id: str = "cu_gen") -> Path:
    data = {**copy.deepcopy(data), "id": tenant_id, "falcon": {"rollout": rollout}}
    path = tmp_path / f"{tenant_id}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(TenantConfigError) as caught:
        load_tenant(path)
    return caught.value.problems


def rollout(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(ROLLOUT), **changes}


def phase(index: int, **changes: Any) -> dict[str, Any]:
    """ROLLOUT with its phase ``index`` changed."""
    data = copy.deepcopy(ROLLOUT)
    data["prevention_phases"][index].update(changes)
    return data


def test_the_demo_tenants_have_no_rollout() -> None:
    tenants = load_tenants(REPO / "include" / "tenants").tenants
    assert tenants
    assert all(tenant.falcon is None or tenant.falcon.rollout is None for tenant in tenants)


def test_a_short_rollout_section_takes_the_defaults(tmp_path: Path, base: dict[str, Any]) -> None:
    tenant = load_tenant(write(tmp_path, base, {"host_groups": ROLLOUT["host_groups"]}))
    assert tenant.falcon is not None and tenant.falcon.required is True
    found = tenant.falcon.rollout
    assert found is not None
    assert found.schedule is None  # on demand only
    assert found.install_connection_id(tenant.id) == "falcon_install_cu_gen"
    assert (found.sensor_version.max_versions_behind, found.sensor_version.minimum_version) == (2, None)
    assert found.install.aws.document_name == FALCON_INSTALL_DOCUMENT
    assert found.install.azure.publisher == "Crowdstrike.Falcon"
    assert found.install.azure.api_client_connection(tenant.id) == "falcon_sensor_download_cu_gen"
    assert (found.install.azure.linux_type, found.install.azure.windows_type) == (
        "FalconSensorLinux",
        "FalconSensorWindows",
    )
    assert found.install.gcp.os_policy_assignment == "patchcycle-falcon-sensor"
    rate = found.install.aws.rate_control
    assert (rate.max_concurrency, rate.max_errors) == ("20%", "10%")
    assert found.prevention_phases == []


def test_the_default_install_document_is_the_one_terraform_declares() -> None:
    assert FALCON_INSTALL_DOCUMENT == FALCON_DOCUMENT
    tfvars = json.loads((REPO / "include/terraform/tenants/cu_alpha/terraform.tfvars.json").read_text())
    assert tfvars["falcon"]["document_name"] == FALCON_INSTALL_DOCUMENT


def test_a_complete_rollout_section_is_read(tmp_path: Path, base: dict[str, Any]) -> None:
    data = rollout(
        schedule="0 6 * * MON",
        connection_id="falcon_install_complete",
        sensor_version={"max_versions_behind": 1, "minimum_version": "7.14.16703"},
        install={
            "aws": {
                "document_name": "Tenant-FalconInstall",
                "rate_control": {"max_concurrency": 5, "max_errors": 0},
            },
            "azure": {"api_client_connection_id": "falcon_download_complete"},
            "gcp": {"os_policy_assignment": "falcon-sensor"},
        },
    )
    data["prevention_phases"][0].update(monitoring_days=7, detection_threshold=3, exclusions="apply_approved")
    found = load_tenant(write(tmp_path, base, data)).falcon.rollout
    assert found.schedule == "0 6 * * MON"
    assert found.install_connection_id("cu_gen") == "falcon_install_complete"
    assert found.sensor_version.minimum_version == "7.14.16703"
    assert found.install.aws.rate_control.max_concurrency == "5"
    assert found.install.azure.api_client_connection("cu_gen") == "falcon_download_complete"
    first, second = found.prevention_phases
    # Listed in patching order whatever order the file writes them in.
    assert first.environments == [EnvironmentName.nonprod, EnvironmentName.staging]
    assert (first.monitoring_days, first.detection_threshold, first.exclusions) == (7, 3, "apply_approved")
    # The paper's two weeks; any detection stops the next phase; exclusions are only proposed.
    assert (second.monitoring_days, second.detection_threshold, second.exclusions) == (14, 0, "propose")
    assert first.settings[0].value.prevention == "CAUTIOUS" and first.settings[1].value.enabled is True
    assert found.phase("prod") is second
    with pytest.raises(KeyError, match="no prevention phase 'canary' \\(declared: non-prod, prod\\)"):
        found.phase("canary")


@pytest.mark.parametrize("schedule", ["@daily", "0 * * * *", "0 2 * * SUN#3", "30 5 1,15 * *"])
def test_a_schedule_at_most_hourly_is_accepted(tmp_path: Path, base: dict[str, Any], schedule: str) -> None:
    assert load_tenant(write(tmp_path, base, rollout(schedule=schedule))).falcon.rollout.schedule == schedule


def test_an_environment_may_share_a_host_group_with_one_moved_in_the_same_phase(
    tmp_path: Path, base: dict[str, Any]
) -> None:
    data = rollout(host_groups={"nonprod": "g-np", "staging": "g-np", "prod": "g-prod"})
    assert (
        load_tenant(write(tmp_path, base, data)).falcon.rollout.host_groups[EnvironmentName.staging] == "g-np"
    )


def test_prevention_levels_up_to_detection_are_accepted(tmp_path: Path, base: dict[str, Any]) -> None:
    equal = {**SLIDER, "value": {"detection": "EXTRA_AGGRESSIVE", "prevention": "EXTRA_AGGRESSIVE"}}
    load_tenant(write(tmp_path, base, phase(1, settings=[equal])))


WRONG = [
    # (the rollout section, the field at fault, what the message must say)
    (rollout(schedule="every day"), "falcon.rollout.schedule", "'every day' is not a cron expression"),
    (
        rollout(schedule="0 0 * * * *"),
        "falcon.rollout.schedule",
        "'0 0 * * * *' is not a cron expression of five",
    ),
    (rollout(schedule="61 * * * *"), "falcon.rollout.schedule", "'61 * * * *' is not a cron expression"),
    (rollout(schedule="*/5 * * * *"), "falcon.rollout.schedule", "'*/5 * * * *' runs 5 minutes apart"),
    (rollout(schedule="0,30 9 * * *"), "falcon.rollout.schedule", "'0,30 9 * * *' runs 30 minutes apart"),
    (rollout(schedule="@reboot"), "falcon.rollout.schedule", "'@reboot' is not a cron expression"),
    (rollout(scheduel="0 6 * * MON"), "falcon.rollout.scheduel", "unknown field"),
    (rollout(connection_id="falcon install"), "falcon.rollout.connection_id", "'falcon install'"),
    (
        rollout(sensor_version={"max_versions_behind": None}),
        "falcon.rollout.sensor_version",
        "give max_versions_behind, minimum_version or both",
    ),
    (
        rollout(sensor_version={"max_versions_behind": -1}),
        "falcon.rollout.sensor_version.max_versions_behind",
        "greater than or equal to 0 (got -1)",
    ),
    (
        rollout(sensor_version={"minimum_version": "7.14"}),
        "falcon.rollout.sensor_version.minimum_version",
        "(got '7.14')",
    ),
    (rollout(host_groups={}), "falcon.rollout.host_groups", "at least 1 item"),
    (
        rollout(host_groups={"dev": "g-dev", "prod": "g-prod"}),
        "falcon.rollout.host_groups.dev.[key]",
        "(got 'dev')",
    ),
    (rollout(host_groups={"prod": " "}), "falcon.rollout.host_groups.prod", "at least 1 character"),
    (
        rollout(install={"aws": {"document_name": "x"}}),
        "falcon.rollout.install.aws.document_name",
        "(got 'x')",
    ),
    (
        rollout(install={"aws": {"rate_control": {"max_concurrency": "0", "max_errors": "1"}}}),
        "falcon.rollout.install.aws.rate_control.max_concurrency",
        "(got '0')",
    ),
    # Arc Run Command is not an install path Patchcycle implements: the option does not exist.
    (
        rollout(install={"azure": {"method": "run_command"}}),
        "falcon.rollout.install.azure.method",
        "unknown field",
    ),
    (
        rollout(install={"gcp": {"os_policy_assignment": "Falcon_Sensor"}}),
        "falcon.rollout.install.gcp.os_policy_assignment",
        "(got 'Falcon_Sensor')",
    ),
    (rollout(install={"oci": {}}), "falcon.rollout.install.oci", "unknown field"),
    (
        rollout(prevention_phases=list(reversed(ROLLOUT["prevention_phases"]))),
        "falcon.rollout",
        "phase 'non-prod' moves 'nonprod' after phase 'prod' moved 'prod'; "
        "phases move nonprod before staging before prod",
    ),
    (
        phase(0, environments=["nonprod", "prod"]),
        "falcon.rollout.prevention_phases.0.environments",
        "prod is moved in a phase of its own",
    ),
    (
        phase(0, environments=["nonprod", "nonprod"]),
        "falcon.rollout.prevention_phases.0.environments",
        "an environment is listed twice: ['nonprod', 'nonprod']",
    ),
    (
        phase(1, environments=["staging"]),
        "falcon.rollout",
        "environment 'staging' is moved by phase 'non-prod' and again by phase 'prod'",
    ),
    (phase(1, name="non-prod"), "falcon.rollout", "phase name 'non-prod' is used twice"),
    (phase(0, name="Non Prod"), "falcon.rollout.prevention_phases.0.name", "(got 'Non Prod')"),
    (phase(0, environments=["qa"]), "falcon.rollout.prevention_phases.0.environments.0", "(got 'qa')"),
    (phase(0, environments=[]), "falcon.rollout.prevention_phases.0.environments", "at least 1 item"),
    (
        rollout(host_groups={"nonprod": "g-np", "prod": "g-prod"}),
        "falcon.rollout",
        "phase 'non-prod' moves environment 'staging', which has no Falcon host group in host_groups",
    ),
    (
        rollout(host_groups={"nonprod": "g-shared", "staging": "g-st", "prod": "g-shared"}),
        "falcon.rollout",
        "'nonprod' (phase 'non-prod'), 'prod' (phase 'prod') share the host group 'g-shared' but not a phase",
    ),
    (
        phase(1, detection_threshold=-1),
        "falcon.rollout.prevention_phases.1.detection_threshold",
        "greater than or equal to 0 (got -1)",
    ),
    (
        phase(1, detection_threshold=2.5),
        "falcon.rollout.prevention_phases.1.detection_threshold",
        "(got 2.5)",
    ),
    (
        phase(0, monitoring_days=-1),
        "falcon.rollout.prevention_phases.0.monitoring_days",
        "greater than or equal to 0 (got -1)",
    ),
    (
        phase(0, monitoring_days=91),
        "falcon.rollout.prevention_phases.0.monitoring_days",
        "less than or equal to 90 (got 91)",
    ),
    (phase(0, monitoring_days=True), "falcon.rollout.prevention_phases.0", "monitoring_days: give a number"),
    (phase(0, exclusions="auto"), "falcon.rollout.prevention_phases.0.exclusions", "(got 'auto')"),
    (phase(0, settings=[]), "falcon.rollout.prevention_phases.0.settings", "at least 1 item"),
    (
        phase(0, settings=[{**SLIDER, "value": {"detection": "CAUTIOUS", "prevention": "AGGRESSIVE"}}]),
        "falcon.rollout.prevention_phases.0.settings.0.mlslider",
        "setting 'CloudAntiMalware': prevention AGGRESSIVE is more aggressive than detection CAUTIOUS",
    ),
    (
        phase(0, settings=[{**SLIDER, "value": {"detection": "HIGH", "prevention": "CAUTIOUS"}}]),
        "falcon.rollout.prevention_phases.0.settings.0.mlslider.value.detection",
        "(got 'HIGH')",
    ),
    (
        phase(0, settings=[{**SLIDER, "type": "slider"}]),
        "falcon.rollout.prevention_phases.0.settings.0",
        "Input tag 'slider'",
    ),
    (
        phase(0, settings=[{**TOGGLE, "value": {"enabled": "maybe"}}]),
        "falcon.rollout.prevention_phases.0.settings.0.toggle.value.enabled",
        "(got 'maybe')",
    ),
    (
        phase(0, settings=[SLIDER, SLIDER]),
        "falcon.rollout.prevention_phases.0.settings",
        "a setting is listed twice: ['CloudAntiMalware']",
    ),
    (
        phase(0, settings=[{**SLIDER, "id": "Cloud ML"}]),
        "falcon.rollout.prevention_phases.0.settings.0.mlslider.id",
        "(got 'Cloud ML')",
    ),
]


@pytest.mark.parametrize(("data", "where", "says"), WRONG)
def test_a_wrong_rollout_names_its_field_and_value(
    tmp_path: Path, base: dict[str, Any], data: dict[str, Any], where: str, says: str
) -> None:
    found = problems(write(tmp_path, base, data))
    at = [message for location, message in found if location == where]
    assert at, found
    assert any(says in message for message in at), at


def fits(data: dict[str, Any], environments: list[str], clouds: list[str]) -> list[str]:
    return FalconRollout.model_validate(data).problems(
        [EnvironmentName(name) for name in environments], clouds
    )


def test_a_rollout_that_fits_the_tenant_has_no_problems(tmp_path: Path, base: dict[str, Any]) -> None:
    tenant = load_tenant(write(tmp_path, base, rollout(install={"aws": {}, "gcp": {}})))
    assert tenant.falcon.rollout.problems(tenant.environment_names, tenant.clouds.declared) == []


def test_host_groups_and_phases_name_only_the_tenants_environments() -> None:
    found = fits(ROLLOUT, ["nonprod", "prod"], ["aws"])
    assert found == [
        "falcon.rollout.host_groups: environment 'staging' is not one the tenant declares (nonprod, prod)",
        "falcon.rollout.prevention_phases.0: phase 'non-prod' moves environment 'staging', "
        "which the tenant does not declare (nonprod, prod)",
    ]


def test_every_environment_of_the_tenant_has_a_host_group() -> None:
    data = rollout(host_groups={"prod": "g-prod"}, prevention_phases=[])
    assert fits(data, ["nonprod", "prod"], ["aws"]) == [
        "falcon.rollout.host_groups: the tenant's environment 'nonprod' has no Falcon host group"
    ]


def test_prod_is_not_the_first_phase_of_a_tenant_with_other_environments() -> None:
    data = rollout(prevention_phases=[ROLLOUT["prevention_phases"][1]])
    assert fits(data, ["nonprod", "staging", "prod"], ["aws"]) == [
        "falcon.rollout.prevention_phases.0: prod is the first phase, but the tenant also declares "
        "['nonprod', 'staging']: move them to Prevention (and monitor them) first"
    ]
    assert (
        fits({"host_groups": {"prod": "g"}, "prevention_phases": data["prevention_phases"]}, ["prod"], [])
        == []
    )


def test_an_install_path_is_written_only_for_a_cloud_of_the_tenant() -> None:
    data = rollout(install={"azure": {"linux_type": "FalconSensorLinux"}, "aws": {}})
    assert fits(data, ["nonprod", "staging", "prod"], ["aws"]) == [
        "falcon.rollout.install.azure: an install path for azure, where the tenant declares no hosts"
    ]
    # The defaults written by nobody are not an install path "for" a cloud.
    assert fits(ROLLOUT, ["nonprod", "staging", "prod"], ["gcp"]) == []


def test_a_tenant_file_whose_rollout_does_not_fit_its_environments_is_refused(
    tmp_path: Path, base: dict[str, Any]
) -> None:
    base["environments"] = [env for env in base["environments"] if env["name"] != "staging"]
    found = problems(write(tmp_path, base, ROLLOUT))
    assert [where for where, _ in found] == ["falcon"], found
    assert "falcon.rollout.host_groups: environment 'staging' is not one the tenant declares" in found[0][1]


def test_the_install_connection_is_the_tenants_alone(tmp_path: Path, base: dict[str, Any]) -> None:
    tenant = load_tenant(write(tmp_path, base, rollout(connection_id="falcon_install_shared")))
    assert (
        "falcon.rollout.connection_id",
        "connection",
        "falcon_install_shared",
    ) in tenant.exclusive_claims()


def test_the_extensions_api_client_is_the_tenants_alone(tmp_path: Path, base: dict[str, Any]) -> None:
    assert base["clouds"].get("azure"), "the fixture tenant has Arc machines"
    install = {"azure": {"api_client_connection_id": "falcon_download_shared"}}
    claims = load_tenant(write(tmp_path, base, rollout(install=install))).exclusive_claims()
    where = "falcon.rollout.install.azure.api_client_connection_id"
    assert (where, "connection", "falcon_download_shared") in claims
    # Without Arc machines nothing is handed the client, and nothing is claimed.
    base["clouds"].pop("azure")
    claims = load_tenant(write(tmp_path, base, rollout(install={}))).exclusive_claims()
    assert where not in [claim[0] for claim in claims]


def test_the_aws_installer_bucket_is_a_bucket_name(tmp_path: Path, base: dict[str, Any]) -> None:
    good = load_tenant(
        write(tmp_path, base, rollout(install={"aws": {"installer_bucket": "pc-falcon-pkgs"}}))
    )
    assert good.falcon.rollout.install.aws.installer_bucket == "pc-falcon-pkgs"
    assert load_tenant(write(tmp_path, base, ROLLOUT)).falcon.rollout.install.aws.installer_bucket is None
    found = problems(write(tmp_path, base, rollout(install={"aws": {"installer_bucket": "Bad_Bucket"}})))
    assert [where for where, _ in found] == ["falcon.rollout.install.aws.installer_bucket"], found
