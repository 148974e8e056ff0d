"""SamlCertificateWatchOperator driven through execute against fleetsim (clouds, PagerDuty and the mail
relay over HTTP), the evidence in an in-memory bucket: one unreadable account halts only its own scope;
an unparseable document, a weak key and a SHA-1 signature are named; renewals in Entra ID (Graph's
addTokenSigningCertificate and preferredTokenSigningKeyThumbprint) and in a workforce pool (PATCH of
the provider's metadata) resolve their incidents; each finding is mailed once."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleetsim"))

from fleetsim_testkit import Fleet, group, running, scenario_dict  # noqa: E402

from devtools.local import aws_connection, pagerduty_connection, smtp_connection  # noqa: E402
from fleetsim.saml import CertificateSeed, make_certificate, metadata_document  # noqa: E402
from patchcycle.reports.store import EvidenceStore  # noqa: E402
from tests.operators.stand_ins import MemoryBucket  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("operators-saml")]

REPO = Path(__file__).resolve().parents[2]
TENANT = "cu_watch"
GOOD, BROKEN, STRANGER = "555500000001", "555500000002", "555500000003"
PROJECT = "watch-proj-one"
SUB = "1a2b3c4d-0000-4000-8000-00000000abcd"
NOW = dt.datetime.now(dt.UTC)
SCENARIO = scenario_dict(
    tenants=[
        {
            "id": TENANT,
            "aws": {"account_id": GOOD, "region": "us-east-1", "groups": [group("wa", 1)]},
            "azure": {
                "subscription_id": SUB,
                "resource_group": "rg-watch",
                "groups": [group("wz", 1, "ubuntu_22_04")],
            },
            "gcp": {"project_id": PROJECT, "groups": [group("wg", 1, "ubuntu_22_04", zone="us-central1-a")]},
        }
    ],
    catalog=[],
)


@pytest.fixture(scope="module")
def fleet():
    with running(SCENARIO) as f:
        yield f


@pytest.fixture(scope="module")
def tenants_dir(tmp_path_factory) -> Path:
    data = yaml.safe_load((REPO / "include" / "tenants" / "cu_alpha.yaml").read_text())
    data.update(id=TENANT, display_name="Watch Credit Union", incidents={})
    data["contacts"]["sre"] = [{"name": "Watch SRE", "email": "watch-sre@example.com"}]
    data["clouds"] = {
        "aws": {
            "accounts": [
                {"account_id": GOOD, "regions": ["us-east-1"]},
                {"account_id": BROKEN, "regions": ["us-east-1"], "connection_id": "aws_cu_watch_broken"},
            ]
        },
        "azure": {"subscriptions": [{"subscription_id": SUB, "resource_groups": ["rg-watch"]}]},
        "gcp": {"projects": [{"project_id": PROJECT, "zones": ["us-central1-a"]}]},
    }
    data["evidence"] = {"bucket": "patchcycle-evidence-cu-watch", "region": "us-east-1"}
    folder = tmp_path_factory.mktemp("tenants")
    (folder / f"{TENANT}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.fixture
def env(fleet: Fleet, tenants_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATCHCYCLE_TENANTS_DIR", str(tenants_dir))
    conns = {
        "aws_cu_watch": aws_connection(fleet.url, "us-east-1", GOOD),
        # Declared as BROKEN's, but its role is in another account: the hook refuses what it lists.
        "aws_cu_watch_broken": aws_connection(fleet.url, "us-east-1", STRANGER),
        "azure_cu_watch": json.dumps(
            {"conn_type": "azure", "extra": {"graph_url": f"{fleet.url}/graph/{TENANT}", "static_token": "t"}}
        ),
        "gcp_cu_watch": json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {"api_endpoint": fleet.url, "anonymous": True}}
        ),
        "pagerduty_cu_watch": pagerduty_connection(fleet.url, TENANT),
    }
    for conn_id, value in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    for name, value in smtp_connection(fleet.url).items():
        monkeypatch.setenv(name, value)


BUCKET = MemoryBucket()


def watch(day: str, attempt: int = 1) -> tuple[dict[str, Any] | None, Exception | None, dict[str, Any]]:
    """Run the tenant's watch for ``day``; its XCom (or the error), and the record it wrote."""
    from airflow.sdk import DAG

    from patchcycle.operators.saml import SamlCertificateWatchOperator

    with DAG("saml_certificates", schedule=None):
        op = SamlCertificateWatchOperator(task_id=TENANT, target_id=TENANT)
    op.store = EvidenceStore(BUCKET, "patchcycle-evidence-cu-watch")  # type: ignore[misc]
    when = dt.datetime.fromisoformat(f"{day}T06:30:00+00:00")
    run_id = f"scheduled__{day}T06:30:00+00:00"
    context = {
        "dag_run": SimpleNamespace(run_after=when, run_type="scheduled"),
        "logical_date": when,
        "run_id": run_id,
        "ti": SimpleNamespace(try_number=attempt),
    }
    result, error = None, None
    try:
        result = op.execute(context)
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        error = exc
    key = f"saml/{day}/runs/{run_id.replace(':', '_').replace('+', '_')}/watch.try-{attempt}.json"
    return result, error, json.loads(BUCKET.objects[key])


