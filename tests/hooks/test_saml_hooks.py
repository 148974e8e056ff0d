"""The SAML watch's hooks against fleetsim over real HTTP, configured only by Airflow connections: IAM SAML
providers per account (boto3 through the Amazon provider), Microsoft Graph service principals, and
Google Cloud workforce pool providers; and an IdP's published metadata for Identity Center."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest
from fleetsim_testkit import group, scenario_dict

from devtools.local import aws_connection
from fleetsim.saml import (
    CertificateSeed,
    EntraAppSeed,
    WorkforceProviderSeed,
    make_certificate,
    metadata_document,
)
from patchcycle.domain.saml import TrustPoint, observe_key_credentials, parse_metadata
from patchcycle.hooks.aws_iam_saml import IamSamlHook, WrongAccount
from patchcycle.hooks.entra_graph import EntraGraphHook, GraphError
from patchcycle.hooks.gcp_workforce import WorkforcePoolsHook
from patchcycle.hooks.saml_metadata import MetadataFetchError, fetch_metadata

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-saml")]

ACCOUNT = "444455556666"
OTHER = "777788889999"
PROJECT = "saml-hooks-proj"
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": "cu_saml",
            "aws": {"account_id": ACCOUNT, "region": "us-east-1", "groups": [group("sh", 1)]},
            "azure": {
                "subscription_id": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
                "resource_group": "rg-saml",
                "groups": [group("sa", 1, "ubuntu_22_04")],
            },
            "gcp": {"project_id": PROJECT, "groups": [group("sg", 1, "ubuntu_22_04", zone="us-central1-a")]},
        }
    ],
    catalog=[],
)
NOW = dt.datetime.now(dt.UTC)


def connect(monkeypatch, conn_id: str, conn: dict | str) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn if isinstance(conn, str) else json.dumps(conn))


# -- AWS IAM ---------------------------------------------------------------------------------------------


def test_iam_lists_every_provider_of_the_account_with_its_metadata_and_validity(fleet, monkeypatch):
    connect(monkeypatch, "aws_saml", aws_connection(fleet.url, "us-east-1", ACCOUNT))
    near = make_certificate(CertificateSeed(days_left=12), "near", NOW)
    document = metadata_document("https://idp.example/near", [near])
    iam = fleet.client("iam", ACCOUNT)
    iam.create_saml_provider(Name="near-idp", SAMLMetadataDocument=document)
    hook = IamSamlHook(aws_conn_id="aws_saml")
    providers = {p["Arn"].rsplit("/", 1)[1]: p for p in hook.saml_providers(ACCOUNT)}
    assert sorted(providers) == ["cu-saml-idp", "near-idp"]  # fleetsim's default one, and ours
    got = hook.saml_provider(providers["near-idp"]["Arn"])
    assert got["SAMLMetadataDocument"] == document  # the document round-trips as uploaded
    # ValidUntil is the provider object's own (a hundred years, as AWS's example shows), not 2032.
    assert got["ValidUntil"].year == got["CreateDate"].year + 100
    (facts,) = parse_metadata(got["SAMLMetadataDocument"]).certificates
    assert facts.sha1 == near.sha1
    assert hook.calls == 2
    # A renewal is UpdateSAMLProvider with the new document; the ARN stays.
    renewed = metadata_document("https://idp.example/near", [make_certificate(CertificateSeed(), "new", NOW)])
    iam.update_saml_provider(SAMLProviderArn=providers["near-idp"]["Arn"], SAMLMetadataDocument=renewed)
    assert hook.saml_provider(providers["near-idp"]["Arn"])["SAMLMetadataDocument"] == renewed
    iam.delete_saml_provider(SAMLProviderArn=providers["near-idp"]["Arn"])
    assert hook.saml_provider(providers["near-idp"]["Arn"]) is None  # NoSuchEntity


def test_iam_refuses_a_provider_name_twice(fleet):
    iam = fleet.client("iam", OTHER)
    document = metadata_document("https://idp.example/x", [make_certificate(CertificateSeed(), "x", NOW)])
    iam.create_saml_provider(Name="twice", SAMLMetadataDocument=document)
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException):
        iam.create_saml_provider(Name="twice", SAMLMetadataDocument=document)


def test_a_connection_into_another_account_is_refused_by_name(fleet, monkeypatch):
    connect(monkeypatch, "aws_wrong", aws_connection(fleet.url, "us-east-1", OTHER))
    fleet.client("iam", OTHER)  # the provider created above lives there
    with pytest.raises(WrongAccount, match=f"account {OTHER}, not of {ACCOUNT}"):
        IamSamlHook(aws_conn_id="aws_wrong").saml_providers(ACCOUNT)


# -- Microsoft Graph ----------------------------------------------------------------------------------------


@pytest.fixture
def graph(fleet, monkeypatch) -> EntraGraphHook:
    extra = {"graph_url": f"{fleet.url}/graph/cu_saml", "static_token": "fleetsim"}
    connect(monkeypatch, "azure_saml", {"conn_type": "azure", "extra": extra})
    return EntraGraphHook("azure_saml")


def test_graph_lists_only_saml_applications_and_reads_their_certificates(fleet, graph):
    sps = graph.saml_service_principals()
    assert [sp["displayName"] for sp in sps] == ["cu_saml employee portal"]  # the OIDC one is filtered out
    (sp,) = sps
    assert set(sp) >= {"id", "appId", "preferredTokenSigningKeyThumbprint"}
    creds = graph.key_credentials(sp["id"])
    assert sorted(c["usage"] for c in creds) == ["Sign", "Verify"]
    point = TrustPoint("entra_id", "entra:cu_saml", sp["id"], sp["displayName"], "application")
    observed = observe_key_credentials(point, creds, sp["preferredTokenSigningKeyThumbprint"])
    (cert,) = observed.certificates
    assert cert.sha1 == sp["preferredTokenSigningKeyThumbprint"] and observed.error is None
    assert graph.calls == 2


def test_graph_follows_next_links_past_999_applications(fleet, graph):
    api = next(v for v in fleet.server.app.vendors if type(v).__name__ == "GraphSamlApi")
    api.seed("cu_saml", [EntraAppSeed(name=f"bulk app {n:04d}", certificates=[]) for n in range(1000)], NOW)
    try:
        names = [sp["displayName"] for sp in graph.saml_service_principals()]
    finally:
        directory = api.directories["cu_saml"]
        for sp_id in [i for i, sp in directory.items() if sp.display_name.startswith("bulk app")]:
            del directory[sp_id]
    assert len(names) == 1001 and graph.calls == 2  # $top=999: two pages


def test_a_static_token_never_leaves_loopback(monkeypatch):
    extra = {"graph_url": "https://graph.microsoft.com", "static_token": "fleetsim"}
    connect(monkeypatch, "azure_bad", {"conn_type": "azure", "extra": extra})
    with pytest.raises(ValueError, match="static_token is for a local emulator only"):
        EntraGraphHook("azure_bad").saml_service_principals()


def test_graph_errors_name_the_call(fleet, monkeypatch):
    connect(
        monkeypatch,
        "azure_none",
        {"conn_type": "azure", "extra": {"graph_url": f"{fleet.url}/graph/x", "static_token": "t"}},
    )
    with pytest.raises(
        GraphError, match=r"reading service principal 00000000-0000-0000-0000-000000000000: HTTP 404"
    ):
        EntraGraphHook("azure_none").key_credentials("00000000-0000-0000-0000-000000000000")


# -- Google Cloud workforce pools ---------------------------------------------------------------------------


@pytest.fixture
def workforce(fleet, monkeypatch) -> WorkforcePoolsHook:
    conn = {"conn_type": "google_cloud_platform", "extra": {"api_endpoint": fleet.url, "anonymous": True}}
    connect(monkeypatch, "gcp_saml", conn)
    return WorkforcePoolsHook(gcp_conn_id="gcp_saml", project_id=PROJECT)


def test_workforce_providers_of_the_projects_organization(fleet, workforce):
    org = workforce.organization_of(PROJECT)
    assert org.isdigit() and workforce.configured_organization is None
    pools = workforce.workforce_pools(org)
    assert [p["name"] for p in pools] == ["locations/global/workforcePools/cu-saml-workforce"]
    (provider,) = workforce.providers(pools[0]["name"])
    assert provider["name"].endswith("/providers/corp-idp") and provider["state"] == "ACTIVE"
    assert parse_metadata(provider["saml"]["idpMetadataXml"]).certificates
    assert workforce.calls == 3


def test_workforce_pages_through_every_provider(fleet, workforce):
    api = next(v for v in fleet.server.app.vendors if type(v).__name__ == "WorkforceApi")
    seeds = [WorkforceProviderSeed(pool="bulk-pool-1", provider=f"prov-{n:03d}") for n in range(150)]
    api.seed("cu_saml", [PROJECT], seeds, NOW)
    got = workforce.providers("locations/global/workforcePools/bulk-pool-1")
    assert len(got) == 150 and workforce.calls == 2


def test_the_connection_may_name_the_organization(fleet, monkeypatch):
    conn = {
        "conn_type": "google_cloud_platform",
        "extra": {"api_endpoint": fleet.url, "anonymous": True, "organization_id": "123"},
    }
    connect(monkeypatch, "gcp_org", conn)
    hook = WorkforcePoolsHook(gcp_conn_id="gcp_org", project_id=PROJECT)
    assert hook.configured_organization == "123"
    assert hook.workforce_pools("123") == []


# -- an IdP's published metadata (Identity Center) ---------------------------------------------------------


def test_published_metadata_is_fetched_over_loopback_http_or_https_only():
    document = metadata_document("https://idp.example/ic", [make_certificate(CertificateSeed(), "ic", NOW)])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's API
            body = document.encode() if self.path == "/metadata" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert fetch_metadata(f"{base}/metadata") == document
        with pytest.raises(MetadataFetchError, match="HTTP 404"):
            fetch_metadata(f"{base}/missing")
    finally:
        server.shutdown()
    with pytest.raises(MetadataFetchError, match="https only"):
        fetch_metadata("http://idp.example.com/metadata")
