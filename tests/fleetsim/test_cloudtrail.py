"""CloudTrail event history through the unmodified SDK: who made each call, and LookupEvents' contract.

API Reference, LookupEvents (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html):
one lookup attribute, StartTime/EndTime inclusive, MaxResults 1-50, NextToken only with the same
parameters, newest first, the last 90 days, "two per second, per account, per Region" or a throttling
error. User Guide, "CloudTrail concepts": IAM's events are recorded in us-east-1; "Amazon S3 CloudTrail
events": object calls are data events, which event history does not record.

The lookup rate is held deterministically: the module's fleetsim runs on a clock the tests set
(``fleet.server.state.clock``), ticked a second between lookups that must pass.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from fleetsim_testkit import EXECUTION_ROLE, group, patch, scenario_dict

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleetsim-cloudtrail")]

ACCOUNT = "111111111111"
OTHER_ACCOUNT = "444444444444"
SCENARIO = scenario_dict(
    tenants=[
        {"id": "alpha", "aws": {"account_id": ACCOUNT, "region": "us-east-1", "groups": [group("ct", 1)]}},
        {
            "id": "delta",
            "aws": {"account_id": OTHER_ACCOUNT, "region": "us-west-2", "groups": [group("dt", 1)]},
        },
    ],
    catalog=[patch("ALAS2-1", "amazon_linux_2")],
    evidence={"buckets": ["ct-evidence"]},
)
_NO_RETRY = Config(retries={"total_max_attempts": 1})
RULES = {
    "PatchRules": [
        {
            "PatchFilterGroup": {"PatchFilters": [{"Key": "CLASSIFICATION", "Values": ["Security"]}]},
            "ApproveAfterDays": 7,
        }
    ]
}


class Clock:
    """The emulated cloud's time, moved by the test."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


_LAST: list[float] = [0.0]


@pytest.fixture
def clock(fleet) -> Iterator[Clock]:
    """fleetsim on a clock the test moves (restored afterwards); each test's clock starts a minute after
    the previous test's stopped, so no test's lookups count against another's rate."""
    state = fleet.server.state
    moved = Clock(max(time.time(), _LAST[0] + 60))
    original, state.clock = state.clock, moved
    try:
        yield moved
    finally:
        state.clock = original
        _LAST[0] = moved.now


def lookup(client, clock: Clock, **kwargs):
    """One LookupEvents call, a second after the previous one (within the documented rate)."""
    clock.tick(1.0)
    return client.lookup_events(**kwargs)


def events_named(client, clock: Clock, name: str) -> list[dict]:
    return lookup(client, clock, LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}])[
        "Events"
    ]


def user_session(fleet, name: str, region: str = "us-east-1") -> boto3.Session:
    """An IAM user of ACCOUNT with an access key, created through IAM's API."""
    iam = fleet.client("iam", ACCOUNT)
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name=region
    )


def test_a_write_names_the_iam_user_who_made_it_and_the_resource(fleet, clock):
    """Event: Username, EventSource, ReadOnly, Resources; the record's userIdentity (IAMUser) and
    requestParameters (the request's members, lowerCamelCase)."""
    ssm = user_session(fleet, "carol").client("ssm", endpoint_url=fleet.url, config=_NO_RETRY)
    baseline = ssm.create_patch_baseline(
        Name="ct-carol", OperatingSystem="AMAZON_LINUX_2", ApprovalRules=RULES
    )["BaselineId"]
    ssm.update_patch_baseline(BaselineId=baseline, ApprovedPatchesComplianceLevel="LOW")
    cloudtrail = fleet.client("cloudtrail", ACCOUNT)
    found = lookup(
        cloudtrail, clock, LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": baseline}]
    )["Events"]
    assert [e["EventName"] for e in found] == ["UpdatePatchBaseline"]  # CreatePatchBaseline names no id
    (event,) = found
    assert (event["Username"], event["EventSource"], event["ReadOnly"]) == (
        "carol",
        "ssm.amazonaws.com",
        "false",
    )
    assert {"ResourceType": "AWS::SSM::PatchBaseline", "ResourceName": baseline} in event["Resources"]
    record = json.loads(event["CloudTrailEvent"])
    who = record["userIdentity"]
    assert (who["type"], who["userName"], who["accountId"]) == ("IAMUser", "carol", ACCOUNT)
    assert who["arn"] == f"arn:aws:iam::{ACCOUNT}:user/carol"
    assert who["accessKeyId"] == event["AccessKeyId"]
    assert record["requestParameters"] == {"baselineId": baseline, "approvedPatchesComplianceLevel": "LOW"}
    assert (record["eventName"], record["awsRegion"], record["recipientAccountId"]) == (
        "UpdatePatchBaseline",
        "us-east-1",
        ACCOUNT,
    )
    assert record["readOnly"] is False and "errorCode" not in record


