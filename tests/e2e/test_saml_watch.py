"""The SAML certificate watch end to end: ``saml_certificates`` run by Airflow (``airflow dags test``) on
three consecutive days against a fleetsim process, cu_alpha's clouds read through their connections.

A certificate with 20 days left is added to an IAM SAML provider of cu_alpha's account through IAM's own
API. Day 1 pages it once (tier 30) and mails the SREs its runbook; day 2 pages nothing new; the provider
is then renewed (UpdateSAMLProvider with the new certificate's metadata) and day 3 resolves the incident.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import boto3
import pytest

from devtools.local import airflow_env, fleetsim_get, run_cycle, running_fleetsim
from fleetsim.saml import CertificateSeed, make_certificate, metadata_document

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HERE = Path(__file__).parent
REPO = HERE.parents[1]
ACCOUNT = "111111111111"
BUCKET = "patchcycle-evidence-cu-alpha"
DAG = "saml_certificates"


def iam(url: str):
    sts = boto3.client(
        "sts", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/admin", RoleSessionName="e2e")[
        "Credentials"
    ]
    return boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def s3(url: str):
    return boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def records(url: str, day: str) -> list[dict]:
    client = s3(url)
    keys = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix=f"saml/{day}/").get("Contents", [])
        if o["Key"].endswith(".json") and "/watch.try-" in o["Key"]
    ]
    return [json.loads(client.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in sorted(keys)]


def saml_incidents(url: str) -> list[dict]:
    return [i for i in fleetsim_get(url, "/fleetsim/pagerduty")["incidents"] if "/saml/" in i["dedup_key"]]


def saml_mail(url: str) -> list[dict]:
    return [m for m in fleetsim_get(url, "/fleetsim/mail")["messages"] if "SAML certificates" in m["subject"]]


def test_a_near_expiry_certificate_pages_once_over_two_days_and_resolves_when_renewed(airflow_home, tmp_path):
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    shutil.copyfile(REPO / "include" / "tenants" / "cu_alpha.yaml", tenants / "cu_alpha.yaml")
    with running_fleetsim(HERE / "scenarios" / "alpha_saml.yaml", tmp_path / "fleetsim") as url:
        env = airflow_env(airflow_home, url, poll_seconds=0.5, tenants_dir=tenants)
        now = dt.datetime.now(dt.UTC)
        near = make_certificate(CertificateSeed(days_left=20, common_name="alpha-okta-2024"), "near", now)
        arn = iam(url).create_saml_provider(
            Name="alpha-okta", SAMLMetadataDocument=metadata_document("https://alpha.okta.example", [near])
        )["SAMLProviderArn"]
        sha256 = hashlib.sha256(near.der).hexdigest()
        key = f"patchcycle/cu_alpha/saml/{sha256[:20]}/30"

        # Day 1: the certificate has crossed the 30-day tier: one incident, one mail with its runbook.
        assert run_cycle(env, DAG, "2026-12-01T06:30:00+00:00", {}, tmp_path / "day1.log") == 0, (
            tmp_path / "day1.log"
        ).read_text()[-4000:]
        (incident,) = saml_incidents(url)
        assert incident["dedup_key"] == key and incident["status"] == "triggered"
        assert incident["severity"] == "warning" and "alpha-okta" in incident["summary"]
        (mail,) = saml_mail(url)
        assert mail["rcpt_tos"] == ["alpha-sre@example.com"] and "1 certificate alert(s)" in mail["subject"]
        (runbook,) = [a for a in mail["attachments"] if a["filename"] == f"aws_iam-{sha256[:16]}.md"]
        for fact in (sha256, arn, "CN=alpha-okta-2024", "AWS account 111111111111", "update-saml-provider"):
            assert fact in runbook["text"], fact
        (day1,) = records(url, "2026-12-01")
        scopes = {s["scope"]: s for s in day1["scopes"]}
        assert set(scopes) == {"aws:111111111111", "entra:azure_cu_alpha", "gcp:alpha-dr-standby"}
        assert all(s["status"] == "ok" and s["api_calls"] >= 1 for s in scopes.values())
        # fleetsim's healthy provider in each cloud, and the near one.
        assert len(day1["certificates"]) == 4
        assert day1["nearest_expiry"]["sha256"] == sha256 and day1["nearest_expiry"]["days_left"] == 20
        assert day1["incidents"]["open"] == {key: ["aws:111111111111"]}
        controls = {c["control_id"]: c["status"] for c in day1["controls"]}
        assert controls == {"CC6.1": "evidenced", "CC7.1": "evidenced"}

        # Day 2: still under 30 days, nothing new: PagerDuty is not told again, nobody is mailed again.
        assert run_cycle(env, DAG, "2026-12-02T06:30:00+00:00", {}, tmp_path / "day2.log") == 0
        (incident,) = saml_incidents(url)
        assert incident["status"] == "triggered" and incident["trigger_count"] == 1
        assert len(saml_mail(url)) == 1
        (day2,) = records(url, "2026-12-02")
        assert day2["incidents"]["kept"] == [key] and day2["incidents"]["triggered"] == []

        # Renewed: the provider's metadata now holds the new certificate only (UpdateSAMLProvider).
        renewed = make_certificate(CertificateSeed(days_left=730, common_name="alpha-okta-2026"), "new", now)
        iam(url).update_saml_provider(
            SAMLProviderArn=arn,
            SAMLMetadataDocument=metadata_document("https://alpha.okta.example", [renewed]),
        )
        assert run_cycle(env, DAG, "2026-12-03T06:30:00+00:00", {}, tmp_path / "day3.log") == 0
        (incident,) = saml_incidents(url)
        assert incident["status"] == "resolved"
        mails = saml_mail(url)
        assert len(mails) == 2 and "1 resolved" in mails[1]["subject"]
        (day3,) = records(url, "2026-12-03")
        assert day3["incidents"]["resolved"] == [key] and day3["incidents"]["open"] == {}
        assert day3["nearest_expiry"]["days_left"] > 60
