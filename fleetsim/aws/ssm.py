"""SSM actions moto lacks or gets wrong, installed onto moto's SSM response class.

moto dispatches each request to ``SimpleSystemManagerResponse.<snake_case_action>`` and serialises the
returned ``ActionResult`` with botocore's own output shape, so the wire format is the real one. The
fleet behind these actions is fleetsim's :class:`~fleetsim.fleet.FleetState`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import yaml
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.s3.models import s3_backends
from moto.ssm.models import FakePatchGroup, SimpleSystemManagerBackend, ssm_backends
from moto.ssm.responses import SimpleSystemManagerResponse
from werkzeug.exceptions import HTTPException

from fleetsim import fleet as fleet_module
from fleetsim.aws import baselines
from fleetsim.aws.ssm_documents import (
    FalconDocumentRun,
    InvalidPluginName,
    document_content,
    is_falcon_document,
    validate_parameters,
)
from fleetsim.falcon.installers import InstallerCatalog
from fleetsim.fleet import Command, FleetState, SimHost
from fleetsim.platforms import PLATFORMS

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


class InternalServerError(HTTPException):
    """SSM's InternalServerError as the JSON protocol sends it, with HTTP status 500 (botocore's model
    gives the shape no status, so moto's serializer would answer 400)."""

    code = 500

    def __init__(self, message: str) -> None:
        super().__init__(description=json.dumps({"__type": "InternalServerError", "message": message}))

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("Content-Type", "application/x-amz-json-1.1")]


class InvalidFilterValue(ServiceException):
    code = "InvalidFilterValue"


class InvalidNextToken(ServiceException):
    code = "InvalidNextToken"


class ValidationException(ServiceException):
    code = "ValidationException"


class DoesNotExistException(ServiceException):
    code = "DoesNotExistException"


class AlreadyExistsException(ServiceException):
    code = "AlreadyExistsException"


class InvalidFilter(ServiceException):
    code = "InvalidFilter"


class InvalidResourceId(ServiceException):
    code = "InvalidResourceId"


# The original moto handler the CreatePatchBaseline add-on wraps (validate first, then let moto store).
_MOTO_CREATE_PATCH_BASELINE = SimpleSystemManagerResponse.create_patch_baseline
_MOTO_TAGGED_RESOURCE = SimpleSystemManagerBackend._validate_resource_type_and_id


def _tagged_resource(self: SimpleSystemManagerBackend, resource_type: str, resource_id: str) -> str:
    """AddTagsToResource / ListTagsForResource / CreatePatchBaseline's Tags on a patch baseline.

    API reference, AddTagsToResource: ResourceType PatchBaseline, ResourceId "For the PatchBaseline
    resource type: pb-..." (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_AddTagsToResource.html).
    moto refuses every PatchBaseline id (InvalidResourceId); fleetsim accepts the account's baselines.
    """
    if resource_type == "PatchBaseline":
        if resource_id not in self.baselines:
            raise InvalidResourceId(f"Patch baseline {resource_id} does not exist.")
        return resource_id
    return _MOTO_TAGGED_RESOURCE(self, resource_type, resource_id)


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
        "create_patch_baseline",
        "update_patch_baseline",
        "register_patch_baseline_for_patch_group",
        "deregister_patch_baseline_for_patch_group",
    ):
        setattr(SimpleSystemManagerResponse, name, globals()[f"_{name}"])
    state.ssm_baseline = baseline_for
    SimpleSystemManagerBackend._validate_resource_type_and_id = _tagged_resource  # type: ignore[method-assign]


def _fleet() -> FleetState:
    return _STATE["fleet"]


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _page(
    items: list[Any], token: str | None, max_results: int | None, default: int, limit: int, minimum: int = 1
) -> tuple:
    size = default if max_results is None else int(max_results)
    if size < minimum or size > limit:
        raise ValidationException(f"MaxResults must be between {minimum} and {limit}, got {size}")
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


