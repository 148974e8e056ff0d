"""AWS, spoken to only here: SSM (fleet, Run Command, patch state), EC2 (tags, AMI backups, root
volume replacement from an AMI) and RDS (DB instances, their OS updates, DB snapshots and restores).

Thin seams over the Amazon provider's hooks: one small method per cloud call, each batched and
paginated to the API's documented maximum. Configured only by the Airflow AWS connection (endpoint,
role, region), so the same code runs against fleetsim and against AWS.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config

from patchcycle.hooks.aws_session import CallerFromFrames

# Documented maxima per call (the physical minimum of calls is n / these).
SSM_INSTANCE_INFORMATION_PAGE = 50
SSM_PATCH_STATES_BATCH = 50  # InstanceIds per DescribeInstancePatchStates
SSM_INVOCATIONS_PAGE = 50
SSM_SEND_INSTANCE_IDS = 50  # SendCommand InstanceIds: "up to a maximum of 50 IDs"
SSM_AVAILABLE_PATCHES_PAGE = 100
# DescribeInstancePatches takes one InstanceId (required) and MaxResults 10-100: a per-instance API,
# there is no batch form (API_DescribeInstancePatches, Request Parameters).
SSM_INSTANCE_PATCHES_PAGE = 100
SSM_PATCH_BASELINES_PAGE = 100  # DescribePatchBaselines MaxResults maximum
EC2_TAGS_PAGE = 1000
EC2_CREATE_TAGS_BATCH = 1000  # resource ids per CreateTags (EC2's documented limit)
EC2_IMAGES_PAGE = 1000
EC2_ROOT_VOLUME_TASKS_PAGE = 50  # DescribeReplaceRootVolumeTasks' MaxResults maximum
RDS_PAGE = 100  # MaxRecords maximum of DescribeDBInstances, DescribeDBSnapshots and
# DescribePendingMaintenanceActions
RDS_OS_UPDATE = "system-update"  # the maintenance action that updates a DB instance's operating system

PATCH_DOCUMENT = "AWS-RunPatchBaseline"


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items``, each of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SsmFleetHook(CallerFromFrames, AwsBaseHook):
    """SSM managed instances, patch catalog, patch state and Run Command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "ssm"
        super().__init__(*args, **kwargs)

    @cached_property
    def _send_once_client(self) -> Any:
        """An SSM client that never retries (for SendCommand), made once per hook: each client made anew
        would start a new session (and assume the connection's role again)."""
        return self.get_client_type(
            region_name=self.region_name, config=self.config.merge(Config(retries={"total_max_attempts": 1}))
        )

    def managed_instances(self) -> list[dict[str, Any]]:
        """Every SSM managed instance (DescribeInstanceInformation, all pages of 50): its ping status,
        platform and agent version."""
        paginator = self.conn.get_paginator("describe_instance_information")
        rows: list[dict[str, Any]] = []
        for page in paginator.paginate(PaginationConfig={"PageSize": SSM_INSTANCE_INFORMATION_PAGE}):
            rows.extend(page["InstanceInformationList"])
        return rows

    def patch_states(self, instance_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """DescribeInstancePatchStates, in batches of 50 instance ids, all pages: each instance's patch counts
        against its baseline, by instance id (an instance with no state yet is absent)."""
        states: dict[str, dict[str, Any]] = {}
        for batch in chunks(list(instance_ids), SSM_PATCH_STATES_BATCH):
            paginator = self.conn.get_paginator("describe_instance_patch_states")
            # MaxResults is 10-100 and its default is undocumented: ask for a whole batch per page
            # (API_DescribeInstancePatchStates.html, Request Parameters).
            for page in paginator.paginate(
                InstanceIds=list(batch), PaginationConfig={"PageSize": SSM_PATCH_STATES_BATCH}
            ):
                for state in page["InstancePatchStates"]:
                    states[state["InstanceId"]] = state
        return states

    def available_patches(self, product: str) -> list[dict[str, Any]]:
        """DescribeAvailablePatches filtered on PRODUCT ``product``, all pages of 100: every patch SSM knows
        for that product."""
        paginator = self.conn.get_paginator("describe_available_patches")
        rows: list[dict[str, Any]] = []
        for page in paginator.paginate(
            Filters=[{"Key": "PRODUCT", "Values": [product]}],
            PaginationConfig={"PageSize": SSM_AVAILABLE_PATCHES_PAGE},
        ):
            rows.extend(page["Patches"])
        return rows

    def instance_patches(
        self, instance_id: str, states: Sequence[str] = ()
    ) -> tuple[list[dict[str, Any]], int]:
        """One instance's patches and their state relative to the baseline it used, optionally only
        those in ``states`` (filter key State, e.g. ``Missing``); with the number of calls made.

        Per instance by the API's design (InstanceId is required; no batch form exists).
        """
        paginator = self.conn.get_paginator("describe_instance_patches")
        kwargs: dict[str, Any] = {"InstanceId": instance_id}
        if states:
            kwargs["Filters"] = [{"Key": "State", "Values": list(states)}]
        rows: list[dict[str, Any]] = []
        calls = 0
        for page in paginator.paginate(**kwargs, PaginationConfig={"PageSize": SSM_INSTANCE_PATCHES_PAGE}):
            calls += 1
            rows.extend(page["Patches"])
        return rows, calls

    def patch_baseline_named(self, name: str) -> str | None:
        """The BaselineId of our own patch baseline called exactly ``name``, if it exists."""
        paginator = self.conn.get_paginator("describe_patch_baselines")
        for page in paginator.paginate(
            Filters=[{"Key": "NAME_PREFIX", "Values": [name]}, {"Key": "OWNER", "Values": ["Self"]}],
            PaginationConfig={"PageSize": SSM_PATCH_BASELINES_PAGE},
        ):
            for identity in page["BaselineIdentities"]:
                if identity.get("BaselineName") == name:
                    return identity["BaselineId"]
        return None

    def create_patch_baseline(self, request: dict[str, Any], client_token: str) -> str:
        """CreatePatchBaseline from ``request``, with ``client_token`` as its idempotency token; returns the
        new BaselineId."""
        return self.conn.create_patch_baseline(**request, ClientToken=client_token)["BaselineId"]

    def update_patch_baseline(self, baseline_id: str, request: dict[str, Any]) -> None:
        """UpdatePatchBaseline: set ``request``'s fields on the baseline ("Fields not specified in the
        request are left unchanged", API reference, UpdatePatchBaseline)."""
        self.conn.update_patch_baseline(BaselineId=baseline_id, **request)

    def patch_baseline(self, baseline_id: str) -> dict[str, Any]:
        """GetPatchBaseline: the baseline's approval rules and ApprovedPatches as they stand."""
        return dict(self.conn.get_patch_baseline(BaselineId=baseline_id))

    def register_patch_group(self, baseline_id: str, patch_group: str, operating_system: str) -> bool:
        """Register the patch group with the baseline; False when it already was (nothing to do).

        A group has one baseline per OS type (About patch groups): a group registered with another of
        ours is moved to this one.
        """
        from botocore.exceptions import ClientError

        try:
            self.conn.register_patch_baseline_for_patch_group(BaselineId=baseline_id, PatchGroup=patch_group)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "AlreadyExistsException":
                raise
        # OperatingSystem defaults to WINDOWS (GetPatchBaselineForPatchGroup): always name it.
        current = self.conn.get_patch_baseline_for_patch_group(
            PatchGroup=patch_group, OperatingSystem=operating_system
        )
        if current.get("BaselineId") == baseline_id:
            return False
        self.conn.deregister_patch_baseline_for_patch_group(
            BaselineId=current["BaselineId"], PatchGroup=patch_group
        )
        self.conn.register_patch_baseline_for_patch_group(BaselineId=baseline_id, PatchGroup=patch_group)
        return True

    def send_patch_scan(
        self,
        *,
        target_tags: tuple[str, Sequence[str]],
        snapshot_id: str,
        max_concurrency: str,
        max_errors: str,
        comment: str,
    ) -> dict[str, Any]:
        """One Scan for every tagged host: each is assessed against the baseline of its patch group.

        Scan "identifies where updates are missing that are approved and applicable to the node"
        (AWS-RunPatchBaseline, Parameter name: Operation). A custom Snapshot ID makes every node of the
        command use the same baseline snapshot (Parameter name: Snapshot ID, best practices).
        """
        key, values = target_tags
        return self._run_patch_baseline(
            targets=[{"Key": f"tag:{key}", "Values": list(values)}],
            parameters={"Operation": ["Scan"], "SnapshotId": [snapshot_id]},
            max_concurrency=max_concurrency,
            max_errors=max_errors,
            comment=comment,
        )

    def send_patch_install(
        self,
        *,
        target_tag: tuple[str, str],
        override_list_url: str,
        max_concurrency: str,
        max_errors: str,
        comment: str,
        reboot_option: str = "RebootIfNeeded",
    ) -> dict[str, Any]:
        """One command for a whole stage: SSM fans out to the tagged hosts under the rate control."""
        key, value = target_tag
        return self._run_patch_baseline(
            targets=[{"Key": f"tag:{key}", "Values": [value]}],
            parameters={
                "Operation": ["Install"],
                "RebootOption": [reboot_option],
                "InstallOverrideList": [override_list_url],
            },
            max_concurrency=max_concurrency,
            max_errors=max_errors,
            comment=comment,
        )

    def _run_patch_baseline(
        self,
        *,
        targets: list[dict[str, Any]],
        parameters: dict[str, list[str]],
        max_concurrency: str,
        max_errors: str,
        comment: str,
    ) -> dict[str, Any]:
        # An Install is sent exactly once: botocore would resend it after a 5xx or a dropped connection,
        # and SendCommand takes no idempotency token, so a resend can install twice. The operator finds
        # a send whose answer was lost with find_patch_command instead. A Scan only assesses; the
        # connection's retries stand.
        client = self._send_once_client if parameters.get("Operation") == ["Install"] else self.conn
        response = client.send_command(
            DocumentName=PATCH_DOCUMENT,
            Targets=targets,
            Parameters=parameters,
            MaxConcurrency=max_concurrency,
            MaxErrors=max_errors,
            Comment=comment[:100],
        )
        return response["Command"]

    def send_document(
        self,
        *,
        document: str,
        instance_ids: Sequence[str],
        parameters: dict[str, list[str]],
        max_concurrency: str,
        max_errors: str,
        comment: str,
    ) -> dict[str, Any]:
        """SendCommand of a Command document to at most 50 instances by id ("InstanceIds ... up to a
        maximum of 50 IDs", API reference, SendCommand), sent exactly once (SendCommand takes no
        idempotency token: a resend after a lost answer would run the document twice)."""
        if not instance_ids or len(instance_ids) > SSM_SEND_INSTANCE_IDS:
            raise ValueError(
                f"SendCommand takes 1 to {SSM_SEND_INSTANCE_IDS} instance ids, got {len(instance_ids)}"
            )
        response = self._send_once_client.send_command(
            DocumentName=document,
            InstanceIds=list(instance_ids),
            Parameters=parameters,
            MaxConcurrency=max_concurrency,
            MaxErrors=max_errors,
            Comment=comment[:100],
        )
        return dict(response["Command"])

    def put_secure_string(self, name: str, value: str, description: str) -> None:
        """PutParameter of a SecureString (under the account's AWS managed key, ``alias/aws/ssm``),
        overwriting the value it had; the value is never logged."""
        self.conn.put_parameter(
            Name=name, Value=value, Type="SecureString", Overwrite=True, Description=description[:1024]
        )

    def command(self, command_id: str) -> dict[str, Any]:
        """ListCommands for one command id: the command (``Status``, ``Targets``, and its target, completed
        and error counts)."""
        return self.conn.list_commands(CommandId=command_id)["Commands"][0]

    def find_patch_command(self, target: dict[str, Any], invoked_after: str) -> dict[str, Any] | None:
        """The AWS-RunPatchBaseline command sent to exactly ``target`` (``{"Key": "tag:...", "Values":
        [...]}``) at or after ``invoked_after`` (ISO 8601), or None: how a retry finds a send whose
        answer an earlier attempt never recorded (SendCommand takes no idempotency token).

        ListCommands ``Filters`` ``DocumentName`` and ``InvokedAfter`` (API reference, ListCommands and
        CommandFilter: "InvokedAfter: Specify a timestamp to limit your results", e.g.
        ``2024-07-07T00:00:00Z``). Commands are kept for 30 days, far longer than any retry.
        """
        paginator = self.conn.get_paginator("list_commands")
        for page in paginator.paginate(
            Filters=[
                {"key": "DocumentName", "value": PATCH_DOCUMENT},
                {"key": "InvokedAfter", "value": invoked_after},
            ],
            PaginationConfig={"PageSize": 50},
        ):
            for command in page["Commands"]:
                if command.get("Targets") == [target]:
                    return command
        return None

    def command_invocations(self, command_id: str) -> list[dict[str, Any]]:
        """ListCommandInvocations with Details, all pages of 50: the command's invocation on each instance,
        with its plugins' status and output."""
        paginator = self.conn.get_paginator("list_command_invocations")
        rows: list[dict[str, Any]] = []
        for page in paginator.paginate(
            CommandId=command_id, Details=True, PaginationConfig={"PageSize": SSM_INVOCATIONS_PAGE}
        ):
            rows.extend(page["CommandInvocations"])
        return rows


class Ec2BackupHook(CallerFromFrames, AwsBaseHook):
    """EC2 tags and AMI backups."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "ec2"
        super().__init__(*args, **kwargs)

    def instance_tags(self, keys: Sequence[str]) -> dict[str, dict[str, str]]:
        """The given tag keys of every instance in the region, by instance id."""
        tags: dict[str, dict[str, str]] = {}
        paginator = self.conn.get_paginator("describe_tags")
        for page in paginator.paginate(
            Filters=[
                {"Name": "resource-type", "Values": ["instance"]},
                {"Name": "key", "Values": list(keys)},
            ],
            PaginationConfig={"PageSize": EC2_TAGS_PAGE},
        ):
            for tag in page["Tags"]:
                tags.setdefault(tag["ResourceId"], {})[tag["Key"]] = tag["Value"]
        return tags

    def tag_instances(self, instance_ids: Sequence[str], tags: dict[str, str]) -> int:
        """CreateTags: set ``tags`` on the instances, 1,000 ids per call; returns the number of calls made."""
        calls = 0
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        for batch in chunks(list(instance_ids), EC2_CREATE_TAGS_BATCH):
            self.conn.create_tags(Resources=list(batch), Tags=tag_list)
            calls += 1
        return calls

    def create_image(self, instance_id: str, name: str, tags: dict[str, str]) -> str:
        """An AMI of the instance without rebooting it (crash-consistent, no downtime before the patch)."""
        response = self.conn.create_image(
            InstanceId=instance_id,
            Name=name,
            NoReboot=True,
            TagSpecifications=[
                {"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ],
        )
        return response["ImageId"]

    def images_tagged(self, tags: dict[str, str]) -> list[dict[str, Any]]:
        """Our own AMIs carrying all the given tags (the backups of one cycle stage)."""
        paginator = self.conn.get_paginator("describe_images")
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        images: list[dict[str, Any]] = []
        for page in paginator.paginate(
            Owners=["self"], Filters=filters, PaginationConfig={"PageSize": EC2_IMAGES_PAGE}
        ):
            images.extend(page["Images"])
        return images

    def replace_root_volume(
        self, instance_id: str, image_id: str, client_token: str, tags: dict[str, str]
    ) -> dict[str, Any]:
        """Start replacing the instance's root volume with one restored from ``image_id`` (the instance
        reboots onto it); returns the task at once (``pending``). The client token makes a retry return
        the first task; the replaced volume is kept for forensics."""
        response = self.conn.create_replace_root_volume_task(
            InstanceId=instance_id,
            ImageId=image_id,
            DeleteReplacedRootVolume=False,
            ClientToken=client_token,
            TagSpecifications=[
                {
                    "ResourceType": "replace-root-volume-task",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        )
        return response["ReplaceRootVolumeTask"]

    def root_volume_tasks(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Root volume replacement tasks by id (``TaskState`` pending | in-progress | succeeded | failing |
        failed | failed-detached), in batches of the API's maximum page."""
        tasks: dict[str, dict[str, Any]] = {}
        for batch in chunks(list(dict.fromkeys(task_ids)), EC2_ROOT_VOLUME_TASKS_PAGE):
            response = self.conn.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=list(batch))
            for task in response["ReplaceRootVolumeTasks"]:
                tasks[task["ReplaceRootVolumeTaskId"]] = task
        return tasks


