"""AWS, read for the daily drift report: the live objects Terraform declares, and CloudTrail's write events.

Thin seams over the Amazon provider's hooks, one small method per call, read only. A call that finds no
object answers None (the object was deleted outside Terraform); any other error is raised (the scope
cannot be read, and the report says so instead of calling it clean). The "not found" error codes are
each call's own (its API reference, Errors):

- IAM (https://docs.aws.amazon.com/IAM/latest/APIReference/): GetRole, ListAttachedRolePolicies,
  GetRolePolicy, GetPolicy, GetPolicyVersion; ``NoSuchEntity``.
- SSM (https://docs.aws.amazon.com/systems-manager/latest/APIReference/): GetPatchBaseline
  (``DoesNotExistException``), ListTagsForResource (``InvalidResourceId``), DescribePatchGroups (paged,
  MaxResults 100), DescribeDocument, GetDocument and DescribeDocumentPermission (``InvalidDocument``).
- EC2 (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/): DescribeLaunchTemplates
  (``InvalidLaunchTemplateId.NotFound``), DescribeLaunchTemplateVersions (``$Latest``/``$Default``
  name the latest and default versions; a version that is not there:
  ``InvalidLaunchTemplateId.VersionNotFound``).
- EC2 Auto Scaling (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/):
  DescribeAutoScalingGroups (paged, MaxRecords 100; each group's ``LaunchTemplate`` {LaunchTemplateId,
  LaunchTemplateName, Version: a number, ``$Latest`` or ``$Default``},
  ``MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification`` or ``LaunchConfigurationName``)
  and DescribeLaunchConfigurations (paged, MaxRecords 100, at most 50 names a request; ``UserData``
  base64, ``IamInstanceProfile``).
- S3 (https://docs.aws.amazon.com/AmazonS3/latest/API/): GetBucketTagging (``NoSuchTagSet``: no tags),
  GetBucketVersioning, GetObjectLockConfiguration (``ObjectLockConfigurationNotFoundError``),
  GetPublicAccessBlock (``NoSuchPublicAccessBlockConfiguration``), GetBucketEncryption
  (``ServerSideEncryptionConfigurationNotFoundError``); ``NoSuchBucket`` for a bucket that is gone.
- CloudTrail LookupEvents
  (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html): one lookup
  attribute per request, at most 50 events a page, the last 90 days; "The rate of lookup requests is
  limited to two per second, per account, per Region. If this limit is exceeded, a throttling error
  occurs" (``ThrottlingException``). Requests are paced to that rate per connection and region, in this
  process, and a throttled request waits and is sent again with exponential backoff.

:class:`LiveResourceReader` reads every state instance of a supported type through these hooks and gives
it in the state's shape (:mod:`patchcycle.domain.drift.live`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError

from patchcycle.domain.drift import live as shape
from patchcycle.domain.drift.daily import provider_alias
from patchcycle.domain.drift.launch import (
    GroupFinding,
    LaunchVersion,
    group_findings,
    group_launch,
    launch_configuration_data,
    tenants_group,
)
from patchcycle.domain.drift.registry import rule_for
from patchcycle.domain.drift.state import StateInstance
from patchcycle.hooks.aws_session import CallerFromFrames

T = TypeVar("T")

IAM_PAGE = 1000  # MaxItems maximum of ListAttachedRolePolicies
SSM_PATCH_GROUPS_PAGE = 100  # DescribePatchGroups MaxResults maximum
SSM_DOCUMENT_PERMISSION_PAGE = 200  # DescribeDocumentPermission MaxResults maximum
AUTOSCALING_PAGE = 100  # DescribeAutoScalingGroups / DescribeLaunchConfigurations MaxRecords maximum
LAUNCH_CONFIGURATION_NAMES = 50  # LaunchConfigurationNames per DescribeLaunchConfigurations request
CLOUDTRAIL_PAGE = 50  # LookupEvents MaxResults maximum
CLOUDTRAIL_INTERVAL = 0.5  # two requests a second per account and region
CLOUDTRAIL_THROTTLE_RETRIES = 6
CLOUDTRAIL_BACKOFF_MAX = 30.0


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _none_if(codes: frozenset[str], call: Callable[[], T]) -> T | None:
    """``call()``, or None when it fails with one of ``codes`` (the object is not there)."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in codes:
            return None
        raise