def _read_override_list(url: str) -> tuple[baselines.OverrideEntry, ...]:
    """Read an InstallOverrideList from the emulated S3 (user guide, AWS-RunPatchBaseline, "Parameter
    name: InstallOverrideList", "Valid URL formats": ``s3://bucket/key`` or path-style https)."""
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
    try:
        return tuple(baselines.parse_override(yaml.safe_load(obj.value)))
    except (yaml.YAMLError, baselines.BaselineError) as exc:
        raise ValidationException(f"InstallOverrideList s3://{bucket}/{key}: {exc}") from exc


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
    parameters = self._get_param("Parameters") or {}
    document_run: FalconDocumentRun | None = None
    if document != PATCH_DOCUMENT:
        content = document_content(self.current_account, self.region, document)
        if content is None:
            raise InvalidDocument(f"Document {document} does not exist")
        values = validate_parameters(content, parameters)
        if is_falcon_document(content):
            document_run = FalconDocumentRun(values, _catalog(state))
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
        if override is not None and operation == "Scan":
            override = None  # "Scan operations ignore the InstallOverrideList parameter" (same section)
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
            override_entries=override,
            document_run=document_run,
        )
        if document_run is not None:
            for host in hosts:
                if host.agent_status == "Online":
                    document_run.plans[host.host_id] = document_run.plan(state, command, host)
        state.schedule_command(command, hosts)
        if operation == "Install" and _lose_answer(state, self.current_account):
            raise InternalServerError("We encountered an internal error. Please try again.")
        return ActionResult({"Command": _command_object(command, now)})


_CATALOG: list[tuple[FleetState, InstallerCatalog]] = []


def _catalog(state: FleetState) -> InstallerCatalog:
    """The Falcon installer catalog (the Sensor Download API's), built once per fleet."""
    if not _CATALOG or _CATALOG[0][0] is not state:
        _CATALOG[:] = [(state, InstallerCatalog(state.scenario))]
    return _CATALOG[0][1]


def _lose_answer(state: FleetState, account: str) -> bool:
    """Whether this Install's answer is one of the account's ``lost_install_answers`` (scenario)."""
    if state.lost_install_answers.get(account, 0) > 0:
        state.lost_install_answers[account] -= 1
        return True
    return False


def _get_command(state: FleetState, command_id: str | None, account: str, region: str) -> Command:
    command = state.commands.get(command_id or "")
    if command is None or (command.account, command.region) != (account, region):
        raise InvalidCommandId(f"Command {command_id} does not exist")
    return command


_COMMAND_FILTER_KEYS = ("InvokedAfter", "InvokedBefore", "Status", "ExecutionStage", "DocumentName")


def _command_filter(filters: list[dict[str, str]] | None, now: float) -> Callable[[Command], bool]:
    """ListCommands ``Filters`` (API reference, CommandFilter): 1 to 5 of them, each a key of
    InvokedAfter | InvokedBefore | Status | ExecutionStage | DocumentName; every filter must hold.
    An unknown key is InvalidFilterKey; an unparsable timestamp InvalidFilterValue."""
    if filters is None:
        return lambda command: True
    if not 1 <= len(filters) <= 5:
        raise ValidationException("Filters must contain between 1 and 5 items")
    tests: list[Callable[[Command], bool]] = []
    for item in filters:
        key, value = item.get("key"), str(item.get("value", ""))
        if key not in _COMMAND_FILTER_KEYS:
            raise InvalidFilterKey(f"{key} is not a valid filter key for ListCommands")
        if key in ("InvokedAfter", "InvokedBefore"):
            try:
                moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidFilterValue(f"{value} is not a valid timestamp for {key}") from None
            at = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
            if key == "InvokedAfter":
                tests.append(lambda c, at=at: c.requested_at >= at)
            else:
                tests.append(lambda c, at=at: c.requested_at < at)
        elif key == "DocumentName":
            tests.append(lambda c, v=value: c.document_name == v)
        elif key == "Status":
            tests.append(lambda c, v=value: c.status_at(now)[0] == v)
        else:  # ExecutionStage: Executing (still running) or Complete
            tests.append(
                lambda c, v=value: (c.status_at(now)[0] in ("Pending", "InProgress")) == (v == "Executing")
            )
    return lambda command: all(test(command) for test in tests)


