"""The Patchcycle page as the api-server serves it: Airflow's own FastAPI app (``create_app``) with the
plugin loaded from the plugins folder, SimpleAuthManager, and fleetsim's S3 holding the demo tenants'
packs. Through FastAPI's TestClient: no browser, no server process.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from devtools.stack import AUTH_MANAGER
from patchcycle.config.exceptions import load_tenant_exception_register
from patchcycle.config.loader import load_tenants
from patchcycle.domain.exceptions import active_exceptions
from patchcycle.domain.fleet_status import LISTED_HOST_STATES
from patchcycle.reports.store import CyclePaths
from tests.ui.conftest import DEC, EVIDENCE_CONNECTION, REFUSAL, UNREACHABLE_TENANT, WrittenPack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ui-page-app")]

PAGE = "/patchcycle/"


@pytest.fixture(scope="module")
def client(packs, tmp_path_factory) -> Iterator[TestClient]:
    """Airflow's api-server app, as ``airflow api-server`` builds it, with a viewer ``sre``."""
    home = tmp_path_factory.mktemp("api-server")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", AUTH_MANAGER)
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "sre:viewer")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(home / "passwords.json"))
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
        from airflow import settings
        from airflow.api_fastapi.app import create_app, purge_cached_app
        from airflow.models.revoked_token import RevokedToken

        # Validating a token asks the metadata DB whether it was revoked; that table is all these
        # requests read, so the unit tests' DB gets it instead of a full migration.
        RevokedToken.metadata.create_all(settings.engine, tables=[RevokedToken.__table__])
        try:
            yield TestClient(create_app(), follow_redirects=False)
        finally:
            purge_cached_app()


@pytest.fixture(scope="module")
def token(client) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="sre", role="viewer"))


def signed_in(client: TestClient, token: str, path: str) -> Any:
    # The UI's session: the JWT in the `_token` cookie its login sets.
    client.cookies.set("_token", token)
    try:
        return client.get(path)
    finally:
        client.cookies.clear()


def rows(page: str) -> dict[str, str]:
    """The page's table rows (their HTML), by tenant id."""
    found = re.findall(r'<tr data-tenant="([a-z0-9_]+)">(.*?)</tr>', page, flags=re.S)
    return dict(found)


def text(value: str) -> str:
    return html.escape(value, quote=True)


def pack_url(tenant_id: str, key: str) -> str:
    return f"/patchcycle/tenants/{tenant_id}/packs/{key}"


def test_the_plugin_is_registered_from_the_plugins_folder(client, token) -> None:
    plugins = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}).json()["plugins"]
    plugin = next(p for p in plugins if p["name"] == "patchcycle")
    assert plugin["source"] == "$PLUGINS_FOLDER/patchcycle_plugin.py"
    assert [(a["url_prefix"], a["name"]) for a in plugin["fastapi_apps"]] == [("/patchcycle", "Patchcycle")]
    (view,) = plugin["external_views"]
    assert (view["name"], view["destination"], view["url_route"], view["nav_top_level"]) == (
        "Patchcycle",
        "nav",
        "patchcycle",
        True,
    )


def test_without_a_valid_token_the_page_sends_to_login_and_the_packs_refuse(client, packs) -> None:
    alpha = packs["cu_alpha"]
    page = client.get(PAGE)
    assert page.status_code == 307
    assert page.headers["location"] == "/api/v2/auth/login?next=%2Fpatchcycle%2F"
    assert client.get(pack_url("cu_alpha", alpha.report_key)).status_code == 401
    assert signed_in(client, "not-a-jwt", PAGE).status_code == 307
    assert signed_in(client, "not-a-jwt", pack_url("cu_alpha", alpha.report_key)).status_code == 403
    bearer = {"Authorization": "Bearer not-a-jwt"}
    assert client.get(pack_url("cu_alpha", alpha.evidence_key), headers=bearer).status_code == 403


def test_the_page_lists_every_tenant_with_its_latest_cycle(client, token, packs) -> None:
    response = signed_in(client, token, PAGE)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    by_tenant = rows(response.text)
    assert sorted(by_tenant) == sorted(t.id for t in load_tenants().tenants)
    for tenant_id, pack in packs.items():
        row = by_tenant[tenant_id]
        cycle, summary = pack.evidence["cycle"], pack.evidence["summary"]
        run_link = f'href="/dags/{pack.dag_id}/runs/{quote(cycle["run_id"], safe="")}"'
        assert run_link in row and cycle["cycle_date"] in row
        assert f'class="outcome outcome-{cycle["outcome"]}">{cycle["outcome"]}<' in row
        before, after = summary["compliance_before"] * 100, summary["compliance_after"] * 100
        assert f"{before:.1f}% →\n" in row and f"{after:.1f}%" in row
        left = [h for h in pack.evidence["hosts"] if h["final_state"] in LISTED_HOST_STATES]
        for host in left:
            assert text(host["name"]) in row and text(host["reason"]) in row, host["name"]
        if not left:
            assert '<span class="muted">none</span>' in row
        overdue = pack.evidence["risk"]["summary"]["overdue_by_severity"]["Critical"]
        assert (f'state-failed">{overdue}</span>' in row) is (overdue > 0)
        assert f'href="{pack_url(tenant_id, pack.evidence_key)}"' in row
        assert f'href="{pack_url(tenant_id, pack.report_key)}" download' in row
        today = dt.datetime.now(dt.UTC).date()
        for acceptance in active_exceptions(load_tenant_exception_register(tenant_id), today):
            assert acceptance.id in row
    # The refused December run is not cu_alpha's latest cycle; the row says it was attempted.
    assert f"last attempt refused on {DEC}: {text(REFUSAL)}" in by_tenant["cu_alpha"]
    assert "last attempt" not in by_tenant["cu_birch"]