class MissingIdentity(ValueError):
    """A state instance without the attribute its live object is looked up by (left unread)."""


class BucketGone(Exception):
    """The bucket itself does not exist (``NoSuchBucket``): each of its settings is gone with it."""


class CallCounter:
    """Counts the API calls of the clients it is attached to, by ``service.Operation`` (botocore's
    ``before-call`` event is emitted once per request sent, pages and retries included)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, client: Any) -> Any:
        """Count ``client``'s calls from now on; returns the client."""
        service = client.meta.service_model.service_name

        def count(model: Any, **_: Any) -> None:
            self.calls[f"{service}.{model.name}"] += 1

        client.meta.events.register("before-call.*.*", count)
        return client

    @property
    def total(self) -> int:
        """Every call counted."""
        return sum(self.calls.values())


class IamReadHook(CallerFromFrames, AwsBaseHook):
    """IAM roles, their inline and attached policies, and customer managed policies (read only)."""

    NOT_FOUND = frozenset({"NoSuchEntity"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "iam"
        super().__init__(*args, **kwargs)

    def role(self, name: str) -> dict[str, Any] | None:
        """GetRole: the role (``Tags`` and ``AssumeRolePolicyDocument`` included), or None."""
        found = _none_if(self.NOT_FOUND, lambda: self.conn.get_role(RoleName=name))
        return found["Role"] if found else None

    def attached_policy_arns(self, role_name: str) -> list[str] | None:
        """ListAttachedRolePolicies, all pages of 1,000: the ARNs of the role's managed policies."""

        def pages() -> list[str]:
            paginator = self.conn.get_paginator("list_attached_role_policies")
            return [
                p["PolicyArn"]
                for page in paginator.paginate(RoleName=role_name, PaginationConfig={"PageSize": IAM_PAGE})
                for p in page["AttachedPolicies"]
            ]

        return _none_if(self.NOT_FOUND, pages)

    def role_policy(self, role_name: str, policy_name: str) -> Any:
        """GetRolePolicy: the inline policy's document, or None when the role or the policy is gone."""
        found = _none_if(
            self.NOT_FOUND, lambda: self.conn.get_role_policy(RoleName=role_name, PolicyName=policy_name)
        )
        return found["PolicyDocument"] if found else None

    def policy(self, arn: str) -> dict[str, Any] | None:
        """GetPolicy: the managed policy (``DefaultVersionId``, ``Tags``), or None."""
        found = _none_if(self.NOT_FOUND, lambda: self.conn.get_policy(PolicyArn=arn))
        return found["Policy"] if found else None

    def policy_document(self, arn: str, version_id: str) -> Any:
        """GetPolicyVersion: the document of one version of a managed policy, or None."""
        found = _none_if(
            self.NOT_FOUND, lambda: self.conn.get_policy_version(PolicyArn=arn, VersionId=version_id)
        )
        return found["PolicyVersion"].get("Document") if found else None


class SsmConfigHook(CallerFromFrames, AwsBaseHook):
    """SSM patch baselines, patch groups and documents, with their tags (read only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "ssm"
        super().__init__(*args, **kwargs)

    def patch_baseline(self, baseline_id: str) -> dict[str, Any] | None:
        """GetPatchBaseline: the baseline with its approval rules and filters, or None."""
        found: dict[str, Any] | None = _none_if(
            frozenset({"DoesNotExistException"}), lambda: self.conn.get_patch_baseline(BaselineId=baseline_id)
        )
        return found

    def tags(self, resource_type: str, resource_id: str) -> list[dict[str, str]] | None:
        """ListTagsForResource (``PatchBaseline``, ``Document``...): the resource's tags, or None."""
        found = _none_if(
            frozenset({"InvalidResourceId"}),
            lambda: self.conn.list_tags_for_resource(ResourceType=resource_type, ResourceId=resource_id),
        )
        return found.get("TagList", []) if found is not None else None

    def patch_groups(self) -> list[dict[str, Any]]:
        """DescribePatchGroups, all pages of 100: every patch group registered with a baseline."""
        paginator = self.conn.get_paginator("describe_patch_groups")
        return [
            m
            for page in paginator.paginate(PaginationConfig={"PageSize": SSM_PATCH_GROUPS_PAGE})
            for m in page["Mappings"]
        ]

    def document(self, name: str) -> dict[str, Any] | None:
        """DescribeDocument: the document's description (formats, versions, ``Tags``), or None."""
        found = _none_if(frozenset({"InvalidDocument"}), lambda: self.conn.describe_document(Name=name))
        return found["Document"] if found else None

    def document_content(self, name: str, version: str, document_format: str) -> str | None:
        """GetDocument: one version's content in ``document_format`` (JSON or YAML), or None."""
        kwargs: dict[str, Any] = {"Name": name, "DocumentVersion": version}
        if document_format in ("JSON", "YAML"):
            kwargs["DocumentFormat"] = document_format
        found = _none_if(frozenset({"InvalidDocument"}), lambda: self.conn.get_document(**kwargs))
        return found.get("Content") if found else None

    def document_shared_with(self, name: str) -> list[str] | None:
        """DescribeDocumentPermission (``Share``), all pages of 200: the accounts the document is shared
        with (``all`` when public), or None when the document is gone."""
        accounts: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Name": name,
                "PermissionType": "Share",
                "MaxResults": SSM_DOCUMENT_PERMISSION_PAGE,
            }
            if token:
                kwargs["NextToken"] = token

            def page(request: dict[str, Any] = kwargs) -> dict[str, Any]:
                answer: dict[str, Any] = self.conn.describe_document_permission(**request)
                return answer

            found = _none_if(frozenset({"InvalidDocument"}), page)
            if found is None:
                return None
            accounts.extend(found.get("AccountIds") or [])
            token = found.get("NextToken")
            if not token:
                return accounts


class LaunchTemplateHook(CallerFromFrames, AwsBaseHook):
    """EC2 launch templates and their versions (read only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "ec2"
        super().__init__(*args, **kwargs)

    def launch_template(self, template_id: str) -> dict[str, Any] | None:
        """DescribeLaunchTemplates for one id: the template (default and latest version numbers,
        ``Tags``), or None."""
        found = _none_if(
            frozenset({"InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFoundException"}),
            lambda: self.conn.describe_launch_templates(LaunchTemplateIds=[template_id]),
        )
        templates = (found or {}).get("LaunchTemplates") or []
        return templates[0] if templates else None

    def versions(self, template_id: str, versions: Sequence[str]) -> list[dict[str, Any]]:
        """DescribeLaunchTemplateVersions: the named versions (numbers, ``$Latest``, ``$Default``) of one
        template, each with its ``LaunchTemplateData``."""
        response = self.conn.describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=list(versions)
        )
        return list(response.get("LaunchTemplateVersions") or [])

    def version(
        self, template_id: str | None, template_name: str | None, version: str
    ) -> dict[str, Any] | None:
        """DescribeLaunchTemplateVersions: one version (a number, ``$Latest`` or ``$Default``) of the
        template named by id (else by name), with its ``LaunchTemplateData``; None when the template or
        the version is not there."""
        kwargs: dict[str, Any] = {"Versions": [version]}
        if template_id:
            kwargs["LaunchTemplateId"] = template_id
        else:
            kwargs["LaunchTemplateName"] = template_name
        found = _none_if(
            frozenset(
                {
                    "InvalidLaunchTemplateId.NotFound",
                    "InvalidLaunchTemplateName.NotFoundException",
                    "InvalidLaunchTemplateId.VersionNotFound",
                    "InvalidLaunchTemplateId.Malformed",
                }
            ),
            lambda: self.conn.describe_launch_template_versions(**kwargs),
        )
        versions = (found or {}).get("LaunchTemplateVersions") or []
        return dict(versions[0]) if versions else None


class AutoScalingHook(CallerFromFrames, AwsBaseHook):
    """EC2 Auto Scaling groups and launch configurations (read only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "autoscaling"
        super().__init__(*args, **kwargs)

    def groups(self) -> list[dict[str, Any]]:
        """DescribeAutoScalingGroups, all pages of 100: every group of the account and region."""
        paginator = self.conn.get_paginator("describe_auto_scaling_groups")
        return [
            g
            for page in paginator.paginate(PaginationConfig={"PageSize": AUTOSCALING_PAGE})
            for g in page["AutoScalingGroups"]
        ]

    def launch_configurations(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """DescribeLaunchConfigurations, 50 names a request, all pages of 100: the named launch
        configurations by name (one that is not there is simply absent)."""
        found: dict[str, dict[str, Any]] = {}
        wanted = sorted(set(names))
        paginator = self.conn.get_paginator("describe_launch_configurations")
        for start in range(0, len(wanted), LAUNCH_CONFIGURATION_NAMES):
            chunk = wanted[start : start + LAUNCH_CONFIGURATION_NAMES]
            for page in paginator.paginate(
                LaunchConfigurationNames=chunk, PaginationConfig={"PageSize": AUTOSCALING_PAGE}
            ):
                for configuration in page["LaunchConfigurations"]:
                    found[configuration["LaunchConfigurationName"]] = configuration
        return found


class BucketSettingsHook(CallerFromFrames, AwsBaseHook):
    """An S3 bucket's settings: tags, versioning, Object Lock, public access block, encryption (read
    only). Each raises :class:`BucketGone` when the bucket does not exist."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "s3"
        super().__init__(*args, **kwargs)

    @staticmethod
    def _read(bucket: str, absent: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchBucket":
                raise BucketGone(bucket) from exc
            if code == absent:
                return None
            raise

    def tags(self, bucket: str) -> list[dict[str, str]]:
        """GetBucketTagging: the bucket's tags (none: an empty list)."""
        found = self._read(bucket, "NoSuchTagSet", lambda: self.conn.get_bucket_tagging(Bucket=bucket))
        return list((found or {}).get("TagSet") or [])

    def versioning(self, bucket: str) -> dict[str, Any]:
        """GetBucketVersioning: ``Status`` and ``MFADelete`` (both absent: never enabled)."""
        return dict(self._read(bucket, "", lambda: self.conn.get_bucket_versioning(Bucket=bucket)))

    def object_lock(self, bucket: str) -> dict[str, Any] | None:
        """GetObjectLockConfiguration: the configuration, or None when the bucket has none."""
        found = self._read(
            bucket,
            "ObjectLockConfigurationNotFoundError",
            lambda: self.conn.get_object_lock_configuration(Bucket=bucket),
        )
        return found.get("ObjectLockConfiguration") if found else None

    def public_access_block(self, bucket: str) -> dict[str, Any] | None:
        """GetPublicAccessBlock: the bucket's configuration, or None when it has none."""
        found = self._read(
            bucket,
            "NoSuchPublicAccessBlockConfiguration",
            lambda: self.conn.get_public_access_block(Bucket=bucket),
        )
        return found.get("PublicAccessBlockConfiguration") if found else None

    def encryption(self, bucket: str) -> dict[str, Any] | None:
        """GetBucketEncryption: the default encryption configuration, or None when it has none."""
        found = self._read(
            bucket,
            "ServerSideEncryptionConfigurationNotFoundError",
            lambda: self.conn.get_bucket_encryption(Bucket=bucket),
        )
        return found.get("ServerSideEncryptionConfiguration") if found else None


class CloudTrailHook(CallerFromFrames, AwsBaseHook):
    """CloudTrail's event history (LookupEvents), paced to its documented rate."""

    _last_request: dict[tuple[str | None, str | None], float] = {}
    _pace_lock = threading.Lock()
    clock: Callable[[], float] = staticmethod(time.monotonic)
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "cloudtrail"
        super().__init__(*args, **kwargs)
        self.throttled = 0

    def lookup_events(self, resource_name: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        """Every event naming ``resource_name`` (``ResourceName``) between ``start`` and ``end``."""
        return self._events("ResourceName", resource_name, start, end)

    def lookup_events_named(
        self, event_name: str, start: dt.datetime, end: dt.datetime
    ) -> list[dict[str, Any]]:
        """Every event of API call ``event_name`` (``EventName``) between ``start`` and ``end``."""
        return self._events("EventName", event_name, start, end)

    def _events(self, key: str, value: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}],
            "StartTime": start,
            "EndTime": end,
            "MaxResults": CLOUDTRAIL_PAGE,
        }
        while True:
            page = self._paced(kwargs)
            events.extend(page.get("Events") or [])
            token = page.get("NextToken")
            if not token:
                return events
            kwargs["NextToken"] = token

    def _paced(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """One LookupEvents request at CloudTrail's rate; a throttled one is sent again after 1, 2, 4...
        seconds (at most :data:`CLOUDTRAIL_BACKOFF_MAX`), up to :data:`CLOUDTRAIL_THROTTLE_RETRIES` times."""
        for attempt in range(CLOUDTRAIL_THROTTLE_RETRIES + 1):
            self._wait_turn()
            try:
                page: dict[str, Any] = self.conn.lookup_events(**kwargs)
                return page
            except ClientError as exc:
                if error_code(exc) != "ThrottlingException" or attempt == CLOUDTRAIL_THROTTLE_RETRIES:
                    raise
                self.throttled += 1
                type(self).sleep(min(2.0**attempt, CLOUDTRAIL_BACKOFF_MAX))
            finally:
                self._answered()
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_turn(self) -> None:
        """Sleep until :data:`CLOUDTRAIL_INTERVAL` has passed since this account and region's last request
        was answered (the connection names the account). Counting from the answer, not the send, keeps two
        requests a second as CloudTrail counts them on arrival, whatever the latency."""
        cls = type(self)
        with cls._pace_lock:
            due = cls._last_request.get((self.aws_conn_id, self.region_name), float("-inf"))
        wait = due + CLOUDTRAIL_INTERVAL - cls.clock()
        if wait > 0:
            cls.sleep(wait)

    def _answered(self) -> None:
        """Note when this account and region's last request was answered."""
        with type(self)._pace_lock:
            type(self)._last_request[(self.aws_conn_id, self.region_name)] = type(self).clock()


# -- the live view ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """The Airflow connection and region a provider configuration of the state reads through."""

    conn_id: str
    region: str


@dataclass
class LiveRead:
    """What :meth:`LiveResourceReader.read` found: the live view (address -> attributes, None when gone),
    the launch template versions read, and the addresses left unread, with why."""

    live: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    launch_versions: dict[str, list[LaunchVersion]] = field(default_factory=dict)
    unread: dict[str, str] = field(default_factory=dict)


class LiveResourceReader:
    """The live object of every state instance of a supported type, in the state's shape.

    ``connections`` maps each provider configuration's alias (``""`` for the default one, ``evidence``
    for the evidence bucket's) to its connection and region. A resource whose configuration has no
    connection here is left unread (unchecked in the report). Hooks are made once per connection and
    region and their clients counted by ``counter``; reads that several resources share (a role, the
    patch groups, a bucket's Object Lock) are made once.
    """

    def __init__(self, connections: Mapping[str, Connection], counter: CallCounter | None = None) -> None:
        self.connections = dict(connections)
        self.counter = counter or CallCounter()
        self._hooks: dict[tuple[type, Connection], Any] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._readers: dict[str, Callable[[StateInstance, Connection], Any]] = {
            "aws_iam_role": self._iam_role,
            "aws_iam_role_policy": self._iam_role_policy,
            "aws_iam_policy": self._iam_policy,
            "aws_ssm_patch_baseline": self._ssm_patch_baseline,
            "aws_ssm_patch_group": self._ssm_patch_group,
            "aws_ssm_document": self._ssm_document,
            "aws_launch_template": self._launch_template,
            "aws_s3_bucket": self._s3_bucket,
            "aws_s3_bucket_versioning": self._s3_versioning,
            "aws_s3_bucket_object_lock_configuration": self._s3_object_lock,
            "aws_s3_bucket_public_access_block": self._s3_public_access_block,
            "aws_s3_bucket_server_side_encryption_configuration": self._s3_encryption,
        }
        self._live_read = LiveRead()

    @cached_property
    def supported(self) -> frozenset[str]:
        """The resource types this reader reads (each in the drift registry)."""
        return frozenset(t for t in self._readers if rule_for(t) is not None)

    def read(self, instances: Iterable[StateInstance]) -> LiveRead:
        """Read each managed instance of a supported type; raises the first error that is not "not found"
        (the scope cannot be read)."""
        found = LiveRead()
        self._live_read = found
        for instance in instances:
            if instance.mode != "managed" or instance.deposed or instance.attributes is None:
                continue
            reader = self._readers.get(instance.type)
            if reader is None:
                continue
            alias = provider_alias(instance.provider)
            connection = self.connections.get(alias)
            if connection is None:
                found.unread[instance.address] = f"no connection for provider configuration aws.{alias}"
                continue
            try:
                found.live[instance.address] = reader(instance, connection)
            except MissingIdentity as exc:
                found.unread[instance.address] = str(exc)
        return found

    # -- hooks and shared reads ----------------------------------------------------------------------
    def _hook(self, kind: type, connection: Connection) -> Any:
        key = (kind, connection)
        if key not in self._hooks:
            hook = kind(aws_conn_id=connection.conn_id, region_name=connection.region)
            self.counter.attach(hook.conn)
            self._hooks[key] = hook
        return self._hooks[key]

    def _once(self, key: tuple[Any, ...], call: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = call()
        return self._cache[key]

    # -- IAM -------------------------------------------------------------------------------------------
    def _iam_role(self, instance: StateInstance, connection: Connection) -> Any:
        iam = self._hook(IamReadHook, connection)
        name = _attr(instance, "name", "id")
        role = self._once(("role", connection.conn_id, name), lambda: iam.role(name))
        attached = iam.attached_policy_arns(name) if role is not None else None
        return None if role is None or attached is None else shape.iam_role(role, attached)

    def _iam_role_policy(self, instance: StateInstance, connection: Connection) -> Any:
        iam = self._hook(IamReadHook, connection)
        role_name, name = _attr(instance, "role"), _attr(instance, "name")
        document = iam.role_policy(role_name, name)
        return None if document is None else shape.iam_role_policy(role_name, name, document)

    def _iam_policy(self, instance: StateInstance, connection: Connection) -> Any:
        iam = self._hook(IamReadHook, connection)
        arn = _attr(instance, "arn", "id")
        policy = iam.policy(arn)
        if policy is None:
            return None
        document = iam.policy_document(arn, policy["DefaultVersionId"])
        return None if document is None else shape.iam_policy(policy, document)

    # -- SSM -------------------------------------------------------------------------------------------
    def _baseline(self, ssm: SsmConfigHook, baseline_id: str, connection: Connection) -> Any:
        return self._once(("baseline", connection, baseline_id), lambda: ssm.patch_baseline(baseline_id))

    def _ssm_patch_baseline(self, instance: StateInstance, connection: Connection) -> Any:
        ssm = self._hook(SsmConfigHook, connection)
        baseline_id = _attr(instance, "id")
        baseline = self._baseline(ssm, baseline_id, connection)
        if baseline is None:
            return None
        tags = ssm.tags("PatchBaseline", baseline_id)
        return shape.ssm_patch_baseline(baseline, tags)

    def _ssm_patch_group(self, instance: StateInstance, connection: Connection) -> Any:
        """The declared baseline's ``PatchGroups`` (GetPatchBaseline, read once for the baseline too) name
        the group when nothing moved; otherwise DescribePatchGroups says where the group is now."""
        ssm = self._hook(SsmConfigHook, connection)
        group, baseline_id = _attr(instance, "patch_group"), _attr(instance, "baseline_id")
        baseline = self._baseline(ssm, baseline_id, connection)
        if baseline is not None and group in (baseline.get("PatchGroups") or []):
            return {"baseline_id": baseline_id, "patch_group": group}
        mappings = self._once(("patch_groups", connection), ssm.patch_groups)
        return shape.ssm_patch_group(group, baseline_id, mappings)

    def _ssm_document(self, instance: StateInstance, connection: Connection) -> Any:
        ssm = self._hook(SsmConfigHook, connection)
        name = _attr(instance, "name", "id")
        described = ssm.document(name)
        if described is None:
            return None
        latest = str(described.get("LatestVersion") or "$LATEST")
        content = ssm.document_content(name, latest, str(described.get("DocumentFormat") or ""))
        shared = ssm.document_shared_with(name)
        if content is None or shared is None:
            return None
        return shape.ssm_document(described, content, shared)

    # -- EC2 -------------------------------------------------------------------------------------------
    def _launch_template(self, instance: StateInstance, connection: Connection) -> Any:
        ec2 = self._hook(LaunchTemplateHook, connection)
        template_id = _attr(instance, "id")
        template = ec2.launch_template(template_id)
        if template is None:
            return None
        latest_number = template.get("LatestVersionNumber")
        default_number = template.get("DefaultVersionNumber")
        by_number = {v.get("VersionNumber"): v for v in ec2.versions(template_id, ["$Latest", "$Default"])}
        latest = by_number.get(latest_number)
        if latest is None:
            return None
        versions = [
            LaunchVersion("latest", latest_number, shape.launch_template_data(latest["LaunchTemplateData"]))
        ]
        if default_number in by_number:
            data = by_number[default_number].get("LaunchTemplateData") or {}
            versions.append(LaunchVersion("default", default_number, shape.launch_template_data(data)))
        self._live_read.launch_versions[instance.address] = versions
        return shape.launch_template(template, latest)

    # -- Auto Scaling ----------------------------------------------------------------------------------
    def read_groups(
        self, scope: str, tenant_id: str, instances: Iterable[StateInstance]
    ) -> list[GroupFinding]:
        """The findings of the tenant's Auto Scaling groups in the scope's connection (``""``): each
        group whose launch template the state manages or that carries the tenant's tag
        (:func:`~patchcycle.domain.drift.launch.tenants_group`), judged on the launch template version
        it resolves to or on its launch configuration. Raises what the listing raises (the scope cannot
        be read); None when there is no connection for the scope."""
        connection = self.connections.get("")
        if connection is None:
            return []
        templates: dict[str, StateInstance] = {}
        for instance in instances:
            if instance.mode != "managed" or instance.deposed or instance.type != "aws_launch_template":
                continue
            for key in ("id", "name"):
                value = (instance.attributes or {}).get(key)
                if value:
                    templates[str(value)] = instance
        autoscaling = self._hook(AutoScalingHook, connection)
        launches = [group_launch(g) for g in autoscaling.groups()]
        launches = [g for g in launches if tenants_group(g, tenant_id, templates)]
        configurations = (
            autoscaling.launch_configurations(
                [g.launch_configuration for g in launches if g.launch_configuration]
            )
            if any(g.launch_configuration for g in launches)
            else {}
        )
        found: list[GroupFinding] = []
        for launch in sorted(launches, key=lambda g: g.name):
            if launch.launch_configuration:
                configuration = configurations.get(launch.launch_configuration)
                launched = (
                    LaunchVersion("launch configuration", None, launch_configuration_data(configuration))
                    if configuration is not None
                    else None
                )
                why = f"not checked: launch configuration {launch.launch_configuration} could not be read"
                found += group_findings(scope, launch, launch.source, None, launched, why)
                continue
            if not (launch.template_id or launch.template_name):
                found += group_findings(
                    scope, launch, launch.source, None, None, "not checked: the group names no launch source"
                )
                continue
            managed = templates.get(launch.template_id or "") or templates.get(launch.template_name or "")
            declared = managed.attributes if managed is not None else None
            name = str((declared or {}).get("name") or launch.template_name or launch.template_id)
            ec2 = self._hook(LaunchTemplateHook, connection)
            cache_key = (
                "group_version",
                connection,
                launch.template_id,
                launch.template_name,
                launch.version,
            )
            if cache_key not in self._cache:
                self._cache[cache_key] = ec2.version(launch.template_id, launch.template_name, launch.version)
            version = self._cache[cache_key]
            number = version.get("VersionNumber") if version else None
            where = f" ({managed.address})" if managed is not None else ""
            resolved = f" = {number}" if number is not None and str(number) != launch.version else ""
            source = f"launch template {name}{where} version {launch.version}{resolved}"
            launched = (
                LaunchVersion(
                    launch.version,
                    number,
                    shape.launch_template_data(version.get("LaunchTemplateData") or {}),
                )
                if version is not None
                else None
            )
            why = f"not checked: {name} version {launch.version} was not found"
            found += group_findings(scope, launch, source, declared, launched, why)
        return found

    # -- S3 --------------------------------------------------------------------------------------------
    def _bucket(
        self, instance: StateInstance, connection: Connection, read: Callable[[Any, str], Any]
    ) -> Any:
        s3 = self._hook(BucketSettingsHook, connection)
        bucket = _attr(instance, "bucket", "id")
        try:
            return read(s3, bucket)
        except BucketGone:
            return None

    def _object_lock(self, s3: BucketSettingsHook, bucket: str, connection: Connection) -> Any:
        return self._once(("object_lock", connection, bucket), lambda: s3.object_lock(bucket))

    def _s3_bucket(self, instance: StateInstance, connection: Connection) -> Any:
        return self._bucket(
            instance,
            connection,
            lambda s3, b: shape.s3_bucket(b, s3.tags(b), self._object_lock(s3, b, connection)),
        )

    def _s3_versioning(self, instance: StateInstance, connection: Connection) -> Any:
        return self._bucket(
            instance, connection, lambda s3, b: shape.s3_bucket_versioning(b, s3.versioning(b))
        )

    def _s3_object_lock(self, instance: StateInstance, connection: Connection) -> Any:
        return self._bucket(
            instance,
            connection,
            lambda s3, b: shape.s3_object_lock_configuration(b, self._object_lock(s3, b, connection)),
        )

    def _s3_public_access_block(self, instance: StateInstance, connection: Connection) -> Any:
        return self._bucket(
            instance, connection, lambda s3, b: shape.s3_public_access_block(b, s3.public_access_block(b))
        )

    def _s3_encryption(self, instance: StateInstance, connection: Connection) -> Any:
        return self._bucket(instance, connection, lambda s3, b: shape.s3_encryption(b, s3.encryption(b)))


def _attr(instance: StateInstance, *names: str) -> str:
    """The first of ``names`` the state instance has a value for (the identity the API is asked by)."""
    attributes = instance.attributes or {}
    for name in names:
        value = attributes.get(name)
        if value not in (None, ""):
            return str(value)
    raise MissingIdentity(
        f"{instance.address} has none of {', '.join(names)} in the state: cannot be looked up"
    )