def _list_commands(self: SimpleSystemManagerResponse) -> ActionResult:
    state = _fleet()
    now = state.advance()
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    wanted = _command_filter(self._get_param("Filters"), now)
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
                and wanted(c)
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
    if details and command.document_run is not None:
        entry["CommandPlugins"] = [
            _step_plugin(step, inv, internal, status, status_details)
            for step in command.document_run.steps(inv)
        ]
    elif details:
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


# CommandPlugin.Output: "Output of the plugin execution" holds at most 2,500 characters (API reference,
# CommandPlugin); GetCommandInvocation's StandardOutputContent and StandardErrorContent at most 24,000.
PLUGIN_OUTPUT_MAX = 2500
INVOCATION_CONTENT_MAX = 24000


def _step_plugin(step: Any, inv: Any, internal: str, status: str, status_details: str) -> dict[str, Any]:
    """One step of a document fleetsim follows (CommandPlugin). A step whose precondition does not hold
    ends Success with StatusDetails Skipped once the invocation has ended (no document describes the
    skipped plugin's fields; this is what the agent is seen to report)."""
    terminal = internal in fleet_module.TERMINAL_INVOCATION_STATES
    plugin: dict[str, Any] = {"Name": step.name, "Status": status, "StatusDetails": status_details}
    if not terminal:
        return plugin
    if step.skipped:
        plugin.update(Status="Success", StatusDetails="Skipped")
    output = step.stdout + (f"\n----------ERROR-------\n{step.stderr}" if step.stderr else "")
    plugin.update(
        ResponseCode=step.response_code if not step.skipped else 0,
        ResponseStartDateTime=_ts(inv.started_at),
        ResponseFinishDateTime=_ts(inv.ended_at),
        Output=output[:PLUGIN_OUTPUT_MAX],
    )
    return plugin


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
        if inv is None:
            raise InvocationDoesNotExist("An error occurred (InvocationDoesNotExist)")
        internal = inv.status_at(now)
        terminal = internal in fleet_module.TERMINAL_INVOCATION_STATES
        status, status_details = wire_status(internal)
        run = command.document_run
        if run is not None:
            return ActionResult(_document_step_invocation(command, inv, plugin, now, internal))
        if plugin and plugin != inv.plugin_name:
            raise InvocationDoesNotExist("An error occurred (InvocationDoesNotExist)")
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


def _document_step_invocation(
    command: Command, inv: Any, plugin: str | None, now: float, internal: str
) -> dict[str, Any]:
    """GetCommandInvocation for a multi-step document: API reference, GetCommandInvocation, PluginName:
    "If the document contains only one step, you can omit the name and details for that step. If the
    document contains more than one step, you must specify the name of the step for which you want to
    view details" (InvalidPluginName otherwise, one of the operation's documented errors)."""
    steps = {s.name: s for s in command.document_run.steps(inv)}
    if not plugin:
        raise InvalidPluginName(
            f"The document {command.document_name} has more than one step: name one of {sorted(steps)}"
        )
    step = steps.get(plugin)
    if step is None:
        raise InvalidPluginName(f"The document {command.document_name} has no step {plugin}")
    terminal = internal in fleet_module.TERMINAL_INVOCATION_STATES
    status, status_details = wire_status(internal)
    if terminal and step.skipped:
        status, status_details = "Success", "Skipped"
    return {
        "CommandId": command.command_id,
        "InstanceId": inv.instance_id,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": "$DEFAULT",
        "PluginName": step.name,
        "ResponseCode": (0 if step.skipped else step.response_code) if terminal else -1,
        "ExecutionStartDateTime": _ts(inv.started_at).isoformat() if now >= inv.started_at else "",
        "ExecutionElapsedTime": f"PT{max(0.0, min(now, inv.ended_at) - inv.started_at):.1f}S",
        "ExecutionEndDateTime": _ts(inv.ended_at).isoformat() if terminal else "",
        "Status": status,
        "StatusDetails": status_details,
        "StandardOutputContent": step.stdout[:INVOCATION_CONTENT_MAX] if terminal else "",
        "StandardOutputUrl": "",
        "StandardErrorContent": step.stderr[:INVOCATION_CONTENT_MAX] if terminal else "",
        "StandardErrorUrl": "",
    }


