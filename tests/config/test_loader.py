"""Tests for reading tenant files: good files load, and bad ones say which file, field and value."""

import copy
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchcycle.config import (
    TenantConfigError,
    default_tenants_dir,
    load_tenant,
    load_tenants,
)
from patchcycle.config.models import Framework, OsFamily
from tests.config.tenant_files import own_resources

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = HERE / "fixtures"
COMPLETE = FIXTURES / "good" / "cu_complete.yaml"
DEMO_TENANTS = REPO / "include" / "tenants"


@pytest.fixture(scope="module")
def complete() -> dict[str, Any]:
    """The parsed complete fixture, used as the base of generated files."""
    return yaml.safe_load(COMPLETE.read_text())


def write_tenant(directory: Path, data: Any, tenant_id: str = "cu_gen") -> Path:
    """Write ``data`` as ``<tenant_id>.yaml``, setting its id to match unless it is already set."""
    if isinstance(data, dict):
        data = {"id": tenant_id, **{key: value for key, value in data.items() if key != "id"}}
    path = directory / f"{tenant_id}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(path: Path) -> TenantConfigError:
    with pytest.raises(TenantConfigError) as caught:
        load_tenant(path)
    return caught.value


def problem_at(error: TenantConfigError, location: str) -> str:
    """The message of the problem at ``location``, which must be present."""
    messages = [message for where, message in error.problems if where == location]
    assert messages, f"no problem at {location!r} in {error.problems}"
    return messages[0]


# --- good files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cu_minimal.yaml", "cu_complete.yaml"])
def test_good_fixtures_load(name: str) -> None:
    tenant = load_tenant(FIXTURES / "good" / name)
    assert tenant.id == Path(name).stem


def test_complete_fixture_values() -> None:
    tenant = load_tenant(COMPLETE)
    assert tenant.clouds.declared == ["aws", "azure", "gcp"]
    assert tenant.environment("nonprod").rate_control.max_concurrency == "10"
    assert tenant.environment("prod").matches_tag_values == ["prod", "production"]
    assert tenant.clouds.aws is not None and tenant.clouds.aws.accounts[0].account_id == "012345678901"
    assert tenant.preflight.kernel_gate == "hold_host"


@pytest.mark.parametrize("tenant_id", ["cu_alpha", "cu_birch", "cu_cedar"])
def test_demo_tenants_load(tenant_id: str) -> None:
    tenant = load_tenant(DEMO_TENANTS / f"{tenant_id}.yaml")
    assert tenant.id == tenant_id
    assert tenant.owner == "sre-platform"
    assert tenant.environment_names == ["nonprod", "staging", "prod"]
    assert tenant.environment("prod").change_window is not None
    assert tenant.incident_runbook_url == f"https://runbooks.example.com/patchcycle/{tenant_id}"
    assert tenant.evidence.bucket == f"patchcycle-evidence-{tenant_id.replace('_', '-')}"


def test_demo_tenant_alpha_facts() -> None:
    alpha = load_tenant(DEMO_TENANTS / "cu_alpha.yaml")
    assert alpha.display_name == "Alpha Federal Credit Union"
    assert alpha.frameworks == [Framework.soc2, Framework.pci_dss, Framework.sox]
    assert alpha.clouds.declared == ["aws", "azure", "gcp"]
    assert [b.os_family for b in alpha.baselines] == [
        OsFamily.amazon_linux_2,
        OsFamily.rhel_8,
        OsFamily.ubuntu_22_04,
        OsFamily.windows_2019,
    ]
    prod = alpha.environment("prod")
    assert prod.canary.share == 0.1 and not prod.approval_required
    assert prod.change_window is not None and prod.change_window.timezone == "America/New_York"
    assert alpha.environment("staging").soak_hours == 24
    assert alpha.preflight.max_held_share == 0.25


def test_load_tenants_default_directory_holds_the_demo_tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATCHCYCLE_TENANTS_DIR", raising=False)
    assert default_tenants_dir() == DEMO_TENANTS
    tenants = load_tenants()
    assert tenants.ok, "\n".join(map(str, tenants.errors))
    assert [tenant.id for tenant in tenants.tenants] == ["cu_alpha", "cu_birch", "cu_cedar"]
    assert tenants.get("cu_birch") is tenants.tenants[1]
    assert tenants.get("cu_nobody") is None


def test_tenants_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "good" / "cu_minimal.yaml", tmp_path)
    monkeypatch.setenv("PATCHCYCLE_TENANTS_DIR", str(tmp_path))
    assert default_tenants_dir() == tmp_path
    assert [tenant.id for tenant in load_tenants().tenants] == ["cu_minimal"]


# --- bad files ----------------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path, complete: dict[str, Any]) -> None:
    path = write_tenant(tmp_path, {**complete, "operator": "PatchOperator"})
    error = load_error(path)
    assert str(error).startswith(f"{path}: invalid tenant configuration:\n")
    assert "  - operator: unknown field (not allowed)" in str(error)


