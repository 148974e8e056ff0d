"""Helpers for the fleetsim tests: scenarios built in code, a server on loopback, SDK clients per account.

Everything AWS goes through the unmodified boto3 SDK over HTTP, and the ground truth and call counts
through fleetsim's control plane over HTTP, exactly as the product and its tests reach them. (Kept
out of conftest.py so test modules can import it by a name no other conftest shares.)
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config

from fleetsim.scenario import parse_scenario
from fleetsim.server import FleetsimServer

EXECUTION_ROLE = "arn:aws:iam::{account}:role/PatchcycleExecution"
EVIDENCE_ACCOUNT = "123456789012"

FAST_TIMINGS: dict[str, Any] = {
    "command_pending_seconds": 0.1,
    "invocation_seconds": [0.2, 0.4],
    "delivery_timeout_seconds": 0.8,
    "ami_pending_seconds": 0.5,
}

# Released long enough ago that the default baseline (Security, Critical/Important, 7 days) approves it.
OLD = (dt.date.today() - dt.timedelta(days=400)).isoformat()
OLDER = (dt.date.today() - dt.timedelta(days=800)).isoformat()  # before every group's installed_until
CUTOFF = (dt.date.today() - dt.timedelta(days=600)).isoformat()  # installed_until for "behind" hosts

# No retries: a fleetsim 500 must fail the test at once, not after botocore's back-off.
_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=20)


def patch(pid: str, family: str, *, severity: str = "Critical", classification: str = "Security", **kw: Any):
    """A catalog entry released ``OLD`` (approved by the default baseline unless said otherwise)."""
    return {
        "id": pid,
        "os_family": family,
        "title": f"{pid} title",
        "classification": classification,
        "severity": severity,
        "released": OLD,
        **kw,
    }


def group(prefix: str, count: int, family: str = "amazon_linux_2", **kw: Any) -> dict:
    return {
        "prefix": prefix,
        "count": count,
        "environment": kw.pop("environment", "prod"),
        "os_family": family,
        "installed_until": kw.pop("installed_until", CUTOFF),
        **kw,
    }


def scenario_dict(tenants: list[dict], catalog: list[dict], **extra: Any) -> dict:
    return {"timings": dict(FAST_TIMINGS), "patch_catalog": catalog, "tenants": tenants, **extra}


_RUNNING: list[FleetsimServer] = []


@contextmanager
def running(raw: dict) -> Iterator[Fleet]:
    """Serve a scenario dict on 127.0.0.1 for the duration of the block."""
    assert not _RUNNING, "moto's backends are process-global: never two fleetsim servers at once"
    server = FleetsimServer(parse_scenario(copy.deepcopy(raw), source="test"), port=0)
    _RUNNING.append(server)
    try:
        server.start()
        yield Fleet(server.url, server)
    finally:
        server.stop()
        _RUNNING.remove(server)


class Fleet:
    """A client's view of a running fleetsim: SDK clients per account, and the control plane."""

    def __init__(self, url: str, server: FleetsimServer | None = None) -> None:
        self.url = url
        # The running server itself, for tests that must act as the cloud does behind the APIs
        # (e.g. ``server.state.install(...)`` to boot a kernel); None when only the URL is known.
        self.server = server
        self._clients: dict[tuple[str, str, str], Any] = {}

    # -- AWS, as the product reaches it --------------------------------------------------------
    def credentials(self, account: str) -> dict[str, str]:
        sts = boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="dummy",
            aws_secret_access_key="dummy",
            config=_CONFIG,
        )
        role = EXECUTION_ROLE.format(account=account)
        c = sts.assume_role(RoleArn=role, RoleSessionName="fleetsim-tests")["Credentials"]
        return {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }

    def client(self, service: str, account: str, region: str = "us-east-1") -> Any:
        """A boto3 client acting in ``account`` through STS AssumeRole (cached per test module)."""
        key = (service, account, region)
        if key not in self._clients:
            creds = self.credentials(account)
            self._clients[key] = boto3.client(
                service, endpoint_url=self.url, region_name=region, config=_CONFIG, **creds
            )
        return self._clients[key]

    def evidence_s3(self, region: str = "us-east-1") -> Any:
        """S3 in the default (evidence) account, with plain dummy keys as the platform uses it."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id="dummy",
            aws_secret_access_key="dummy",
            config=_CONFIG,
        )

    # -- control plane ---------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:  # noqa: S310 - loopback
            return json.load(resp)

    def post(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return json.load(resp)

    def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        """(status, JSON answer) of a control-plane POST with a JSON body."""
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def status_of(self, path: str, method: str = "GET") -> int:
        req = urllib.request.Request(self.url + path, data=b"" if method == "POST" else None, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def truth(self, tenant: str | None = None) -> dict[str, dict[str, Any]]:
        """Ground truth by host name."""
        query = f"?tenant={tenant}" if tenant else ""
        return {h["name"]: h for h in self.get(f"/fleetsim/ground-truth{query}")["hosts"]}

    def ids(self, tenant: str, *names: str) -> list[str]:
        truth = self.truth(tenant)
        return [truth[n]["host_id"] for n in names]

    def calls(self) -> dict[str, int]:
        return self.get("/fleetsim/calls")["calls"]


def wait_for(
    probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 10.0, every: float = 0.04
) -> Any:
    """Poll ``probe`` until ``done(value)``; fail after ``timeout`` seconds. Returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s; last value: {value!r}")
        time.sleep(every)


TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "DeliveryTimedOut"}


def wait_command(ssm: Any, command_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The command once it has reached a terminal status."""
    return wait_for(
        lambda: ssm.list_commands(CommandId=command_id)["Commands"][0],
        lambda c: c["Status"] in TERMINAL,
        timeout=timeout,
    )


def invocations(ssm: Any, command_id: str, details: bool = True) -> dict[str, dict[str, Any]]:
    """Every invocation of a command by instance id, through the paginator."""
    rows: dict[str, dict[str, Any]] = {}
    for page in ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id, Details=details):
        for inv in page["CommandInvocations"]:
            rows[inv["InstanceId"]] = inv
    return rows