# -- patch baselines and patch groups -----------------------------------------------------------
# User guide, "Patch groups": "you must apply the tag key `Patch Group` or `PatchGroup` to your managed
# nodes" (https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-tag-a-patch-group.html);
# "An instance can only be in one patch group". No document says which wins when a node carries both
# keys; fleetsim takes `Patch Group`, the key every version of the guide names.
PATCH_GROUP_TAGS = ("Patch Group", "PatchGroup")
_PREDEFINED_IDS: dict[str, dict[str, str]] = {}


def _predefined_id(region: str, operating_system: str) -> str:
    """The ARN of AWS's predefined default baseline for an OS in a region (moto ships AWS's table)."""
    if region not in _PREDEFINED_IDS:
        _PREDEFINED_IDS[region] = dict(FakePatchGroup("fleetsim", region).default_associations)
    return _PREDEFINED_IDS[region].get(operating_system) or "pb-0fleetsim0default0"


def _baseline(fake: Any, patch_group: str = "") -> baselines.Baseline:
    return baselines.from_api(
        fake.id,
        fake.operating_system,
        fake.approval_rules,
        fake.global_filters,
        fake.approved_patches or (),
        fake.approved_patches_compliance_level,
        fake.rejected_patches or (),
        fake.rejected_patches_action,
        patch_group=patch_group,
        approved_patches_enable_non_security=fake.approved_patches_enable_non_security,
    )


def patch_group_of(host: SimHost) -> str:
    tags = ec2_backends[host.account][host.region].tags.get(host.host_id, {})
    return next((tags[k] for k in PATCH_GROUP_TAGS if tags.get(k)), "")


def baseline_for(host: SimHost) -> baselines.Baseline:
    """The baseline an AWS-RunPatchBaseline operation on the host uses.

    User guide, "Patch groups", "How it works": if the node is in a patch group with a baseline
    registered for its operating system, that baseline; otherwise "the currently configured default
    patch baseline" (https://docs.aws.amazon.com/systems-manager/latest/userguide/patch-manager-patch-groups.html).
    InstancePatchState.PatchGroup is "The name of the patch group the managed node belongs to", so it is
    reported even when the default baseline was used.
    """
    backend = ssm_backends[host.account][host.region]
    operating_system = host.platform.ssm_operating_system
    group = patch_group_of(host)
    if group and group in backend.patch_groups:
        fake = backend.baselines.get(backend.patch_groups[group].associations.get(operating_system, ""))
        if fake is not None:
            return _baseline(fake, group)
    base = baselines.predefined(operating_system, _predefined_id(host.region, operating_system))
    return baselines.Baseline(**{**base.__dict__, "patch_group": group})


def _validate_baseline(
    operating_system: str, approval_rules: Any, global_filters: Any, approved_patches: Any = None
) -> None:
    try:
        baselines.validate(operating_system, approval_rules, global_filters)
        baselines.validate_approved_patches(approved_patches)
    except baselines.BaselineError as exc:
        raise ValidationException(str(exc)) from exc


