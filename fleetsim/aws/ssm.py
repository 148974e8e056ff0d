"""SSM actions moto lacks or gets wrong, installed onto moto's SSM response class.

moto dispatches each request to ``SimpleSystemManagerResponse.<snake_case_action>`` and serialises the
returned ``ActionResult`` with botocore's own output shape, so the wire format is the real one. The
fleet behind these actions is fleetsim's :class:`~fleetsim.fleet.FleetState`.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any
from urllib.parse import urlparse

import yaml
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.s3.models import s3_backends
from moto.ssm.models import ssm_backends
from moto.ssm.responses import SimpleSystemManagerResponse

from fleetsim import fleet as fleet_module
from fleetsim.fleet import Command, FleetState, SimHost

PATCH_DOCUMENT = "AWS-RunPatchBaseline"
# SendCommand's documented patterns for the rate controls.
MAX_CONCURRENCY_PATTERN = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
MAX_ERRORS_PATTERN = re.compile(r"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$")
# fleetsim tells delivery and execution timeouts apart internally; on the wire both are Status
# TimedOut, told apart by StatusDetails, as SSM reports them.
WIRE_STATUS = {
    "DeliveryTimedOut": ("TimedOut", "Delivery Timed Out"),
    "TimedOut": ("TimedOut", "Execution Timed Out"),
}


def wire_status(status: str) -> tuple[str, str]:
    """(Status, StatusDetails) of an invocation as SSM's API reports them."""
    return WIRE_STATUS.get(status, (status, status))


class InvalidInstanceId(ServiceException):
    code = "InvalidInstanceId"


class InvalidDocument(ServiceException):
    code = "InvalidDocument"


class InvalidCommandId(ServiceException):
    code = "InvalidCommandId"


class InvocationDoesNotExist(ServiceException):
    code = "InvocationDoesNotExist"


class InvalidFilterKey(ServiceException):
    code = "InvalidFilterKey"


class InvalidNextToken(ServiceException):
    code = "InvalidNextToken"


class ValidationException(ServiceException):
    code = "ValidationException"


class DoesNotExistException(ServiceException):
    code = "DoesNotExistException"


_STATE: dict[str, FleetState] = {}


def install(state: FleetState) -> None:
    """Make ``state`` the fleet behind moto's SSM and add the missing actions."""
    _STATE["fleet"] = state
    for name in (
        "describe_instance_information",
        "send_command",
        "list_commands",
        "list_command_invocations",
        "get_command_invocation",
        "describe_instance_patch_states",
        "describe_instance_patches",
        "describe_available_patches",
        "get_patch_baseline",
    ):
        setattr(SimpleSystemManagerResponse, name, globals()[f"_{name}"])


