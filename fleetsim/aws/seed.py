"""Build the scenario's AWS state: EC2 instances and RDS DB instances in each tenant's account, the fleet
registry, buckets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from moto.ec2.models import ec2_backends
from moto.rds.models import rds_backends

from fleetsim.aws import rds as rds_addon
from fleetsim.fleet import FleetState, SimHost
from fleetsim.scenario import (
    DATABASE_OS_FAMILY,
    AwsFleet,
    DatabaseGroup,
    Faults,
    Scenario,
    TenantFleet,
    group_host_names,
)

# Base images named by family, so EC2 reports a plausible platform; moto accepts unknown AMI ids.
_BASE_IMAGE = "ami-0fleetsim0000000"


def _run_instance_kwargs(region: str, tags: dict[str, str]) -> dict[str, Any]:
    """The keyword arguments moto's RunInstances handler builds for its backend."""
    return {
        "instance_type": "m6i.large",
        "is_instance_type_default": False,
        "placement": None,
        "placement_hostid": None,
        "region_name": region,
        "subnet_id": None,
        "key_name": None,
        "security_group_ids": [],
        "nics": [],
        "private_ip": None,
        "associate_public_ip": None,
        "tags": {"instance": tags},
        "ebs_optimized": False,
        "disable_api_stop": False,
        "instance_market_options": {},
        "instance_initiated_shutdown_behavior": None,
        "launch_template": {},
        "hibernation_options": {},
        "iam_instance_profile_name": None,
        "iam_instance_profile_arn": None,
        "monitoring_state": "disabled",
        "ipv6_address_count": None,
        "metadata_options": {},
        "client_token": "fleetsim",
    }


def seed_aws(state: FleetState, scenario: Scenario) -> None:
    """Create every tenant's EC2 fleet in its own account and register the hosts with SSM."""
    last_scan = scenario.last_scan
    for tenant in scenario.tenants:
        if tenant.aws is None:
            continue
        aws = tenant.aws
        backend = ec2_backends[aws.account_id][aws.region]
        faults = tenant.faults
        for group in aws.groups:
            shared = {
                "Environment": group.environment,
                "Criticality": group.criticality,
                "Tenant": tenant.id,
                "OsFamily": group.os_family,
            }
            reservation = backend.run_instances(
                _BASE_IMAGE, group.count, None, [], **_run_instance_kwargs(aws.region, shared)
            )
            width = max(2, len(str(group.count)))
            for index, instance in enumerate(reservation.instances, start=1):
                name = f"{group.prefix}-{index:0{width}d}"
                backend.tags[instance.id]["Name"] = name
                family = state.catalog_by_family.get(group.os_family, [])
                host = SimHost(
                    tenant=tenant.id,
                    cloud="aws",
                    account=aws.account_id,
                    region=aws.region,
                    host_id=instance.id,
                    name=name,
                    environment=group.environment,
                    os_family=group.os_family,
                    criticality=group.criticality,
                    kernel=group.kernel,
                    agent_status="ConnectionLost" if name in faults.agent_offline else "Online",
                    missing={p.id for p in family if p.released > group.installed_until},
                    installed={p.id for p in family if p.released <= group.installed_until},
                    install_fails=name in faults.install_fails,
                    install_leaves_missing=name in faults.install_leaves_missing,
                    hangs_on_reboot=name in faults.hung_reboot,
                    backup_fails=name in faults.backup_fails,
                    backup_seconds=faults.backup_slow_seconds.get(name),
                )
                state.record_scan(host, last_scan, operation="Scan")
                state.add_host(host)
        for database in aws.databases:
            _seed_databases(state, scenario, tenant, aws, database)


