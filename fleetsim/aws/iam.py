"""IAM as an account has it before anyone calls it: the AWS managed policies.

"AWS managed policies are created and administered by AWS" and are attachable in every account (IAM
User Guide, "AWS managed policies",
https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_managed-vs-inline.html#aws-managed-policies).
moto loads none of them unless told to load all (``MOTO_IAM_LOAD_MANAGED_POLICIES``, slow and large), so
fleetsim adds the ones its scenarios attach, from moto's own copy of AWS's documents.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import AWSManagedPolicy, iam_backends


@cache
def _documents() -> dict[str, Any]:
    return json.loads(aws_managed_policies_data)


def ensure_aws_managed_policy(account_id: str, name: str, region: str = "us-east-1") -> str:
    """Make AWS's managed policy ``name`` attachable in ``account_id``; returns its ARN."""
    backend = iam_backends[account_id]["aws"]
    policy = AWSManagedPolicy.from_data(name, account_id, region, _documents()[name])
    backend.managed_policies.setdefault(policy.arn, policy)
    return policy.arn