def _create_patch_baseline(self: SimpleSystemManagerResponse) -> ActionResult:
    """CreatePatchBaseline: moto stores it once the approval rules pass the PatchRule checks.

    API reference, CreatePatchBaseline: OperatingSystem "The default value is WINDOWS"
    (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CreatePatchBaseline.html).
    """
    operating_system = self._get_param("OperatingSystem") or "WINDOWS"
    _validate_baseline(
        operating_system,
        self._get_param("ApprovalRules"),
        self._get_param("GlobalFilters"),
        self._get_param("ApprovedPatches"),
    )
    result = _MOTO_CREATE_PATCH_BASELINE(self)
    backend = ssm_backends[self.current_account][self.region]
    baseline_id = result.response["BaselineId"] if hasattr(result, "response") else None
    for fake in backend.baselines.values():
        if fake.id == baseline_id or (baseline_id is None and not hasattr(fake, "created_date")):
            fake.operating_system = fake.operating_system or operating_system
            now = dt.datetime.now(dt.UTC)
            fake.created_date = getattr(fake, "created_date", now)
            fake.modified_date = getattr(fake, "modified_date", now)
    return result


def _baseline_result(backend: Any, fake: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "BaselineId": fake.id,
        "Name": fake.name,
        "OperatingSystem": fake.operating_system,
        "GlobalFilters": fake.global_filters or {"PatchFilters": []},
        "ApprovalRules": fake.approval_rules or {"PatchRules": []},
        "ApprovedPatches": fake.approved_patches or [],
        "ApprovedPatchesComplianceLevel": fake.approved_patches_compliance_level or "UNSPECIFIED",
        "ApprovedPatchesEnableNonSecurity": bool(fake.approved_patches_enable_non_security),
        "RejectedPatches": fake.rejected_patches or [],
        "RejectedPatchesAction": fake.rejected_patches_action or "ALLOW_AS_DEPENDENCY",
        "Sources": fake.sources or [],
    }
    if fake.description:  # BaselineDescription has a minimum length of 1
        result["Description"] = fake.description
    for attr, member in (("created_date", "CreatedDate"), ("modified_date", "ModifiedDate")):
        if getattr(fake, attr, None):
            result[member] = getattr(fake, attr)
    return result


def _update_patch_baseline(self: SimpleSystemManagerResponse) -> ActionResult:
    """UpdatePatchBaseline, which moto lacks.

    API reference, UpdatePatchBaseline
    (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_UpdatePatchBaseline.html):
    "Modifies an existing patch baseline. Fields not specified in the request are left unchanged";
    Replace: "If True, then all fields that are required by the CreatePatchBaseline operation are also
    required for this API request. Optional fields that aren't specified are set to null."
    """
    backend = ssm_backends[self.current_account][self.region]
    baseline_id = self._get_param("BaselineId")
    fake = backend.baselines.get(baseline_id)
    if fake is None:
        raise DoesNotExistException(f"Patch baseline {baseline_id} does not exist.")
    replace = bool(self._get_param("Replace"))
    fields = {
        "Name": "name",
        "GlobalFilters": "global_filters",
        "ApprovalRules": "approval_rules",
        "ApprovedPatches": "approved_patches",
        "ApprovedPatchesComplianceLevel": "approved_patches_compliance_level",
        "ApprovedPatchesEnableNonSecurity": "approved_patches_enable_non_security",
        "RejectedPatches": "rejected_patches",
        "RejectedPatchesAction": "rejected_patches_action",
        "Description": "description",
        "Sources": "sources",
    }
    given = {member: self._get_param(member) for member in fields}
    if replace and not given["Name"]:
        raise ValidationException("Name is required when Replace is true")
    rules = given["ApprovalRules"] if given["ApprovalRules"] is not None or replace else fake.approval_rules
    global_filters = (
        given["GlobalFilters"] if given["GlobalFilters"] is not None or replace else fake.global_filters
    )
    _validate_baseline(fake.operating_system, rules, global_filters, given["ApprovedPatches"])
    for member, attr in fields.items():
        if given[member] is not None or replace:
            setattr(fake, attr, given[member])
    fake.modified_date = dt.datetime.now(dt.UTC)
    return ActionResult(_baseline_result(backend, fake))