def test_an_assumed_role_session_names_its_session_and_issuer(fleet, clock):
    """userIdentity of temporary credentials: AssumedRole, the session's arn, sessionContext.sessionIssuer
    the role; LookupEvents' Username is the session name."""
    ssm = fleet.client("ssm", ACCOUNT)  # AssumeRole PatchcycleExecution, session fleetsim-tests
    ssm.describe_patch_baselines(Filters=[{"Key": "OWNER", "Values": ["Self"]}])
    (event, *_) = events_named(fleet.client("cloudtrail", ACCOUNT), clock, "DescribePatchBaselines")
    who = json.loads(event["CloudTrailEvent"])["userIdentity"]
    role = EXECUTION_ROLE.format(account=ACCOUNT)
    assert event["Username"] == "fleetsim-tests" and event["ReadOnly"] == "true"
    assert who["type"] == "AssumedRole"
    assert who["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/PatchcycleExecution/fleetsim-tests"
    assert who["sessionContext"]["sessionIssuer"]["arn"] == role
    assert who["sessionContext"]["sessionIssuer"]["userName"] == "PatchcycleExecution"
    assert who["principalId"].endswith(":fleetsim-tests")


def test_iam_events_are_recorded_in_us_east_1_whatever_the_caller_region(fleet, clock):
    """CloudTrail concepts: IAM's events are recorded in us-east-1; a lookup elsewhere does not see them."""
    iam = boto3.client(
        "iam", endpoint_url=fleet.url, region_name="us-west-2", config=_NO_RETRY, **fleet.credentials(ACCOUNT)
    )
    iam.create_role(RoleName="ct-global", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    east = fleet.client("cloudtrail", ACCOUNT, "us-east-1")
    west = fleet.client("cloudtrail", ACCOUNT, "us-west-2")
    by_role = [{"AttributeKey": "ResourceName", "AttributeValue": "ct-global"}]
    assert [e["EventName"] for e in lookup(east, clock, LookupAttributes=by_role)["Events"]] == ["CreateRole"]
    assert lookup(west, clock, LookupAttributes=by_role)["Events"] == []
    (event,) = lookup(east, clock, LookupAttributes=by_role)["Events"]
    assert json.loads(event["CloudTrailEvent"])["awsRegion"] == "us-east-1"


def test_bucket_settings_are_management_events_and_object_calls_are_not_recorded(fleet, clock):
    """S3: object calls are data events ("The CloudTrail Event history doesn't record data events");
    bucket-level calls are management events, with the bucket name and the typed configuration."""
    s3 = fleet.evidence_s3()
    s3.put_object(Bucket="ct-evidence", Key="ct/object", Body=b"x")
    s3.put_public_access_block(
        Bucket="ct-evidence",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )
    cloudtrail = fleet.client("cloudtrail", "123456789012")
    names = [
        e["EventName"]
        for e in lookup(
            cloudtrail,
            clock,
            LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": "ct-evidence"}],
        )["Events"]
    ]
    assert names[0] == "PutBucketPublicAccessBlock" and "PutObject" not in names
    (event,) = events_named(cloudtrail, clock, "PutBucketPublicAccessBlock")
    parameters = json.loads(event["CloudTrailEvent"])["requestParameters"]
    assert parameters["bucketName"] == "ct-evidence"
    assert parameters["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is False
    assert parameters["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True


def test_a_failed_call_is_recorded_with_its_error_code(fleet, clock):
    """Record contents: errorCode and errorMessage of a call that failed."""
    ssm = fleet.client("ssm", OTHER_ACCOUNT, "us-west-2")
    with pytest.raises(ClientError):
        ssm.update_patch_baseline(BaselineId="pb-0000000000000dead", Description="x")
    (event,) = events_named(
        fleet.client("cloudtrail", OTHER_ACCOUNT, "us-west-2"), clock, "UpdatePatchBaseline"
    )
    record = json.loads(event["CloudTrailEvent"])
    assert record["errorCode"] == "DoesNotExistException"
    assert record["recipientAccountId"] == OTHER_ACCOUNT


def test_pages_are_newest_first_and_tokens_continue_where_the_last_page_stopped(fleet, clock):
    """Events "sorted by time. The most recent event is listed first"; NextToken until there are no more."""
    ssm = fleet.client("ssm", ACCOUNT)
    baseline = ssm.create_patch_baseline(
        Name="ct-pages", OperatingSystem="AMAZON_LINUX_2", ApprovalRules=RULES
    )["BaselineId"]
    for i in range(7):
        clock.tick(1.0)
        ssm.update_patch_baseline(BaselineId=baseline, Description=f"page {i}")
    cloudtrail = fleet.client("cloudtrail", ACCOUNT)
    query = {
        "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": baseline}],
        "MaxResults": 3,
    }
    pages, token = [], None
    while True:
        page = lookup(cloudtrail, clock, **query, **({"NextToken": token} if token else {}))
        pages.append(page["Events"])
        token = page.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    descriptions = [
        json.loads(e["CloudTrailEvent"])["requestParameters"]["description"] for p in pages for e in p
    ]
    assert descriptions == [f"page {i}" for i in reversed(range(7))]
    times = [e["EventTime"] for p in pages for e in p]
    assert times == sorted(times, reverse=True)


def test_start_and_end_times_are_inclusive_and_events_last_90_days(fleet, clock):
    """StartTime "after or at", EndTime "before or at"; "within the last 90 days"."""
    ssm = fleet.client("ssm", ACCOUNT)
    cloudtrail = fleet.client("cloudtrail", ACCOUNT)
    baseline = ssm.create_patch_baseline(
        Name="ct-times", OperatingSystem="AMAZON_LINUX_2", ApprovalRules=RULES
    )["BaselineId"]
    clock.tick(10)
    ssm.update_patch_baseline(BaselineId=baseline, Description="old")
    written = dt.datetime.fromtimestamp(int(clock.now), dt.UTC)
    by_id = [{"AttributeKey": "ResourceName", "AttributeValue": baseline}]
    assert (
        len(lookup(cloudtrail, clock, LookupAttributes=by_id, StartTime=written, EndTime=written)["Events"])
        == 1
    )
    after = written + dt.timedelta(seconds=1)
    assert lookup(cloudtrail, clock, LookupAttributes=by_id, StartTime=after)["Events"] == []
    clock.tick(89 * 86400)
    assert len(lookup(cloudtrail, clock, LookupAttributes=by_id)["Events"]) == 1
    clock.tick(2 * 86400)
    assert lookup(cloudtrail, clock, LookupAttributes=by_id)["Events"] == []


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        (
            {
                "LookupAttributes": [
                    {"AttributeKey": "EventName", "AttributeValue": "PutRolePolicy"},
                    {"AttributeKey": "Username", "AttributeValue": "carol"},
                ]
            },
            "InvalidLookupAttributesException",
        ),
        (
            {"LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "maybe"}]},
            "InvalidLookupAttributesException",
        ),
        ({"MaxResults": 51}, "InvalidMaxResultsException"),
        (
            {
                "StartTime": dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
                "EndTime": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            },
            "InvalidTimeRangeException",
        ),
        ({"NextToken": "not-a-token"}, "InvalidNextTokenException"),
        ({"EventCategory": "management"}, "InvalidEventCategoryException"),
    ],
    ids=["two-attributes", "read-only-value", "max-results", "time-range", "next-token", "category"],
)
def test_invalid_lookups_are_refused_with_the_documented_errors(fleet, clock, kwargs, code):
    with pytest.raises(ClientError) as caught:
        lookup(fleet.client("cloudtrail", ACCOUNT), clock, **kwargs)
    assert caught.value.response["Error"]["Code"] == code


def test_a_token_only_serves_the_parameters_it_was_given_for(fleet, clock):
    """NextToken "must be passed in with the same parameters that were specified in the original call"."""
    cloudtrail = fleet.client("cloudtrail", ACCOUNT)
    token = lookup(cloudtrail, clock, MaxResults=1)["NextToken"]
    with pytest.raises(ClientError) as caught:
        lookup(
            cloudtrail,
            clock,
            MaxResults=1,
            NextToken=token,
            LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "true"}],
        )
    assert caught.value.response["Error"]["Code"] == "InvalidNextTokenException"
    assert lookup(cloudtrail, clock, EventCategory="insight")["Events"] == []  # no Insights events here


def test_lookups_are_throttled_beyond_two_a_second_per_account_and_region(fleet, clock):
    """ "two per second, per account, per Region. If this limit is exceeded, a throttling error occurs"
    (Common Errors: ThrottlingException, HTTP 400)."""
    clock.tick(5)
    east = fleet.client("cloudtrail", ACCOUNT, "us-east-1")
    east.lookup_events(MaxResults=1)
    east.lookup_events(MaxResults=1)
    with pytest.raises(ClientError) as caught:
        east.lookup_events(MaxResults=1)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    fleet.client("cloudtrail", ACCOUNT, "us-west-2").lookup_events(MaxResults=1)  # another region
    fleet.client("cloudtrail", OTHER_ACCOUNT, "us-east-1").lookup_events(MaxResults=1)  # another account
    clock.tick(1.0)
    east.lookup_events(MaxResults=1)
    (event, *_) = events_named(fleet.client("cloudtrail", ACCOUNT, "us-west-2"), clock, "LookupEvents")
    assert event["EventSource"] == "cloudtrail.amazonaws.com" and event["ReadOnly"] == "true"
