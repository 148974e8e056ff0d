"""The tenant file's ``saml:`` section: sensible defaults with nothing written, and errors that name the
field when something is written wrong."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchcycle.config import TenantConfigError, load_tenant
from patchcycle.config.loader import load_tenants

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMPLETE = HERE / "fixtures" / "good" / "cu_complete.yaml"


@pytest.fixture
def base() -> dict[str, Any]:
    return yaml.safe_load(COMPLETE.read_text())


def write(tmp_path: Path, data: dict[str, Any], tenant_id: str = "cu_gen") -> Path:
    data = {**copy.deepcopy(data), "id": tenant_id}
    path = tmp_path / f"{tenant_id}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(TenantConfigError) as caught:
        load_tenant(path)
    return caught.value.problems


def test_the_demo_tenants_watch_what_their_clouds_trust_without_a_saml_section():
    tenants = {t.id: t for t in load_tenants(REPO / "include" / "tenants").tenants}
    assert {tid: t.saml.kinds(t.clouds.declared) for tid, t in tenants.items()} == {
        "cu_alpha": ["aws_iam", "entra_id", "gcp_workforce"],
        "cu_birch": ["aws_iam"],
        "cu_cedar": ["aws_iam"],
    }
    assert all(t.saml.tiers_days == [60, 30, 14, 7] for t in tenants.values())


def test_tiers_are_sorted_most_distant_first(tmp_path, base):
    tenant = load_tenant(write(tmp_path, {**base, "saml": {"tiers_days": [7, 90, 21]}}))
    assert tenant.saml.tiers_days == [90, 21, 7]


@pytest.mark.parametrize(
    ("saml", "where", "says"),
    [
        ({"tiers_days": [60, 0]}, "saml.tiers_days", "from 1 to 730, got 0"),
        ({"tiers_days": [30, 30]}, "saml.tiers_days", "listed twice"),
        ({"tiers_days": []}, "saml.tiers_days", ""),
        ({"tiers_days": [True]}, "saml.tiers_days.0", "integer"),
        ({"watch": ["okta"]}, "saml.watch.0", ""),
        ({"watch": ["aws_iam", "aws_iam"]}, "saml.watch", "listed twice"),
        ({"watch": ["aws_identity_center"]}, "saml", "give aws_identity_center.metadata_url"),
        ({"watch": ["entra_id"]}, "saml", "declare an Azure subscription or entra_id.connection_id"),
        ({"gcp_workforce": {"organization_id": "org-1"}}, "saml.gcp_workforce.organization_id", ""),
        ({"aws_identity_center": {"metadata_url": "ftp://idp"}}, "saml.aws_identity_center.metadata_url", ""),
        ({"tier": [30]}, "saml.tier", ""),
    ],
)
def test_a_wrong_saml_section_names_the_field(tmp_path, base, saml, where, says):
    # The complete fixture's clouds: AWS only, so entra_id needs a connection of its own.
    base["clouds"] = {"aws": base["clouds"]["aws"]}
    found = problems(write(tmp_path, {**base, "saml": saml}))
    at = [message for location, message in found if location == where]
    assert at, found
    assert says in at[0]


def test_a_tenant_without_azure_may_watch_an_entra_directory_through_a_connection_of_its_own(tmp_path, base):
    base["clouds"] = {"aws": base["clouds"]["aws"]}
    tenant = load_tenant(write(tmp_path, {**base, "saml": {"entra_id": {"connection_id": "entra_gen"}}}))
    assert tenant.saml.kinds(tenant.clouds.declared) == ["aws_iam", "entra_id"]
    assert ("saml.entra_id.connection_id", "connection", "entra_gen") in tenant.exclusive_claims()


def test_the_watch_can_be_turned_off_or_narrowed(tmp_path, base):
    off = load_tenant(write(tmp_path, {**base, "saml": {"enabled": False}}))
    assert off.saml.kinds(off.clouds.declared) == []
    narrow = load_tenant(write(tmp_path, {**base, "saml": {"watch": ["aws_iam"]}}, "cu_narrow"))
    assert narrow.saml.kinds(narrow.clouds.declared) == ["aws_iam"]