def test_unknown_nested_key_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    error = load_error(FIXTURES / "bad" / "cu_typo.yaml")
    assert str(error) == (
        "tests/config/fixtures/bad/cu_typo.yaml: invalid tenant configuration:\n"
        "  - environments.0.rate_control.max_error: unknown field (not allowed)\n"
        "  - runbook: unknown field (not allowed)"
    )


def test_bad_max_errors(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["environments"][1]["rate_control"]["max_errors"] = "150%"
    path = write_tenant(tmp_path, data)
    error = load_error(path)
    assert error.path == path
    assert error.problems == [
        (
            "environments.1.rate_control.max_errors",
            "String should match pattern '^([1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$' (got '150%')",
        )
    ]
    text = str(error)
    assert text.startswith(
        f"{path}: invalid tenant configuration:\n  - environments.1.rate_control.max_errors: "
    )
    assert text.endswith("(got '150%')")


def test_bad_timezone(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["environments"][2]["change_window"]["timezone"] = "America/Gotham"
    error = load_error(write_tenant(tmp_path, data))
    message = problem_at(error, "environments.2.change_window.timezone")
    assert "unknown timezone 'America/Gotham'" in message
    assert message.count("America/Gotham") == 1  # the value is named once, not repeated by "(got ...)"


def test_unquoted_time_in_yaml(tmp_path: Path) -> None:
    text = (
        COMPLETE.read_text()
        .replace('start: "23:00"', "start: 23:00")
        .replace("id: cu_complete", "id: cu_gen")
    )
    path = tmp_path / "cu_gen.yaml"
    path.write_text(text)
    message = problem_at(load_error(path), "environments.2.change_window.start")
    assert "1380" in message and "quote times" in message


def test_environments_out_of_order(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    nonprod, staging, prod = data["environments"]
    data["environments"] = [nonprod, prod, staging]
    path = write_tenant(tmp_path, data)
    error = load_error(path)
    assert str(path) in str(error)
    message = problem_at(error, "environments")
    assert "out of order" in message and "'staging' is listed after 'prod'" in message
    assert "nonprod before staging before prod" in message


def test_duplicate_environment(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["environments"].append(copy.deepcopy(data["environments"][2]))
    error = load_error(write_tenant(tmp_path, data))
    message = problem_at(error, "environments")
    assert "environment 'prod' is declared more than once (entries 2 and 3)" in message


def test_missing_required_field(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = {key: value for key, value in complete.items() if key != "evidence"}
    path = write_tenant(tmp_path, data)
    error = load_error(path)
    assert error.problems == [("evidence", "required field is missing")]
    assert str(error) == f"{path}: invalid tenant configuration:\n  - evidence: required field is missing"


def test_missing_nested_field(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    del data["evidence"]["bucket"]
    error = load_error(write_tenant(tmp_path, data))
    assert problem_at(error, "evidence.bucket") == "required field is missing"


def test_bad_email(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["contacts"]["sre"][1]["email"] = "sre-lead at example.com"
    error = load_error(write_tenant(tmp_path, data))
    message = problem_at(error, "contacts.sre.1.email")
    assert message == "'sre-lead at example.com' is not a valid email address"


def test_bad_account_id(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["clouds"]["aws"]["accounts"][1]["account_id"] = "10987654321"
    path = write_tenant(tmp_path, data)
    error = load_error(path)
    assert str(path) in str(error)
    assert "(got '10987654321')" in problem_at(error, "clouds.aws.accounts.1.account_id")


def test_unquoted_account_id(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["clouds"]["aws"]["accounts"][1]["account_id"] = 109876543210
    error = load_error(write_tenant(tmp_path, data))
    assert "must be quoted" in problem_at(error, "clouds.aws.accounts.1.account_id")


def test_bad_enum_value(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["baselines"][1]["os_family"] = "windows_2025"
    error = load_error(write_tenant(tmp_path, data))
    assert "(got 'windows_2025')" in problem_at(error, "baselines.1.os_family")


def test_every_problem_is_reported(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["frameworks"] = ["soc2", "iso27001"]
    data["preflight"]["max_held_share"] = 2
    data["evidence"]["bucket"] = "Bad_Bucket"
    error = load_error(write_tenant(tmp_path, data))
    assert [where for where, _ in error.problems] == [
        "frameworks.1",
        "preflight.max_held_share",
        "evidence.bucket",
    ]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "cu_empty.yaml"
    path.write_text("# nothing but a comment\n")
    error = load_error(path)
    expected = (
        f"{path}: invalid tenant configuration:\n  - file is empty; expected a mapping of tenant fields"
    )
    assert str(error) == expected


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "cu_list.yaml"
    path.write_text("- id: cu_list\n")
    text = str(load_error(path))
    assert text.startswith(f"{path}: ")
    assert "top level must be a mapping of tenant fields, got a list" in text


def test_yaml_syntax_error_names_file_and_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    error = load_error(FIXTURES / "bad" / "cu_syntax.yaml")
    text = str(error)
    assert text.startswith("tests/config/fixtures/bad/cu_syntax.yaml: invalid tenant configuration:\n")
    assert "YAML syntax error at line 6, column 7" in text
    assert "started at line 5" in text


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cu_dup.yaml"
    path.write_text("id: cu_dup\nowner: sre-platform\nowner: someone-else\n")
    text = str(load_error(path))
    assert str(path) in text and "line 3" in text and "duplicate key 'owner'" in text


def test_id_must_match_file_name(tmp_path: Path, complete: dict[str, Any]) -> None:
    path = tmp_path / "cu_x.yaml"
    path.write_text(yaml.safe_dump({**complete, "id": "cu_y"}))
    error = load_error(path)
    message = problem_at(error, "id")
    assert "'cu_y' does not match the file name 'cu_x.yaml'" in message
    assert str(error).startswith(f"{path}: ")


def test_id_mismatch_reported_with_other_problems(tmp_path: Path, complete: dict[str, Any]) -> None:
    path = tmp_path / "cu_x.yaml"
    path.write_text(yaml.safe_dump({**complete, "id": "cu_y", "extra": 1}))
    assert [where for where, _ in load_error(path).problems] == ["id", "extra"]


def test_no_clouds_declared(tmp_path: Path, complete: dict[str, Any]) -> None:
    error = load_error(write_tenant(tmp_path, {**complete, "clouds": {}}))
    assert "declare at least one cloud" in problem_at(error, "clouds")


def test_duplicate_baseline_os_family(tmp_path: Path, complete: dict[str, Any]) -> None:
    data = copy.deepcopy(complete)
    data["baselines"].append({**data["baselines"][0], "approve_after_days": 3})
    error = load_error(write_tenant(tmp_path, data))
    assert "more than one baseline for os_family 'amazon_linux_2'" in problem_at(error, "baselines")


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "cu_gone.yaml")
    assert error.problems == [("", "file not found")]


def test_display_path_is_relative_to_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tenants").mkdir()
    path = tmp_path / "tenants" / "cu_empty.yaml"
    path.write_text("")
    monkeypatch.chdir(tmp_path)
    assert str(load_error(path)).startswith("tenants/cu_empty.yaml: ")


def test_error_survives_pickling(tmp_path: Path) -> None:
    path = tmp_path / "cu_empty.yaml"
    path.write_text("")
    error = load_error(path)
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.path, copied.problems, str(copied)) == (error.path, error.problems, str(error))


# --- directories --------------------------------------------------------------------------------


def test_one_good_one_bad(tmp_path: Path, complete: dict[str, Any]) -> None:
    write_tenant(tmp_path, complete, "cu_good")
    bad = write_tenant(tmp_path, {**complete, "clouds": {}}, "cu_bad")
    (tmp_path / "notes.txt").write_text("not a tenant")
    (tmp_path / ".cu_good.yaml.swp").write_text("editor swap file")
    result = load_tenants(tmp_path)
    assert not result.ok
    assert [tenant.id for tenant in result.tenants] == ["cu_good"]
    assert [error.path for error in result.errors] == [bad]


def test_files_load_in_name_order_and_yml_counts(tmp_path: Path, complete: dict[str, Any]) -> None:
    for number, tenant_id in enumerate(("cu_zeta", "cu_beta", "cu_mu")):
        write_tenant(tmp_path, own_resources(complete, number), tenant_id)
    (tmp_path / "cu_mu.yaml").rename(tmp_path / "cu_mu.yml")
    result = load_tenants(str(tmp_path))
    assert result.ok
    assert [tenant.id for tenant in result.tenants] == ["cu_beta", "cu_mu", "cu_zeta"]


def test_duplicate_tenant_id_is_an_error_on_the_later_file(tmp_path: Path, complete: dict[str, Any]) -> None:
    first = write_tenant(tmp_path, complete, "cu_twin")
    later = tmp_path / "cu_twin.yml"
    shutil.copy(first, later)
    result = load_tenants(tmp_path)
    assert [tenant.id for tenant in result.tenants] == ["cu_twin"]
    assert [error.path for error in result.errors] == [later]
    assert "tenant 'cu_twin' is already defined in cu_twin.yaml" in str(result.errors[0])


def test_missing_directory_is_reported_not_raised(tmp_path: Path) -> None:
    result = load_tenants(tmp_path / "nowhere")
    assert result.tenants == () and len(result.errors) == 1
    assert "tenants directory does not exist" in str(result.errors[0])