def test_an_unreachable_store_is_an_error_on_its_tenants_row_only(client, token, packs) -> None:
    by_tenant = rows(signed_in(client, token, PAGE).text)
    bucket = next(t.evidence.bucket for t in load_tenants().tenants if t.id == UNREACHABLE_TENANT)
    problem = f"{UNREACHABLE_TENANT}: evidence store s3://{bucket}/cycles/ unreadable: NoSuchBucket"
    assert problem in by_tenant[UNREACHABLE_TENANT] and 'role="alert"' in by_tenant[UNREACHABLE_TENANT]
    assert all('role="alert"' not in by_tenant[t] for t in packs)


def test_the_evidence_endpoints_stream_the_pack_from_the_tenants_store(client, token, packs) -> None:
    alpha: WrittenPack = packs["cu_alpha"]
    evidence = signed_in(client, token, pack_url("cu_alpha", alpha.evidence_key))
    assert evidence.status_code == 200 and evidence.content == alpha.evidence_bytes
    assert evidence.headers["content-type"] == "application/json"
    assert evidence.headers["content-disposition"].startswith("inline;")
    report = signed_in(client, token, pack_url("cu_alpha", alpha.report_key))
    assert report.status_code == 200 and report.content == alpha.report
    assert report.headers["content-type"] == "application/pdf"
    assert report.headers["content-disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    "tenant_id, key",
    [
        ("cu_alpha", f"cycles/{DEC}/runs/nothing-here/pack/report.pdf"),  # no such pack
        ("cu_alpha", "cycles/2026-11-22/plans/abc/plan.json"),  # not a pack file
        ("cu_alpha", "cycles/2026-11-22/runs/r/pack/../../../other/evidence.json"),
        ("cu_nope", "cycles/2026-11-22/runs/r/pack/report.pdf"),  # no such tenant
    ],
)
def test_only_pack_files_of_a_known_tenant_are_served(client, token, packs, tenant_id, key) -> None:
    assert signed_in(client, token, pack_url(tenant_id, key)).status_code == 404


def test_a_tenant_reads_only_its_own_store(client, token, packs) -> None:
    # cu_alpha's refused December run asked of cu_birch's store: not there.
    key = CyclePaths(DEC, f"scheduled__{DEC}T02:00:00+00:00").pack("report.pdf")
    assert signed_in(client, token, pack_url("cu_alpha", key)).status_code == 200
    assert signed_in(client, token, pack_url("cu_birch", key)).status_code == 404


def test_tenants_whose_runs_the_user_may_not_read_are_left_out(client, token, packs) -> None:
    from patchcycle.ui.app import tenant_access
    from patchcycle.ui.plugin import PatchcyclePlugin

    app = PatchcyclePlugin.fastapi_apps[0]["app"].app
    app.dependency_overrides[tenant_access] = lambda: lambda user, tenant: tenant.id != "cu_birch"
    try:
        assert "cu_birch" not in rows(signed_in(client, token, PAGE).text)
        birch = packs["cu_birch"]
        assert signed_in(client, token, pack_url("cu_birch", birch.report_key)).status_code == 403
    finally:
        app.dependency_overrides.clear()


def test_an_unreadable_pack_is_an_error_naming_its_key_and_the_rest_still_show(client, token, packs) -> None:
    # Last in the module: the store is write-once, so this newer, broken pack stays.
    from patchcycle.hooks.s3 import EvidenceBucketHook
    from patchcycle.reports.store import EvidenceStore

    birch = packs["cu_birch"]
    key = CyclePaths(DEC, "manual__2026-12-28T09:00:00+00:00").pack("evidence.json")
    EvidenceStore(EvidenceBucketHook(aws_conn_id=EVIDENCE_CONNECTION), birch.bucket).put_bytes(
        key, b"{truncated"
    )
    by_tenant = rows(signed_in(client, token, PAGE).text)
    assert (
        f"cu_birch: evidence pack s3://{birch.bucket}/{key} unreadable: JSONDecodeError"
        in by_tenant["cu_birch"]
    )
    alpha = packs["cu_alpha"]
    assert f'href="{pack_url("cu_alpha", alpha.report_key)}" download' in by_tenant["cu_alpha"]
