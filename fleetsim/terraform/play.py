"""What a scenario's ``terraform`` section and its tenants' ``drift`` make happen when fleetsim starts.

1. The platform's state bucket (the backends' ``bucket``, in the platform's account): versioned,
   encrypted, public access blocked, as the S3 backend's documentation asks of it
   (https://developer.hashicorp.com/terraform/language/backend/s3: "enabling Bucket Versioning on the S3
   bucket to allow for state recovery").
2. Each listed tenant's root applied (:mod:`.apply`), one after the other, by the Terraform role,
   ``applied_days_ago`` before fleetsim started; its state file written to its backend key.
3. Each tenant's console edits (:mod:`.console`), ``hours_ago`` before fleetsim started, by the person
   each names, in the order of their times.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fleetsim.scenario import ConsoleEdit, ConsolePerson, Scenario, TenantFleet
from fleetsim.terraform import actors, console
from fleetsim.terraform.actors import Actor, CallClock, Credentials
from fleetsim.terraform.apply import AppliedRoot, ApplyContext, apply_root
from fleetsim.terraform.root import RootError, TenantRoot, read_root

REPO = Path(__file__).resolve().parents[2]


def roots_dir(scenario: Scenario) -> Path:
    assert scenario.terraform is not None
    path = Path(scenario.terraform.roots)
    return path if path.is_absolute() else REPO / path


def _check_scope(root: TenantRoot, tenant: TenantFleet) -> None:
    aws = tenant.aws
    assert aws is not None
    if (root.account_id, root.region) != (aws.account_id, aws.region):
        raise RootError(
            f"{root.directory}: the root manages {root.account_id}/{root.region}, but the scenario's "
            f"{tenant.id} runs in {aws.account_id}/{aws.region}"
        )


def _state_buckets(platform: Actor, roots: list[TenantRoot]) -> None:
    for bucket, region in sorted({(r.backend.bucket, r.backend.region) for r in roots}):
        s3 = platform.client("s3", region)
        if bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            continue
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **where)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )


def apply_terraform(scenario: Scenario, endpoint: str, started: dt.datetime) -> dict[str, AppliedRoot]:
    """Apply the scenario's tenant roots (none without a ``terraform`` section); returns them by tenant."""
    tf = scenario.terraform
    if tf is None:
        return {}
    tenants = {t.id: t for t in scenario.tenants}
    roots = [read_root(roots_dir(scenario) / tenant_id) for tenant_id in tf.tenants]
    for root, tenant_id in zip(roots, tf.tenants, strict=True):
        if root.tenant != tenant_id:
            raise RootError(f"{root.directory}: tenant_id is {root.tenant!r}, not {tenant_id!r}")
        _check_scope(root, tenants[tenant_id])
    platform_account = scenario.evidence.account_id
    user_agent = (
        f"APN/1.0 HashiCorp/1.0 Terraform/{tf.terraform_version} (+https://www.terraform.io) "
        f"terraform-provider-aws/{tf.provider_version} (+https://registry.terraform.io/providers/hashicorp/aws)"
    )
    clock = CallClock(started - dt.timedelta(days=tf.applied_days_ago))

    def terraform_in(account: str, region: str) -> Actor:
        credentials = actors.assumed_role(account, tf.role_name, tf.session_name, region=region)
        return Actor(endpoint, credentials, user_agent=user_agent, source_ip=tf.source_ip, clock=clock)

    platform = terraform_in(platform_account, scenario.evidence.region)
    _state_buckets(platform, roots)
    applied: dict[str, AppliedRoot] = {}
    for root in roots:
        ctx = ApplyContext(
            root=root,
            tenant=terraform_in(root.account_id, root.region),
            platform=platform,
            platform_account=platform_account,
            applied_at=clock.at,
        )
        applied[root.tenant] = apply_root(ctx, tf.terraform_version)
    return applied


def make_console_edits(
    scenario: Scenario, endpoint: str, started: dt.datetime, applied: dict[str, AppliedRoot]
) -> None:
    """Every tenant's console edits, oldest first, each by its person."""
    if scenario.terraform is None:
        return
    credentials: dict[tuple[str, str], Credentials] = {}
    edits: list[tuple[float, TenantFleet, ConsoleEdit]] = [
        (-edit.hours_ago, tenant, edit) for tenant in scenario.tenants for edit in tenant.drift
    ]
    for _, tenant, edit in sorted(edits, key=lambda e: e[0]):
        root = read_root(roots_dir(scenario) / tenant.id)
        account = scenario.evidence.account_id if console.in_platform_account(edit) else root.account_id
        region = console.region_of(edit, root)
        key = (account, _person_key(edit.by))
        if key not in credentials:
            credentials[key] = _credentials(edit.by, account, region, scenario.evidence.region)
        person = Actor(
            endpoint,
            credentials[key],
            user_agent=actors.CONSOLE_USER_AGENT,
            source_ip=edit.by.source_ip,
            clock=CallClock(started - dt.timedelta(hours=edit.hours_ago)),
        )
        console.make(edit, applied[tenant.id], root, person)


def _person_key(person: ConsolePerson) -> str:
    return f"user:{person.iam_user}" if person.iam_user else f"sso:{person.permission_set}:{person.sso_user}"


def _credentials(
    person: ConsolePerson, account: str, region: str, identity_center_region: str
) -> Credentials:
    if person.iam_user:
        return actors.iam_user(account, person.iam_user)
    assert person.sso_user and person.permission_set
    return actors.sso_session(
        account,
        person.permission_set,
        person.sso_user,
        identity_center_region=identity_center_region,
        region=region,
    )
