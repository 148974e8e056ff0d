"""The people and pipelines that call fleetsim's AWS APIs in a scenario, each with their own identity.

Their identities exist before the scenario starts (a pipeline's role, an IAM user, an IAM Identity
Center permission set's role), so they are created in moto's IAM directly and no CloudTrail event
records their creation. Their calls then go through fleetsim's HTTP endpoint like anyone's, so CloudTrail
records each with its identity (:mod:`fleetsim.aws.audit`), at the time the scenario says it happened.

- An IAM Identity Center user works in an account through the role IAM Identity Center created for the
  permission set: "AWSReservedSSO_permission-set-name_unique-suffix", with the ARN
  ``arn:aws:iam::<account>:role/aws-reserved/sso.amazonaws.com/<aws-region>/AWSReservedSSO_...`` (IAM
  Identity Center User Guide, "Referencing permission sets in resource policies",
  https://docs.aws.amazon.com/singlesignon/latest/userguide/referencingpermissionsets.html); the
  session is named after the user, as the fixtures of the drift domain show it (no document names it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from fleetsim.aws.audit import EVENT_TIME_HEADER, SOURCE_IP_HEADER

CONSOLE_USER_AGENT = "AWS Internal"  # what CloudTrail records for calls the console makes


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def _role(account_id: str, name: str, path: str, trust: dict[str, Any]) -> str:
    iam = iam_backends[account_id]["aws"]
    existing = next((r for r in iam.roles.values() if r.name == name), None)
    if existing is None:
        existing = iam.create_role(
            role_name=name,
            assume_role_policy_document=json.dumps(trust),
            path=path,
            permissions_boundary=None,
            description="",
            tags=[],
            max_session_duration="3600",
        )
    return str(existing.arn)


def assumed_role(
    account_id: str, role_name: str, session: str, *, path: str = "/", region: str
) -> Credentials:
    """A session of ``role_name`` (created if missing) in ``account_id``."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            }
        ],
    }
    role_arn = _role(account_id, role_name, path, trust)
    assumed = sts_backends[account_id]["aws"].assume_role(
        region_name=region,
        role_session_name=session,
        role_arn=role_arn,
        policy="",
        duration=3600,
        external_id="",
    )
    return Credentials(assumed.access_key_id, assumed.secret_access_key, assumed.session_token)


def sso_role_name(account_id: str, permission_set: str) -> str:
    """``AWSReservedSSO_<permission set>_<16 hex>``: the id is stable per account and permission set."""
    suffix = hashlib.sha256(f"{account_id}/{permission_set}".encode()).hexdigest()[:16]
    return f"AWSReservedSSO_{permission_set}_{suffix}"


def sso_session(
    account_id: str, permission_set: str, user: str, *, identity_center_region: str, region: str
) -> Credentials:
    """``user``'s IAM Identity Center session in ``account_id`` with ``permission_set``."""
    path = f"/aws-reserved/sso.amazonaws.com/{identity_center_region}/"
    return assumed_role(account_id, sso_role_name(account_id, permission_set), user, path=path, region=region)


def iam_user(account_id: str, user_name: str) -> Credentials:
    """An access key of IAM user ``user_name`` (created if missing) in ``account_id``."""
    iam = iam_backends[account_id]["aws"]
    if user_name not in iam.users:
        iam.create_user(region_name="us-east-1", user_name=user_name)
    key = iam.create_access_key(user_name)
    return Credentials(key.access_key_id, key.secret_access_key)


class CallClock:
    """The times CloudTrail records for a sequence of calls: each a step after the one before. Actors
    that share one clock (the Terraform role in two accounts) record one ordered sequence."""

    def __init__(self, start: dt.datetime, step: dt.timedelta = dt.timedelta(seconds=1)) -> None:
        self.at = start
        self.step = step

    def next(self) -> dt.datetime:
        at = self.at
        self.at += self.step
        return at


class Actor:
    """One identity calling fleetsim's AWS APIs over HTTP, at the times its clock gives."""

    def __init__(
        self, endpoint: str, credentials: Credentials, *, user_agent: str, source_ip: str, clock: CallClock
    ) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.user_agent = user_agent
        self.source_ip = source_ip
        self.clock = clock
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        """A boto3 client of ``service`` in ``region`` acting as this identity (no retries)."""
        key = (service, region)
        if key not in self._clients:
            client = boto3.client(
                service,
                endpoint_url=self.endpoint,
                region_name=region,
                aws_access_key_id=self.credentials.access_key_id,
                aws_secret_access_key=self.credentials.secret_access_key,
                aws_session_token=self.credentials.session_token,
                config=Config(user_agent=self.user_agent, retries={"total_max_attempts": 1}),
            )
            client.meta.events.register("before-sign", self._stamp)
            self._clients[key] = client
        return self._clients[key]

    def _stamp(self, request: Any, **_: Any) -> None:
        request.headers[EVENT_TIME_HEADER] = self.clock.next().strftime("%Y-%m-%dT%H:%M:%SZ")
        request.headers[SOURCE_IP_HEADER] = self.source_ip
