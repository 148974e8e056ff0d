"""``EvidenceBucketHook.signing_credentials`` against fleetsim's STS through the Amazon provider: a
connection with keys signs with long-lived credentials, one with a role_arn with temporary ones whose
expiry is known (a pre-signed link dies with them: S3 user guide, "Sharing objects with presigned URLs")."""

from __future__ import annotations

import datetime as dt

import pytest
from fleetsim_testkit import scenario_dict

from devtools.local import aws_connection
from patchcycle.hooks.s3 import EvidenceBucketHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-evidence-bucket")]

ACCOUNT = "111111111111"
SCENARIO = scenario_dict(tenants=[], catalog=[])


def test_keys_sign_with_long_lived_credentials(fleet, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EVIDENCE_KEYS", aws_connection(fleet.url, "us-east-1"))
    assert EvidenceBucketHook(aws_conn_id="evidence_keys").signing_credentials() == (False, None)


def test_an_assumed_role_signs_with_temporary_credentials_that_expire(fleet, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EVIDENCE_ROLE", aws_connection(fleet.url, "us-east-1", ACCOUNT))
    temporary, expires = EvidenceBucketHook(aws_conn_id="evidence_role").signing_credentials()
    assert temporary is True
    assert expires is not None and expires > dt.datetime.now(dt.UTC)
