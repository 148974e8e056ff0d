"""IAM Identity Center (sso-admin) permission-set provisioning as AWS documents it, over moto's.

moto's ``ProvisionPermissionSet`` ignores ``TargetId`` and appends the set to the instance on every call,
and its ``ListPermissionSetsProvisionedToAccount`` ignores ``AccountId`` and returns that list,
duplicates included: an access review read through it lists each grant once per provisioning and shows
every account the sets of all the others.

AWS (IAM Identity Center API Reference):

- ProvisionPermissionSet: "The process by which a specified permission set is provisioned to the
  specified target." ``TargetType`` AWS_ACCOUNT provisions to ``TargetId`` (an account id);
  ALL_PROVISIONED_ACCOUNTS re-provisions every account the set is already provisioned to.
- ListPermissionSetsProvisionedToAccount: "Lists all the permission sets that are provisioned to a
  specified AWS account." ``AccountId`` is required; ``MaxResults`` 1..100; ``NextToken``. A set is
  provisioned to an account or not, so each is listed once (no document says it may repeat).

Provisioning is recorded per (moto account, instance, target account) here, and listed from that.
"""

from __future__ import annotations

import json

from moto.ssoadmin.responses import SSOAdminResponse

from fleetsim.fleet import FleetState

_PROVISIONED: dict[tuple[str, str, str], list[str]] = {}
"""(caller's account, instance ARN, target account) -> permission set ARNs, in provisioning order."""

_original_provision = SSOAdminResponse.provision_permission_set


def _provision_permission_set(self: SSOAdminResponse) -> str:
    answer = _original_provision(self)  # validates the instance and the set, answers as AWS does
    instance = self._get_param("InstanceArn")
    permission_set = self._get_param("PermissionSetArn")
    if self._get_param("TargetType") == "AWS_ACCOUNT":
        targets = [self._get_param("TargetId")]
    else:  # ALL_PROVISIONED_ACCOUNTS
        targets = [
            account
            for (caller, arn, account), sets in _PROVISIONED.items()
            if (caller, arn) == (self.current_account, instance) and permission_set in sets
        ]
    for account in targets:
        sets = _PROVISIONED.setdefault((self.current_account, instance, account), [])
        if permission_set not in sets:
            sets.append(permission_set)
    return answer


def _list_permission_sets_provisioned_to_account(self: SSOAdminResponse) -> str:
    instance = self._get_param("InstanceArn")
    account = self._get_param("AccountId")
    sets = _PROVISIONED.get((self.current_account, instance, account), [])
    size = int(self._get_param("MaxResults") or 100)
    start = int(self._get_param("NextToken") or 0)
    body: dict[str, object] = {"PermissionSets": sets[start : start + size]}
    if start + size < len(sets):
        body["NextToken"] = str(start + size)
    return json.dumps(body)


def install(state: FleetState) -> None:
    """Serve permission-set provisioning per account over moto's sso-admin (``state`` unused: the
    provisioning is the cloud's own, not the fleet's)."""
    del state
    _PROVISIONED.clear()
    SSOAdminResponse.provision_permission_set = _provision_permission_set  # type: ignore[method-assign]
    SSOAdminResponse.list_permission_sets_provisioned_to_account = (  # type: ignore[method-assign]
        _list_permission_sets_provisioned_to_account
    )