def incidents(fleet: Fleet) -> dict[str, dict[str, Any]]:
    return {
        i["dedup_key"]: i for i in fleet.get("/fleetsim/pagerduty")["incidents"] if TENANT in i["dedup_key"]
    }


def mails(fleet: Fleet) -> list[dict[str, Any]]:
    return [m for m in fleet.get("/fleetsim/mail")["messages"] if "watch-sre@example.com" in m["rcpt_tos"]]


def graph(fleet: Fleet, method: str, path: str, **kw: Any) -> requests.Response:
    url = f"{fleet.url}/graph/{TENANT}/v1.0/servicePrincipals{path}"
    return requests.request(method, url, headers={"Authorization": "Bearer t"}, timeout=10, **kw)


def test_one_unreadable_account_halts_only_its_scope_and_every_finding_is_named(fleet, env):
    iam = fleet.client("iam", GOOD)
    seeds = {
        "near": CertificateSeed(days_left=10),
        "sha1": CertificateSeed(days_left=400, signature_hash="sha1"),
        "weak": CertificateSeed(days_left=500, key_size=1024),
    }
    made = {name: make_certificate(seed, f"watch-{name}", NOW) for name, seed in seeds.items()}
    for name, cert in made.items():
        doc = metadata_document(f"https://idp.watch.example/{name}", [cert])
        iam.create_saml_provider(Name=f"watch-{name}", SAMLMetadataDocument=doc)
    broken = metadata_document("https://idp.watch.example/broken", [made["near"]]).replace(
        "</md:Entity", "</md:Entit"
    )
    iam.create_saml_provider(Name="watch-broken", SAMLMetadataDocument=broken)
    fleet.client("iam", STRANGER).create_saml_provider(
        Name="stranger", SAMLMetadataDocument=metadata_document("https://x.example", [made["weak"]])
    )

    result, error, record = watch("2026-12-01")

    assert result is None and "aws:555500000002: WrongAccount" in str(error)
    scopes = {s["scope"]: s for s in record["scopes"]}
    assert (
        scopes["aws:555500000002"]["status"] == "failed"
        and "not of 555500000002" in scopes["aws:555500000002"]["error"]
    )
    assert {n: s["status"] for n, s in scopes.items() if n != "aws:555500000002"} == {
        "aws:555500000001": "ok",
        f"entra:azure_{TENANT}": "ok",
        f"gcp:{PROJECT}": "ok",
    }
    assert scopes["aws:555500000001"]["providers"] == 5  # fleetsim's own, near, sha1, weak, broken
    findings = {f["kind"] for c in record["certificates"] for f in c["findings"]}
    assert {"expiring", "sha1_signature", "weak_key"} <= findings
    (problem,) = record["problems"]
    assert problem["kind"] == "unparseable" and problem["provider_name"] == "watch-broken"
    assert "not well-formed" in problem["message"]
    # Paged: the 10-day certificate (tier 14, error) and the unparseable provider (warning); the weak key
    # and the SHA-1 signature are mailed, not paged.
    paged = incidents(fleet)
    assert sorted(i["severity"] for i in paged.values()) == ["error", "warning"]
    (mail,) = mails(fleet)
    assert "2 certificate alert(s), error" in mail["subject"] and "2 finding(s)" in mail["subject"]
    assert "weak key" in mail["body"] and "sha1 signature" in mail["body"]
    names = sorted(a["filename"] for a in mail["attachments"])
    assert len(names) == 3 and all(n.startswith("aws_iam-") for n in names)  # near, sha1, weak
    assert {c["control_id"]: c["status"] for c in record["controls"]} == {
        "CC6.1": "evidenced",
        "CC7.1": "evidenced",
    }

    # A retry the same day remembers what it paged and mailed: nothing twice.
    _, again, retry = watch("2026-12-01", attempt=2)
    assert again is not None and retry["incidents"]["triggered"] == [] and retry["mail"] is None
    assert all(i["trigger_count"] == 1 for i in incidents(fleet).values()) and len(mails(fleet)) == 1