class RdsHook(CallerFromFrames, AwsBaseHook):
    """RDS DB instances, the OS updates RDS offers them (pending maintenance actions), DB snapshots, and
    the rename-then-restore that rolls an instance back under its own name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "rds"
        super().__init__(*args, **kwargs)

    def db_instances(self) -> list[dict[str, Any]]:
        """Every DB instance of the region, with its tags (``TagList``) and status."""
        paginator = self.conn.get_paginator("describe_db_instances")
        rows: list[dict[str, Any]] = []
        for page in paginator.paginate(PaginationConfig={"PageSize": RDS_PAGE}):
            rows.extend(page["DBInstances"])
        return rows

    def db_instances_named(self, identifiers: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The DB instances with these identifiers that exist, by identifier (one filtered call)."""
        paginator = self.conn.get_paginator("describe_db_instances")
        found: dict[str, dict[str, Any]] = {}
        for batch in chunks(sorted(set(identifiers)), RDS_PAGE):
            for page in paginator.paginate(
                Filters=[{"Name": "db-instance-id", "Values": list(batch)}],
                PaginationConfig={"PageSize": RDS_PAGE},
            ):
                for db in page["DBInstances"]:
                    found[db["DBInstanceIdentifier"]] = db
        return found

    def pending_os_updates(self) -> dict[str, dict[str, Any]]:
        """The pending ``system-update`` action of every DB instance that has one, by instance ARN."""
        paginator = self.conn.get_paginator("describe_pending_maintenance_actions")
        found: dict[str, dict[str, Any]] = {}
        for page in paginator.paginate(PaginationConfig={"PageSize": RDS_PAGE}):
            for resource in page["PendingMaintenanceActions"]:
                for detail in resource.get("PendingMaintenanceActionDetails", []):
                    if detail.get("Action") == RDS_OS_UPDATE:
                        found[resource["ResourceIdentifier"]] = detail
        return found

    def apply_os_update(self, arn: str) -> dict[str, Any]:
        """Opt the instance in to its pending OS update now (RDS restarts it to apply the update)."""
        response = self.conn.apply_pending_maintenance_action(
            ResourceIdentifier=arn, ApplyAction=RDS_OS_UPDATE, OptInType="immediate"
        )
        return response["ResourcePendingMaintenanceActions"]

    def create_db_snapshot(
        self, db_instance_id: str, snapshot_id: str, tags: dict[str, str]
    ) -> dict[str, Any]:
        """CreateDBSnapshot of the instance, tagged; returns the DBSnapshot at once (not waiting for it to be
        available)."""
        response = self.conn.create_db_snapshot(
            DBSnapshotIdentifier=snapshot_id,
            DBInstanceIdentifier=db_instance_id,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        return response["DBSnapshot"]

    def snapshots_named(self, snapshot_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The DB snapshots with these identifiers that exist, by identifier (100 names per call)."""
        found: dict[str, dict[str, Any]] = {}
        paginator = self.conn.get_paginator("describe_db_snapshots")
        for batch in chunks(sorted(set(snapshot_ids)), RDS_PAGE):
            for page in paginator.paginate(
                Filters=[{"Name": "db-snapshot-id", "Values": list(batch)}],
                PaginationConfig={"PageSize": RDS_PAGE},
            ):
                for snapshot in page["DBSnapshots"]:
                    found[snapshot["DBSnapshotIdentifier"]] = snapshot
        return found

    def rename_db_instance(self, db_instance_id: str, new_id: str) -> dict[str, Any]:
        """Rename an instance now (its endpoint follows the new name): frees the name for a restore."""
        response = self.conn.modify_db_instance(
            DBInstanceIdentifier=db_instance_id, NewDBInstanceIdentifier=new_id, ApplyImmediately=True
        )
        return response["DBInstance"]

    def restore_from_snapshot(
        self, db_instance_id: str, snapshot_id: str, like: dict[str, Any], tags: dict[str, str]
    ) -> dict[str, Any]:
        """A new instance called ``db_instance_id`` from the snapshot, shaped like ``like`` (the instance
        it replaces: class, subnet group, security groups, Multi-AZ) and tagged as it was."""
        kwargs: dict[str, Any] = {
            "DBInstanceIdentifier": db_instance_id,
            "DBSnapshotIdentifier": snapshot_id,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if like.get("DBInstanceClass"):
            kwargs["DBInstanceClass"] = like["DBInstanceClass"]
        if like.get("MultiAZ") is not None:
            kwargs["MultiAZ"] = bool(like["MultiAZ"])
        subnet_group = (like.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
        if subnet_group:
            kwargs["DBSubnetGroupName"] = subnet_group
        groups = [
            g["VpcSecurityGroupId"]
            for g in like.get("VpcSecurityGroups") or []
            if g.get("VpcSecurityGroupId")
        ]
        if groups:
            kwargs["VpcSecurityGroupIds"] = groups
        return self.conn.restore_db_instance_from_db_snapshot(**kwargs)["DBInstance"]


class IdentityCenterHook(CallerFromFrames, AwsBaseHook):
    """IAM Identity Center (SSO Admin) and its identity store: who can assume what in which account."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "sso-admin"
        super().__init__(*args, **kwargs)

    def _pages(self, client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every page of a list call (NextToken), whether or not botocore ships a paginator for it."""
        rows: list[dict[str, Any]] = []
        call = getattr(client, operation)
        token: str | None = None
        while True:
            page = call(**kwargs, **({"NextToken": token} if token else {}))
            rows.extend(page.get(key, []))
            token = page.get("NextToken")
            if not token:
                return rows

    def instance(self) -> dict[str, Any]:
        """ListInstances: the first Identity Center instance (``InstanceArn``, ``IdentityStoreId``, ...)."""
        return self.conn.list_instances()["Instances"][0]

    def permission_sets_in_account(self, instance_arn: str, account_id: str) -> list[str]:
        """ListPermissionSetsProvisionedToAccount, all pages: the ARNs of the permission sets provisioned to
        the account."""
        return self._pages(
            self.conn,
            "list_permission_sets_provisioned_to_account",
            "PermissionSets",
            InstanceArn=instance_arn,
            AccountId=account_id,
        )

    def permission_set(self, instance_arn: str, arn: str) -> dict[str, Any]:
        """DescribePermissionSet and ListManagedPoliciesInPermissionSet (all pages): the permission set, with
        ``ManagedPolicies``, the ARNs of its AWS managed policies."""
        described = self.conn.describe_permission_set(InstanceArn=instance_arn, PermissionSetArn=arn)
        policies = self._pages(
            self.conn,
            "list_managed_policies_in_permission_set",
            "AttachedManagedPolicies",
            InstanceArn=instance_arn,
            PermissionSetArn=arn,
        )
        return {**described["PermissionSet"], "ManagedPolicies": [p["Arn"] for p in policies]}

    def assignments(
        self, instance_arn: str, account_id: str, permission_set_arn: str
    ) -> list[dict[str, Any]]:
        """ListAccountAssignments, all pages: the principals (users or groups) assigned the permission set in
        the account."""
        return self._pages(
            self.conn,
            "list_account_assignments",
            "AccountAssignments",
            InstanceArn=instance_arn,
            AccountId=account_id,
            PermissionSetArn=permission_set_arn,
        )

    @cached_property
    def identity_store(self) -> Any:
        """The identity store client, through the same connection and region."""
        return AwsBaseHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, client_type="identitystore"
        ).conn

    def users(self, identity_store_id: str) -> list[dict[str, Any]]:
        """ListUsers, all pages: every user of the identity store."""
        store = self.identity_store
        return self._pages(store, "list_users", "Users", IdentityStoreId=identity_store_id)

    def groups(self, identity_store_id: str) -> list[dict[str, Any]]:
        """ListGroups, all pages: every group of the identity store."""
        store = self.identity_store
        return self._pages(store, "list_groups", "Groups", IdentityStoreId=identity_store_id)

    def group_members(self, identity_store_id: str, group_id: str) -> list[str]:
        """ListGroupMemberships, all pages: the user ids of the group's members (non-user members skipped)."""
        store = self.identity_store
        rows = self._pages(
            store,
            "list_group_memberships",
            "GroupMemberships",
            IdentityStoreId=identity_store_id,
            GroupId=group_id,
        )
        return [r["MemberId"]["UserId"] for r in rows if "UserId" in r.get("MemberId", {})]