def _register_patch_baseline_for_patch_group(self: SimpleSystemManagerResponse) -> ActionResult:
    """RegisterPatchBaselineForPatchGroup: "A patch group can be registered with only one patch baseline
    for each operating system type" (user guide, "Patch groups"). moto refuses a second OS for an
    existing group (it compares against AWS's predefined baseline); this keeps one custom baseline per
    OS and refuses (AlreadyExistsException) a second one for the same OS."""
    backend = ssm_backends[self.current_account][self.region]
    baseline_id, name = self._get_param("BaselineId"), self._get_param("PatchGroup")
    fake = backend.baselines.get(baseline_id)
    if fake is None:
        raise DoesNotExistException(f"Patch baseline {baseline_id} does not exist.")
    group = backend.patch_groups.get(name) or FakePatchGroup(name, self.region)
    current = group.associations.get(fake.operating_system)
    if current in backend.baselines:
        raise AlreadyExistsException(
            f"Patch Group baseline already has a baseline registered for OperatingSystem "
            f"{fake.operating_system}."
        )
    group.associations[fake.operating_system] = baseline_id
    backend.patch_groups[name] = group
    return ActionResult({"BaselineId": baseline_id, "PatchGroup": name})


def _deregister_patch_baseline_for_patch_group(self: SimpleSystemManagerResponse) -> ActionResult:
    """DeregisterPatchBaselineForPatchGroup: the group's OS falls back to the default baseline.

    moto writes the deregistered baseline back into the group; AWS removes it. No document names the
    error for a pair that is not registered; fleetsim answers InvalidResourceId, an error the service
    model lists for this operation.
    """
    backend = ssm_backends[self.current_account][self.region]
    baseline_id, name = self._get_param("BaselineId"), self._get_param("PatchGroup")
    fake = backend.baselines.get(baseline_id)
    group = backend.patch_groups.get(name)
    if fake is None or group is None or group.associations.get(fake.operating_system) != baseline_id:
        raise InvalidResourceId(f"Patch group {name} is not registered with baseline {baseline_id}")
    group.associations[fake.operating_system] = _predefined_id(self.region, fake.operating_system)
    return ActionResult({"BaselineId": baseline_id, "PatchGroup": name})


# -- patch state --------------------------------------------------------------------------------
def _describe_instance_patch_states(self: SimpleSystemManagerResponse) -> ActionResult:
    """DescribeInstancePatchStates (API reference): InstanceIds at most 50; MaxResults 10-100. The
    default page size is not documented: fleetsim uses the smallest valid one, 10, so a caller that
    does not follow NextToken is caught."""
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
        page, token = _page(states, self._get_param("NextToken"), self._get_param("MaxResults"), 10, 100, 10)
        return ActionResult(_with_token({"InstancePatchStates": page}, token))


# DescribeInstancePatches, Filters: "Supported keys ... Classification, KBId, Severity, State".
_INSTANCE_PATCH_FILTERS = {"Classification", "KBId", "Severity", "State"}