def test_renewals_in_entra_and_a_workforce_pool_resolve_their_incidents(fleet, env):
    # Entra: the application's only certificate nears expiry.
    graph_api = next(v for v in fleet.server.app.vendors if type(v).__name__ == "GraphSamlApi")
    from fleetsim.saml import EntraAppSeed, WorkforceProviderSeed

    graph_api.seed(
        TENANT, [EntraAppSeed(name="Watch Payroll", certificates=[CertificateSeed(days_left=5)])], NOW
    )
    workforce = next(v for v in fleet.server.app.vendors if type(v).__name__ == "WorkforceApi")
    workforce.seed(
        TENANT,
        [PROJECT],
        [
            WorkforceProviderSeed(
                pool="watch-pool", provider="okta", certificates=[CertificateSeed(days_left=40)]
            )
        ],
        NOW,
    )

    _, _, day1 = watch("2026-12-05")
    kinds = {(c["trusted_by"][0]["kind"], c["tier"]) for c in day1["certificates"] if c["incident_key"]}
    assert ("entra_id", 7) in kinds and ("gcp_workforce", 60) in kinds
    open1 = set(day1["incidents"]["open"])

    # Entra: a new certificate beside the old one (inactive until made preferred), then the switch.
    sp = next(
        s
        for s in graph(fleet, "GET", "", params={"$filter": "preferredSingleSignOnMode eq 'saml'"}).json()[
            "value"
        ]
        if s["displayName"] == "Watch Payroll"
    )
    added = graph(
        fleet,
        "POST",
        f"/{sp['id']}/addTokenSigningCertificate",
        json={"displayName": "CN=Watch Payroll 2027"},
    ).json()
    _, _, beside = watch("2026-12-06")
    assert {k: v for k, v in beside["incidents"]["open"].items() if k in open1} == {
        k: day1["incidents"]["open"][k] for k in open1
    }
    assert (
        graph(
            fleet, "PATCH", f"/{sp['id']}", json={"preferredTokenSigningKeyThumbprint": added["thumbprint"]}
        ).status_code
        == 204
    )
    # Workforce pool: the provider's metadata now lists only a renewed certificate.
    renewed = metadata_document(
        "https://idp.watch.example/okta", [make_certificate(CertificateSeed(days_left=700), "okta-new", NOW)]
    )
    name = "locations/global/workforcePools/watch-pool/providers/okta"
    patched = requests.patch(
        f"{fleet.url}/v1/{name}",
        params={"updateMask": "saml.idpMetadataXml"},
        json={"saml": {"idpMetadataXml": renewed}},
        timeout=10,
    )
    assert patched.json()["done"] is True

    _, _, day3 = watch("2026-12-07")
    resolved = set(day3["incidents"]["resolved"])
    entra_key = next(
        k
        for k in open1
        if any(
            c["incident_key"] == k and c["trusted_by"][0]["kind"] == "entra_id" for c in day1["certificates"]
        )
    )
    gcp_key = next(
        k
        for k in open1
        if any(
            c["incident_key"] == k and c["trusted_by"][0]["kind"] == "gcp_workforce"
            for c in day1["certificates"]
        )
    )
    assert {entra_key, gcp_key} <= resolved
    assert (
        incidents(fleet)[entra_key]["status"] == "resolved"
        and incidents(fleet)[gcp_key]["status"] == "resolved"
    )
    standing = {
        c["sha1"]: c["standing"]
        for c in day3["certificates"]
        if c["trusted_by"][0]["provider_name"] == "Watch Payroll"
    }
    assert standing[added["thumbprint"]] == "active" and sorted(standing.values()) == ["active", "inactive"]