def _fleet() -> FleetState:
    return _STATE["fleet"]


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _page(items: list[Any], token: str | None, max_results: int | None, default: int, limit: int) -> tuple:
    size = default if max_results is None else int(max_results)
    if size < 1 or size > limit:
        raise ValidationException(f"MaxResults must be between 1 and {limit}, got {size}")
    try:
        start = int(token) if token else 0
    except ValueError as exc:
        raise InvalidNextToken("The specified token is not valid") from exc
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _with_token(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token:
        result["NextToken"] = token
    return result


# -- managed instances --------------------------------------------------------------------------
def _instance_information(host: SimHost, now: float) -> dict[str, Any]:
    p = host.platform
    last_ping = _ts(now - 30) if host.agent_status == "Online" else _ts(now - 6 * 3600)
    return {
        "InstanceId": host.host_id,
        "PingStatus": host.agent_status,
        "LastPingDateTime": last_ping,
        "AgentVersion": "3.3.1142.0",
        "IsLatestVersion": False,
        "PlatformType": p.platform_type,
        "PlatformName": p.platform_name,
        "PlatformVersion": p.platform_version,
        "ResourceType": "EC2Instance",
        "IPAddress": "10.0.0.1",
        "ComputerName": f"{host.name}.internal",
        "SourceId": host.host_id,
        "SourceType": "AWS::EC2::Instance",
    }


def _describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    now = state.advance()
    filters = list(self._get_param("Filters") or []) + [
        {"Key": f["key"], "Values": f.get("valueSet", [])}
        for f in self._get_param("InstanceInformationFilterList") or []
    ]
    hosts = sorted(state.hosts_in(self.current_account, self.region), key=lambda h: h.host_id)
    for f in filters:
        key, values = f["Key"], set(f.get("Values", []))
        if key == "InstanceIds":
            hosts = [h for h in hosts if h.host_id in values]
        elif key == "PingStatus":
            hosts = [h for h in hosts if h.agent_status in values]
        elif key == "PlatformTypes":
            hosts = [h for h in hosts if h.platform.platform_type in values]
        elif key == "ResourceType":
            hosts = [h for h in hosts if "EC2Instance" in values]
        else:
            raise InvalidFilterKey(f"fleetsim does not emulate the filter key {key!r}")
    page, token = _page(hosts, self._get_param("NextToken"), self._get_param("MaxResults"), 50, 50)
    return ActionResult(
        _with_token({"InstanceInformationList": [_instance_information(h, now) for h in page]}, token)
    )


# -- Run Command --------------------------------------------------------------------------------
def _resolve_targets(self: SimpleSystemManagerResponse, state: FleetState) -> list[SimHost]:
    account, region = self.current_account, self.region
    instance_ids = self._get_param("InstanceIds") or []
    targets = self._get_param("Targets") or []
    if bool(instance_ids) == bool(targets):
        raise ValidationException("Specify exactly one of InstanceIds or Targets")
    if len(instance_ids) > 50:
        raise ValidationException("InstanceIds can hold at most 50 items")
    if instance_ids:
        hosts = []
        for instance_id in instance_ids:
            host = state.host(account, region, instance_id)
            if host is None:
                raise InvalidInstanceId(
                    f"Instances [[{instance_id}]] not in a valid state for account {account}"
                )
            hosts.append(host)
        return hosts
    tags = ec2_backends[account][region].tags
    selected = state.hosts_in(account, region)
    for target in targets:
        key, values = target["Key"], set(target.get("Values", []))
        if key == "InstanceIds":
            selected = [h for h in selected if h.host_id in values]
        elif key.startswith("tag:"):
            tag = key[4:]
            selected = [h for h in selected if tags.get(h.host_id, {}).get(tag) in values]
        elif key == "tag-key":
            selected = [h for h in selected if values & set(tags.get(h.host_id, {}))]
        else:
            raise ValidationException(f"fleetsim does not emulate the target key {key!r}")
    return sorted(selected, key=lambda h: h.host_id)


def _read_override_list(url: str) -> frozenset[str]:
    """Read an InstallOverrideList (YAML ``patches: [{id, title}]``) from the emulated S3."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
    else:  # path-style https://s3.<region>.amazonaws.com/<bucket>/<key>
        bucket, _, key = parsed.path.lstrip("/").partition("/")
    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is None:
        raise ValidationException(f"InstallOverrideList bucket {bucket!r} does not exist")
    partition, account = owner
    obj = s3_backends[account][partition].get_object(bucket, key)
    if obj is None:
        raise ValidationException(f"InstallOverrideList object s3://{bucket}/{key} does not exist")
    doc = yaml.safe_load(obj.value) or {}
    return frozenset(str(p["id"]) for p in doc.get("patches", []))


def _command_object(command: Command, now: float) -> dict[str, Any]:
    status, counts = command.status_at(now)
    completed = sum(counts[s] for s in fleet_module.TERMINAL_INVOCATION_STATES)
    errors = sum(counts[s] for s in fleet_module.ERROR_INVOCATION_STATES)
    return {
        "CommandId": command.command_id,
        "DocumentName": command.document_name,
        "DocumentVersion": "$DEFAULT",
        "Comment": command.comment,
        "ExpiresAfter": _ts(command.requested_at + command.timeout_seconds),
        "Parameters": command.parameters,
        "InstanceIds": command.instance_ids,
        "Targets": command.targets,
        "RequestedDateTime": _ts(command.requested_at),
        "Status": status,
        "StatusDetails": status,
        "MaxConcurrency": command.max_concurrency,
        "MaxErrors": command.max_errors,
        "TargetCount": len(command.invocations),
        "CompletedCount": completed,
        "ErrorCount": errors,
        "DeliveryTimedOutCount": counts["DeliveryTimedOut"],
        "TimeoutSeconds": command.timeout_seconds,
    }


def _send_command(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    now = state.advance()
    document = self._get_param("DocumentName")
    if document != PATCH_DOCUMENT:
        try:
            ssm_backends[self.current_account][self.region].get_document(document, None, None, "JSON")
        except Exception as exc:
            raise InvalidDocument(f"Document {document} does not exist") from exc
    parameters = self._get_param("Parameters") or {}
    operation = (parameters.get("Operation") or ["Scan"])[0]
    if document == PATCH_DOCUMENT and operation not in ("Scan", "Install"):
        raise ValidationException(f"Operation must be Scan or Install, got {operation!r}")
    max_concurrency = self._get_param("MaxConcurrency") or "50"
    max_errors = self._get_param("MaxErrors") or "0"
    if not MAX_CONCURRENCY_PATTERN.match(max_concurrency):
        raise ValidationException(f"MaxConcurrency {max_concurrency!r} is not a valid value")
    if not MAX_ERRORS_PATTERN.match(max_errors):
        raise ValidationException(f"MaxErrors {max_errors!r} is not a valid value")
    with state.lock:
        hosts = _resolve_targets(self, state)
        override_url = (parameters.get("InstallOverrideList") or [""])[0]
        override = _read_override_list(override_url) if override_url else None
        command = Command(
            command_id=str(uuid.uuid4()),
            account=self.current_account,
            region=self.region,
            document_name=document,
            parameters=parameters,
            comment=self._get_param("Comment") or "",
            targets=self._get_param("Targets") or [],
            instance_ids=[h.host_id for h in hosts],
            max_concurrency=max_concurrency,
            max_errors=max_errors,
            requested_at=now,
            timeout_seconds=int(self._get_param("TimeoutSeconds") or 3600),
            invocations={},
            override_patch_ids=override,
        )
        state.schedule_command(command, hosts)
        return ActionResult({"Command": _command_object(command, now)})


def _get_command(state: FleetState, command_id: str | None, account: str, region: str) -> Command:
    command = state.commands.get(command_id or "")
    if command is None or (command.account, command.region) != (account, region):
        raise InvalidCommandId(f"Command {command_id} does not exist")
    return command


def _list_commands(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    now = state.advance()
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    with state.lock:
        if command_id:
            commands = [_get_command(state, command_id, self.current_account, self.region)]
        else:
            commands = [
                c
                for c in state.commands.values()
                if c.account == self.current_account
                and c.region == self.region
                and (instance_id is None or instance_id in c.invocations)
            ]
        commands.sort(key=lambda c: c.requested_at, reverse=True)
        page, token = _page(commands, self._get_param("NextToken"), self._get_param("MaxResults"), 50, 50)
        return ActionResult(_with_token({"Commands": [_command_object(c, now) for c in page]}, token))


def _invocation_object(command: Command, inv: Any, now: float, details: bool) -> dict[str, Any]:
    internal = inv.status_at(now)
    status, status_details = wire_status(internal)
    entry: dict[str, Any] = {
        "CommandId": command.command_id,
        "InstanceId": inv.instance_id,
        "InstanceName": f"{inv.host_name}.internal",
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": "$DEFAULT",
        "RequestedDateTime": _ts(command.requested_at),
        "Status": status,
        "StatusDetails": status_details,
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
    }
    if details:
        plugin: dict[str, Any] = {
            "Name": inv.plugin_name,
            "Status": status,
            "StatusDetails": entry["StatusDetails"],
        }
        if internal in fleet_module.TERMINAL_INVOCATION_STATES:
            plugin.update(
                ResponseCode=inv.response_code,
                ResponseStartDateTime=_ts(inv.started_at),
                ResponseFinishDateTime=_ts(inv.ended_at),
                Output=inv.output,
            )
        entry["CommandPlugins"] = [plugin]
    return entry


def _list_command_invocations(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    now = state.advance()
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    details = bool(self._get_param("Details"))
    with state.lock:
        if command_id:
            commands = [_get_command(state, command_id, self.current_account, self.region)]
        else:
            here = (self.current_account, self.region)
            commands = [c for c in state.commands.values() if (c.account, c.region) == here]
        rows = [
            (c, inv)
            for c in commands
            for inv in sorted(c.invocations.values(), key=lambda i: i.instance_id)
            if instance_id is None or inv.instance_id == instance_id
        ]
        page, token = _page(rows, self._get_param("NextToken"), self._get_param("MaxResults"), 50, 50)
        return ActionResult(
            _with_token(
                {"CommandInvocations": [_invocation_object(c, inv, now, details) for c, inv in page]}, token
            )
        )


def _get_command_invocation(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    now = state.advance()
    with state.lock:
        command = _get_command(state, self._get_param("CommandId"), self.current_account, self.region)
        inv = command.invocations.get(self._get_param("InstanceId") or "")
        plugin = self._get_param("PluginName")
        if inv is None or (plugin and plugin != inv.plugin_name):
            raise InvocationDoesNotExist("An error occurred (InvocationDoesNotExist)")
        internal = inv.status_at(now)
        terminal = internal in fleet_module.TERMINAL_INVOCATION_STATES
        status, status_details = wire_status(internal)
        return ActionResult(
            {
                "CommandId": command.command_id,
                "InstanceId": inv.instance_id,
                "Comment": command.comment,
                "DocumentName": command.document_name,
                "DocumentVersion": "$DEFAULT",
                "PluginName": inv.plugin_name,
                "ResponseCode": inv.response_code if terminal else -1,
                "ExecutionStartDateTime": _ts(inv.started_at).isoformat() if now >= inv.started_at else "",
                "ExecutionElapsedTime": f"PT{max(0.0, min(now, inv.ended_at) - inv.started_at):.1f}S",
                "ExecutionEndDateTime": _ts(inv.ended_at).isoformat() if terminal else "",
                "Status": status,
                "StatusDetails": status_details,
                "StandardOutputContent": inv.output if terminal else "",
                "StandardOutputUrl": "",
                "StandardErrorContent": "",
                "StandardErrorUrl": "",
            }
        )


# -- patch state --------------------------------------------------------------------------------
def _describe_instance_patch_states(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    state.advance()
    instance_ids = self._get_param("InstanceIds") or []
    if not instance_ids or len(instance_ids) > 50:
        raise ValidationException("InstanceIds must hold between 1 and 50 items")
    with state.lock:
        states = []
        for instance_id in instance_ids:
            host = state.host(self.current_account, self.region, instance_id)
            if host is not None and host.patch_state is not None:
                states.append(dict(host.patch_state))
        page, token = _page(states, self._get_param("NextToken"), self._get_param("MaxResults"), 50, 100)
        return ActionResult(_with_token({"InstancePatchStates": page}, token))


def _describe_instance_patches(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    state.advance()
    with state.lock:
        host = state.host(self.current_account, self.region, self._get_param("InstanceId") or "")
        if host is None:
            raise InvalidInstanceId("The instance is not a managed instance")
        rows = []
        for patch_id, patch_state in sorted(
            [(p, "Installed") for p in host.installed]
            + [(p, "Missing") for p in host.missing]
            + [(p, "Failed") for p in host.failed]
        ):
            patch = state.catalog[patch_id]
            rows.append(
                {
                    "Title": patch.title,
                    "KBId": patch.id,
                    "Classification": patch.classification,
                    "Severity": patch.severity,
                    "State": patch_state,
                    "InstalledTime": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                    "CVEIds": ",".join(patch.cves),
                }
            )
        for f in self._get_param("Filters") or []:
            rows = [r for r in rows if str(r.get(f["Key"].title(), r.get(f["Key"]))) in set(f["Values"])]
        page, token = _page(rows, self._get_param("NextToken"), self._get_param("MaxResults"), 50, 100)
        return ActionResult(_with_token({"Patches": page}, token))


def _describe_available_patches(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    from fleetsim.platforms import PLATFORMS

    patches = sorted(state.catalog.values(), key=lambda p: (p.os_family, p.released, p.id))
    for f in self._get_param("Filters") or []:
        key, values = f["Key"], set(f.get("Values", []))
        if key == "PRODUCT":
            patches = [p for p in patches if PLATFORMS[p.os_family].ssm_product in values]
        elif key == "CLASSIFICATION":
            patches = [p for p in patches if p.classification in values]
        elif key in ("SEVERITY", "MSRC_SEVERITY"):
            patches = [p for p in patches if p.severity in values]
        elif key == "PATCH_ID":
            patches = [p for p in patches if p.id in values]
        else:
            raise InvalidFilterKey(f"fleetsim does not emulate the filter key {key!r}")
    page, token = _page(patches, self._get_param("NextToken"), self._get_param("MaxResults"), 100, 100)
    rows = []
    for p in page:
        platform = PLATFORMS[p.os_family]
        windows = platform.platform_type == "Windows"
        row = {
            "Id": p.id,
            "ReleaseDate": dt.datetime.combine(p.released, dt.time(), dt.UTC),
            "Title": p.title,
            "Description": p.title,
            "Vendor": "Microsoft" if windows else "fleetsim",
            "ProductFamily": "Windows" if windows else platform.platform_name,
            "Product": platform.ssm_product,
            "Classification": p.classification,
            "CVEIds": p.cves,
        }
        if windows:
            row.update(MsrcSeverity=p.severity, KbNumber=f"KB{p.kb_number}" if p.kb_number else "")
        else:
            version, _, release = p.package_version.partition("-")
            row.update(
                Severity=p.severity, Name=p.package_name, Version=version, Release=release, Arch="x86_64"
            )
        rows.append(row)
    return ActionResult(_with_token({"Patches": rows}, token))


# -- patch baselines ----------------------------------------------------------------------------
def _get_patch_baseline(self: SimpleSystemManagerResponse) -> ActionResult:
    """GetPatchBaseline, which moto lacks: the approval rules stored by CreatePatchBaseline, read back."""
    backend = ssm_backends[self.current_account][self.region]
    baseline_id = self._get_param("BaselineId")
    baseline = backend.baselines.get(baseline_id)
    if baseline is None:
        raise DoesNotExistException(f"Patch baseline {baseline_id} does not exist.")
    groups = sorted(
        name for name, group in backend.patch_groups.items() if baseline_id in group.associations.values()
    )
    return ActionResult(
        {
            "BaselineId": baseline.id,
            "Name": baseline.name,
            "OperatingSystem": baseline.operating_system,
            "GlobalFilters": baseline.global_filters or {"PatchFilters": []},
            "ApprovalRules": baseline.approval_rules or {"PatchRules": []},
            "ApprovedPatches": baseline.approved_patches or [],
            "ApprovedPatchesComplianceLevel": baseline.approved_patches_compliance_level or "UNSPECIFIED",
            "ApprovedPatchesEnableNonSecurity": bool(baseline.approved_patches_enable_non_security),
            "RejectedPatches": baseline.rejected_patches or [],
            "RejectedPatchesAction": baseline.rejected_patches_action or "ALLOW_AS_DEPENDENCY",
            "PatchGroups": groups,
            "Description": baseline.description or "",
            "Sources": baseline.sources or [],
        }
    )