def _describe_instance_patches(self: SimpleSystemManagerResponse) -> ActionResult:
    """DescribeInstancePatches: each patch the instance's baseline gives a state, as of its last operation.

    API reference, DescribeInstancePatches and PatchComplianceData
    (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeInstancePatches.html,
    .../API_PatchComplianceData.html): rows hold Title, KBId, Classification, Severity, State,
    InstalledTime (required) and CVEIds; filters on Classification, KBId, Severity and State (in the
    "Installed | InstalledOther | ..." spelling); MaxResults 10-100. States per the user guide,
    "Understanding patch compliance state values": a patch the baseline does not approve and the node
    lacks has no row. InstalledTime of a patch not installed is the epoch (undocumented; it is a
    required member); of an installed patch, its release date (fleetsim does not track install times).
    """
    state = _fleet()
    state.advance()
    filters = self._get_param("Filters") or []
    if len(filters) > 5:
        raise ValidationException("Filters can hold at most 5 items")
    for f in filters:
        if f.get("Key") not in _INSTANCE_PATCH_FILTERS:
            raise InvalidFilter(f"The filter key {f.get('Key')!r} is not valid for DescribeInstancePatches")
    with state.lock:
        host = state.host(self.current_account, self.region, self._get_param("InstanceId") or "")
        if host is None:
            raise InvalidInstanceId("The instance is not a managed instance")
        if host.patch_state is None:
            rows: list[dict[str, Any]] = []
        else:
            baseline = baseline_for(host)
            as_of = host.patch_state["OperationEndTime"]
            result = state.ssm_patch_states(host, baseline, as_of)
            rows = []
            for patch_id, patch_state in sorted(result.states.items()):
                patch = state.catalog[patch_id]
                installed = patch_state.startswith("INSTALLED")
                row = {
                    "Title": patch.title if patch.is_windows else baselines.package_title(patch),
                    "KBId": baselines.kb_id(patch),
                    "Classification": patch.classification,
                    "Severity": patch.severity,
                    "State": patch_state,
                    "InstalledTime": dt.datetime.combine(patch.released, dt.time(), dt.UTC)
                    if installed
                    else dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                }
                if patch.cves:
                    row["CVEIds"] = ",".join(patch.cves)
                rows.append(row)
        for f in filters:
            values = set(f.get("Values", []))
            if f["Key"] == "State":
                wanted = {
                    baselines.STATE_FILTER_VALUES[v] for v in values if v in baselines.STATE_FILTER_VALUES
                }
                rows = [r for r in rows if r["State"] in wanted]
            else:
                rows = [r for r in rows if r[f["Key"]] in values]
        page, token = _page(rows, self._get_param("NextToken"), self._get_param("MaxResults"), 10, 100, 10)
        return ActionResult(_with_token({"Patches": page}, token))


# DescribeAvailablePatches (API reference,
# https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeAvailablePatches.html):
# "Currently, DescribeAvailablePatches supports only the Amazon Linux 1, Amazon Linux 2, and Windows
# Server operating systems." What AWS answers for another product is undocumented: fleetsim answers
# nothing, the reading that exposes a caller relying on it for AL2023, RHEL, CentOS or Ubuntu.
AVAILABLE_PATCH_OPERATING_SYSTEMS = frozenset({"AMAZON_LINUX", "AMAZON_LINUX_2", "WINDOWS"})
_WINDOWS_KEYS = {"PATCH_SET", "PRODUCT", "PRODUCT_FAMILY", "MSRC_SEVERITY", "CLASSIFICATION", "PATCH_ID"}
_LINUX_KEYS = {
    "PRODUCT",
    "NAME",
    "VERSION",
    "RELEASE",
    "ARCH",
    "EPOCH",
    "SEVERITY",
    "CLASSIFICATION",
    "CVE_ID",
    "ADVISORY_ID",
    "BUGZILLA_ID",
    "REPOSITORY",
    "SECURITY",
}