def _seed_databases(
    state: FleetState, scenario: Scenario, tenant: TenantFleet, aws: AwsFleet, group: DatabaseGroup
) -> None:
    """Create a database group's RDS DB instances in moto's RDS backend and register them as hosts.

    Called on the backend directly, with the keyword arguments RDS's CreateDBInstance handler passes it.
    A stopped instance (``agent_offline``) is ``stopped`` in RDS as well.
    """
    backend = rds_backends[aws.account_id][aws.region]
    faults: Faults = tenant.faults
    description = scenario.rds_os_update if group.os_update == "default" else group.os_update
    for name in group_host_names(group):
        tags = {
            "Name": name,
            "Environment": group.environment,
            "Criticality": group.criticality,
            "Tenant": tenant.id,
        }
        db = backend.create_db_instance(
            {
                "db_instance_identifier": name,
                "db_instance_class": group.instance_class,
                "engine": group.engine,
                "engine_version": group.engine_version,
                "allocated_storage": 100,
                "storage_type": "gp3",
                "master_username": "fleetsim",
                "master_user_password": "fleetsim-not-a-secret",
                "tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }
        )
        offline = name in faults.agent_offline
        if offline:
            db.status = "stopped"
        host = SimHost(
            tenant=tenant.id,
            cloud="aws",
            account=aws.account_id,
            region=aws.region,
            host_id=db.db_instance_arn,
            name=name,
            environment=group.environment,
            os_family=DATABASE_OS_FAMILY,
            criticality=group.criticality,
            kernel=None,
            agent_status="stopped" if offline else "available",
            missing={description} if description else set(),
            installed=set(),
            install_fails=name in faults.install_fails,
            backup_fails=name in faults.backup_fails,
            backup_seconds=faults.backup_slow_seconds.get(name),
            kind="db_instance",
        )
        state.add_host(host)
        rds_addon.register(state, host, description)


def seed_evidence_buckets(scenario: Scenario, endpoint_url: str) -> None:
    """The platform account's evidence buckets: versioned, Object Lock in compliance mode, KMS-encrypted.

    Done through boto3 against our own endpoint, the stable path, since bucket settings have many shapes.
    """
    import boto3

    ev = scenario.evidence
    sts = boto3.client(
        "sts",
        endpoint_url=endpoint_url,
        region_name=ev.region,
        aws_access_key_id="fleetsim",
        aws_secret_access_key="fleetsim",
    )
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{ev.account_id}:role/fleetsim-seed", RoleSessionName="fleetsim-seed"
    )["Credentials"]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=ev.region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    for name in ev.buckets:
        # Outside us-east-1, S3 requires the bucket's region as its location constraint.
        where = {}
        if ev.region != "us-east-1":
            where["CreateBucketConfiguration"] = {"LocationConstraint": ev.region}
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True, **where)
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": ev.object_lock_days}},
            },
        )
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )


def seeded_at() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def seed_identity(scenario: Scenario, endpoint_url: str) -> None:
    """IAM Identity Center in the platform account: users, groups, permission sets and assignments."""
    import boto3

    seed = scenario.identity
    if not (seed.users or seed.groups or seed.permission_sets):
        return
    ev = scenario.evidence
    sts = boto3.client(
        "sts",
        endpoint_url=endpoint_url,
        region_name=ev.region,
        aws_access_key_id="fleetsim",
        aws_secret_access_key="fleetsim",
    )
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{ev.account_id}:role/fleetsim-seed", RoleSessionName="fleetsim-seed"
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=ev.region,
    )
    sso = session.client("sso-admin", endpoint_url=endpoint_url)
    store = session.client("identitystore", endpoint_url=endpoint_url)
    instance = sso.list_instances()["Instances"][0]
    instance_arn, store_id = instance["InstanceArn"], instance["IdentityStoreId"]
    user_ids: dict[str, str] = {}
    for user in seed.users:
        given, _, family = user.display_name.partition(" ")
        user_ids[user.user_name] = store.create_user(
            IdentityStoreId=store_id,
            UserName=user.user_name,
            DisplayName=user.display_name,
            Name={"GivenName": given, "FamilyName": family or given},
            Emails=[{"Value": user.email, "Type": "work", "Primary": True}],
        )["UserId"]
    group_ids: dict[str, str] = {}
    for group in seed.groups:
        group_id = store.create_group(IdentityStoreId=store_id, DisplayName=group.name)["GroupId"]
        group_ids[group.name] = group_id
        for member in group.members:
            store.create_group_membership(
                IdentityStoreId=store_id, GroupId=group_id, MemberId={"UserId": user_ids[member]}
            )
    set_arns: dict[str, str] = {}
    for ps in seed.permission_sets:
        arn = sso.create_permission_set(
            InstanceArn=instance_arn,
            Name=ps.name,
            Description=ps.description or ps.name,
            SessionDuration=ps.session_duration,
        )["PermissionSet"]["PermissionSetArn"]
        set_arns[ps.name] = arn
        for policy in ps.managed_policies:
            sso.attach_managed_policy_to_permission_set(
                InstanceArn=instance_arn, PermissionSetArn=arn, ManagedPolicyArn=policy
            )
    for assignment in seed.assignments:
        principal = (
            ("GROUP", group_ids[assignment.group])
            if assignment.group
            else ("USER", user_ids[assignment.user or ""])
        )
        for account in assignment.accounts:
            sso.create_account_assignment(
                InstanceArn=instance_arn,
                TargetId=account,
                TargetType="AWS_ACCOUNT",
                PermissionSetArn=set_arns[assignment.permission_set],
                PrincipalType=principal[0],
                PrincipalId=principal[1],
            )
            # As in AWS, a permission set takes effect in an account once provisioned there.
            sso.provision_permission_set(
                InstanceArn=instance_arn,
                PermissionSetArn=set_arns[assignment.permission_set],
                TargetType="AWS_ACCOUNT",
                TargetId=account,
            )