def _available_value(key: str, p: Any) -> list[str]:
    platform = PLATFORMS[p.os_family]
    if key == "PRODUCT":
        return [platform.ssm_product]
    if key == "PRODUCT_FAMILY":
        return ["Windows"] if p.is_windows else []
    if key == "PATCH_SET":
        return ["OS"] if p.is_windows else []
    if key in ("MSRC_SEVERITY", "SEVERITY"):
        return [p.severity] if (key == "MSRC_SEVERITY") == p.is_windows else []
    if key == "CLASSIFICATION":
        return [p.classification]
    if key == "PATCH_ID":
        return [baselines.kb_id(p)] if p.is_windows else []
    if p.is_windows:
        return []
    epoch, version, release = baselines.evr(p)
    return {
        "NAME": [p.package_name],
        "VERSION": [version],
        "RELEASE": [release],
        "ARCH": [baselines.arch(p)],
        "EPOCH": [str(epoch)],
        "CVE_ID": list(p.cves),
        "ADVISORY_ID": [p.id],
        "SECURITY": ["SECURITY" if p.classification == "Security" else "NON-SECURITY"],
    }.get(key, [])


def _describe_available_patches(self: SimpleSystemManagerResponse) -> ActionResult:
    """DescribeAvailablePatches as the API reference documents it (see above): only AL1, AL2 and Windows
    Server patches; Linux filters need a PRODUCT ("the following command fails: aws ssm
    describe-available-patches --filters Key=CVE_ID,Values=CVE-2018-3615"; the error code is not
    documented: fleetsim answers ValidationException); MaxResults 1-100 (default undocumented: 100)."""
    state = _fleet()
    filters = self._get_param("Filters") or []
    keys = {f["Key"] for f in filters}
    if unknown := keys - _WINDOWS_KEYS - _LINUX_KEYS:
        raise ValidationException(f"fleetsim does not emulate the filter keys {sorted(unknown)}")
    if (keys & (_LINUX_KEYS - _WINDOWS_KEYS)) and "PRODUCT" not in keys:
        raise ValidationException("Linux patch filters require a PRODUCT filter")
    patches = sorted(
        (
            p
            for p in state.catalog.values()
            if PLATFORMS[p.os_family].ssm_operating_system in AVAILABLE_PATCH_OPERATING_SYSTEMS
        ),
        key=lambda p: (p.os_family, p.released, p.id),
    )
    for f in filters:
        values = list(f.get("Values", []))
        patches = [
            p
            for p in patches
            if any(
                fnmatch.fnmatchcase(v, pattern) for v in _available_value(f["Key"], p) for pattern in values
            )
        ]
    page, token = _page(patches, self._get_param("NextToken"), self._get_param("MaxResults"), 100, 100)
    rows = []
    for p in page:
        platform = PLATFORMS[p.os_family]
        row: dict[str, Any] = {
            "Id": baselines.kb_id(p) if p.is_windows else p.id,
            "ReleaseDate": dt.datetime.combine(p.released, dt.time(), dt.UTC),
            "Title": p.title,
            "Description": p.title,
            "Product": platform.ssm_product,
            "Classification": p.classification,
            "CVEIds": list(p.cves),
        }
        if p.is_windows:
            row.update(
                Vendor="Microsoft",
                ProductFamily="Windows",
                MsrcSeverity=p.severity,
                KbNumber=baselines.kb_id(p),
                Language="All",
            )
        else:
            epoch, version, release = baselines.evr(p)
            row.update(
                AdvisoryIds=[p.id],
                Name=p.package_name,
                Epoch=epoch,
                Version=version,
                Release=release,
                Arch=baselines.arch(p),
                Severity=p.severity,
            )
        rows.append(row)
    return ActionResult(_with_token({"Patches": rows}, token))


def _get_patch_baseline(self: SimpleSystemManagerResponse) -> ActionResult:
    """GetPatchBaseline, which moto lacks: the approval rules stored by CreatePatchBaseline, read back."""
    backend = ssm_backends[self.current_account][self.region]
    baseline_id = self._get_param("BaselineId")
    fake = backend.baselines.get(baseline_id)
    if fake is None:
        raise DoesNotExistException(f"Patch baseline {baseline_id} does not exist.")
    groups = sorted(
        name for name, group in backend.patch_groups.items() if baseline_id in group.associations.values()
    )
    return ActionResult({**_baseline_result(backend, fake), "PatchGroups": groups})
