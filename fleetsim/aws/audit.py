"""What CloudTrail records of each request fleetsim's AWS serves: one management event per API call.

fleetsim sees every AWS request at its WSGI entry (:class:`fleetsim.server.FleetsimApp`); this module
turns one into the CloudTrail record AWS would write and keeps it in the caller's account and region
(:mod:`fleetsim.aws.cloudtrail`), so ``LookupEvents`` names who made each change: the Terraform apply,
a person at the console, the cycle's own ``UpdatePatchBaseline``. Documents followed:

- RC = User Guide, "CloudTrail record contents" (eventVersion, userIdentity, eventTime, eventSource,
  eventName, awsRegion, sourceIPAddress, userAgent, errorCode, errorMessage, requestParameters,
  responseElements, requestID, eventID, readOnly, eventType, managementEvent, recipientAccountId,
  eventCategory), https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html
- UI = User Guide, "CloudTrail userIdentity element": ``IAMUser`` (principalId, arn, accountId,
  accessKeyId, userName), ``AssumedRole`` (principalId "<role id>:<session name>", the
  ``assumed-role/<role>/<session>`` arn, sessionContext.sessionIssuer with the role's arn and name,
  sessionContext.attributes.creationDate and mfaAuthenticated), ``Root``,
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html
- CN = User Guide, "CloudTrail concepts": event history keeps management events; "events created by
  CloudFront, IAM, and AWS STS will be recorded in [...] US East (N. Virginia) Region, us-east-1" and a
  caller must "update the Region of your lookup-events API calls to view global service events";
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-concepts.html
- S3 = Amazon S3 User Guide, "Amazon S3 CloudTrail events": object operations are data events and
  "The CloudTrail Event history doesn't record data events"; bucket-level operations are management
  events, https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-s3-info.html

Where the documents are silent, fleetsim decides (and says so here):
- ``requestParameters`` are the request's members in lowerCamelCase (IAM ``roleName``, SSM
  ``baselineId``), map keys kept; EC2's launch template calls keep their request wrapped and in
  PascalCase (``CreateLaunchTemplateVersionRequest.LaunchTemplateId``), as CloudTrail shows them; S3
  gives ``bucketName``, ``Host``, the subresource and the XML body. Members botocore's model marks
  sensitive are replaced by ``HIDDEN_DUE_TO_SECURITY_REASONS``. ``responseElements`` is null.
- ``readOnly``: calls named Get*, Describe*, List*, Lookup*, Head*, BatchGet* and Search*.
- ``Resources`` (LookupEvents): the resources a request parameter names, by the parameter (``roleName``
  an ``AWS::IAM::Role``...); EV gives resource types as examples only.
- A request signed with a key no identity holds acts as the account's root, as moto treats it.
- fleetsim's own actors (the Terraform apply and the console edits of a scenario) stamp the time the
  scenario says a call happened (``X-Fleetsim-Event-Time``) and their source IP (``X-Fleetsim-Source-Ip``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote

import xmltodict
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.utils import get_service_model
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends
from werkzeug.datastructures import MultiDict

from fleetsim.aws import cloudtrail

log = logging.getLogger(__name__)

EVENT_VERSION = "1.09"
HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
GLOBAL_REGION = "us-east-1"  # CN: IAM and the global STS endpoint record in us-east-1
_GLOBAL_SERVICES = frozenset({"iam"})
EVENT_TIME_HEADER = "X-Fleetsim-Event-Time"
SOURCE_IP_HEADER = "X-Fleetsim-Source-Ip"
_READ_PREFIXES = ("Get", "Describe", "List", "Lookup", "Head", "BatchGet", "Search")
_CREDENTIAL = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_SERVICE_MODELS = {"sso": "sso-admin"}  # signing name -> botocore service name, where they differ
_EC2_WRAPPED = frozenset(
    {
        "CreateLaunchTemplate",
        "CreateLaunchTemplateVersion",
        "ModifyLaunchTemplate",
        "DeleteLaunchTemplate",
        "DeleteLaunchTemplateVersions",
    }
)
# S3 bucket-level calls (no object key) by method and subresource: management events (S3).
_S3_BUCKET_CALLS: dict[tuple[str, str], str] = {
    ("PUT", ""): "CreateBucket",
    ("DELETE", ""): "DeleteBucket",
    **{
        (method, sub): f"{verb}{name}"
        for sub, name in (
            ("versioning", "BucketVersioning"),
            ("encryption", "BucketEncryption"),
            ("publicAccessBlock", "BucketPublicAccessBlock"),
            ("tagging", "BucketTagging"),
            ("policy", "BucketPolicy"),
            ("ownershipControls", "BucketOwnershipControls"),
            ("lifecycle", "BucketLifecycle"),
            ("acl", "BucketAcl"),
            ("object-lock", "ObjectLockConfiguration"),
            ("logging", "BucketLogging"),
            ("notification", "BucketNotification"),
            ("replication", "BucketReplication"),
        )
        for method, verb in (("PUT", "Put"), ("GET", "Get"), ("DELETE", "Delete"))
    },
    ("GET", "location"): "GetBucketLocation",
}
# botocore's names of the S3 operations CloudTrail names otherwise (for the body's shape).
_S3_OPERATIONS = {
    "PutBucketPublicAccessBlock": "PutPublicAccessBlock",
    "PutBucketLifecycle": "PutBucketLifecycleConfiguration",
}
# Request parameters (CloudTrail's spelling, any case) that name a resource, by event source, each
# for the calls whose name holds the last element ("" for every call).
_RESOURCE_PARAMETERS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "iam.amazonaws.com": (
        ("roleName", "AWS::IAM::Role", ""),
        ("policyName", "AWS::IAM::Policy", ""),
        ("policyArn", "AWS::IAM::Policy", ""),
        ("userName", "AWS::IAM::User", ""),
        ("instanceProfileName", "AWS::IAM::InstanceProfile", ""),
    ),
    "ssm.amazonaws.com": (
        ("baselineId", "AWS::SSM::PatchBaseline", ""),
        ("name", "AWS::SSM::Document", "Document"),
        ("name", "AWS::SSM::Parameter", "Parameter"),
    ),
    "ec2.amazonaws.com": (
        ("LaunchTemplateId", "AWS::EC2::LaunchTemplate", ""),
        ("LaunchTemplateName", "AWS::EC2::LaunchTemplate", ""),
        ("instanceId", "AWS::EC2::Instance", ""),
        ("imageId", "AWS::EC2::Ami", ""),
    ),
    "s3.amazonaws.com": (("bucketName", "AWS::S3::Bucket", ""),),
    "kms.amazonaws.com": (("keyId", "AWS::KMS::Key", ""), ("targetKeyId", "AWS::KMS::Key", "")),
    "rds.amazonaws.com": (("dBInstanceIdentifier", "AWS::RDS::DBInstance", ""),),
}


@dataclass(frozen=True)
class Call:
    """One AWS request as CloudTrail sees it before the answer: who, what, where, when."""

    access_key_id: str
    service: str
    region: str
    event_name: str
    parameters: dict[str, Any]
    event_time: dt.datetime
    source_ip: str
    user_agent: str
    read_only: bool


def _body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
    return body


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


@cache
def _service_model(service: str) -> Any:
    """botocore's model of the service as moto loads it (its parsers expect moto's shapes)."""
    try:
        return get_service_model(_SERVICE_MODELS.get(service, service))
    except Exception:  # noqa: BLE001 - a service botocore does not know: parameters stay as sent
        return None


def _recorded(value: Any, shape: Any, camel: bool = True) -> Any:
    """A request value in CloudTrail's spelling, walking botocore's shape of it where there is one."""
    if shape is not None and shape.metadata.get("sensitive"):
        return HIDDEN
    kind = getattr(shape, "type_name", None)
    if isinstance(value, Mapping):
        if kind == "map":
            return {k: _recorded(v, shape.value, camel) for k, v in value.items()}
        members = shape.members if kind == "structure" else {}
        return {
            (_lower_camel(k) if camel else k): _recorded(v, members.get(k), camel) for k, v in value.items()
        }
    if isinstance(value, list):
        member = shape.member if kind == "list" else None
        return [_recorded(v, member, camel) for v in value]
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bytes):
        return HIDDEN
    return value


def _query_parameters(service: str, action: str, environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    model = _service_model(service)
    values = MultiDict(
        parse_qsl(environ.get("QUERY_STRING", "")) + parse_qsl(body.decode("utf-8", "replace"))
    )
    values.pop("Action", None)
    values.pop("Version", None)
    if model is None or action not in model.operation_names:
        return dict(values)
    operation = model.operation_model(action)
    parser = PROTOCOL_PARSERS[model.protocol](operation)
    parsed = parser.parse(
        {"method": "POST", "values": values, "headers": {}, "body": body, "url_path": "/", "url_params": {}}
    )
    if service == "ec2" and action in _EC2_WRAPPED:
        return {f"{action}Request": _recorded(dict(parsed), operation.input_shape, camel=False)}
    return _recorded(dict(parsed), operation.input_shape)


def _json_parameters(service: str, action: str, body: bytes) -> dict[str, Any]:
    try:
        sent = json.loads(body or b"{}")
    except ValueError:
        return {}
    model = _service_model(service)
    shape = (
        model.operation_model(action).input_shape
        if model is not None and action in model.operation_names
        else None
    )
    return _recorded(sent, shape) if isinstance(sent, Mapping) else {}


def _s3_call(environ: dict[str, Any], body: bytes) -> tuple[str, dict[str, Any]] | None:
    """A bucket-level S3 call's event name and parameters; None for object calls (data events, S3)."""
    path = unquote(environ.get("PATH_INFO", "")).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or key:
        return None
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    subresource = next((q for q in query if (environ.get("REQUEST_METHOD", ""), q) in _S3_BUCKET_CALLS), "")
    name = _S3_BUCKET_CALLS.get((environ.get("REQUEST_METHOD", ""), subresource))
    if name is None:
        return None
    parameters: dict[str, Any] = {"bucketName": bucket, "Host": environ.get("HTTP_HOST", "")}
    if subresource:
        parameters[subresource] = ""
    if body.strip():
        try:
            parsed = xmltodict.parse(body, process_namespaces=False)
        except Exception:  # noqa: BLE001 - not XML (a bucket policy is JSON): kept as text
            parameters["bucketPolicy" if subresource == "policy" else "body"] = body.decode(
                "utf-8", "replace"
            )
        else:
            shape = _s3_payload_shape(name)
            parameters.update({root: _typed_xml(element, shape) for root, element in parsed.items()})
    return name, parameters


def _s3_payload_shape(event_name: str) -> Any:
    model = _service_model("s3")
    operation = _S3_OPERATIONS.get(event_name, event_name)
    if model is None or operation not in model.operation_names:
        return None
    shape = model.operation_model(operation).input_shape
    payload = shape.serialization.get("payload") if shape is not None else None
    return shape.members.get(payload) if payload else None


def _typed_xml(value: Any, shape: Any) -> Any:
    """An XML body as xmltodict reads it, namespaces dropped and scalars typed by the model's shape
    (XML carries "true" and "30"; the record carries true and 30). The XML element names stay."""
    if isinstance(value, list):
        return [_typed_xml(item, shape) for item in value]
    kind = getattr(shape, "type_name", None)
    if isinstance(value, Mapping):
        children: dict[str, Any] = {}
        if kind == "structure":
            for name, member in shape.members.items():
                flat = member.type_name == "list" and member.serialization.get("flattened")
                children[member.serialization.get("name", name)] = member.member if flat else member
        elif kind == "list":
            children[shape.member.serialization.get("name", "member")] = shape.member
        elif shape is None and len(value) == 1:  # the document element, typed as the payload
            return {k: _typed_xml(v, None) for k, v in value.items()}
        return {k: _typed_xml(v, children.get(k)) for k, v in value.items() if not k.startswith("@xmlns")}
    if isinstance(value, str) and kind == "boolean":
        return value == "true"
    if isinstance(value, str) and kind in ("integer", "long"):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _event_time(environ: dict[str, Any]) -> dt.datetime:
    stamped = environ.get("HTTP_" + EVENT_TIME_HEADER.upper().replace("-", "_"))
    if stamped:
        when = dt.datetime.fromisoformat(stamped.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return cloudtrail.now()


def begin(environ: dict[str, Any]) -> Call | None:
    """The call CloudTrail would record for this request, or None (not AWS, unsigned, a data event)."""
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return None
    credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if credential is None:  # unsigned, or a presigned URL: object reads, data events
        return None
    access_key, region, service = credential.groups()
    body = _body(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if service == "s3":
        found = _s3_call(environ, body)
        if found is None:
            return None
        action, parameters = found
    elif target:
        action = target.rsplit(".", 1)[-1]
        parameters = _json_parameters(service, action, body)
    else:
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""))) | dict(
            parse_qsl(body.decode("utf-8", "replace"))
        )
        action = query.get("Action", "")
        if not action:
            return None
        parameters = _query_parameters(service, action, environ, body)
    return Call(
        access_key_id=access_key,
        service=service,
        region=GLOBAL_REGION if service in _GLOBAL_SERVICES else region,
        event_name=action,
        parameters=parameters,
        event_time=_event_time(environ).replace(microsecond=0),
        source_ip=environ.get("HTTP_" + SOURCE_IP_HEADER.upper().replace("-", "_"))
        or environ.get("REMOTE_ADDR", ""),
        user_agent=environ.get("HTTP_USER_AGENT", ""),
        read_only=action.startswith(_READ_PREFIXES),
    )


# -- who -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """The caller of a request, as the record's userIdentity and LookupEvents' Username show it."""

    account_id: str
    user_identity: dict[str, Any]
    username: str | None


_IDENTITIES: dict[str, Identity] = {}


def identity_of(access_key: str) -> Identity:
    """Who holds ``access_key`` (UI): an IAM user, an assumed role's session, or the account's root."""
    known = _IDENTITIES.get(access_key)
    if known is not None:
        return known
    found = _resolve(access_key)
    if found.user_identity["type"] != "Root":  # a key moto does not know yet may become a session
        _IDENTITIES[access_key] = found
    return found


def forget_identities() -> None:
    """Drop what was learnt of access keys (a new emulated cloud)."""
    _IDENTITIES.clear()


def _resolve(access_key: str) -> Identity:
    from moto.core import DEFAULT_ACCOUNT_ID

    for account_id, partitions in list(iam_backends.items()):
        iam = partitions["aws"]
        key = iam.access_keys.get(access_key)
        if key is None:
            continue
        if key.role_arn:
            return _assumed_role(account_id, access_key, key)
        if key.user_name and key.user_name in iam.users:
            user = iam.users[key.user_name]
            return Identity(
                account_id,
                {
                    "type": "IAMUser",
                    "principalId": user.id,
                    "arn": user.arn,
                    "accountId": account_id,
                    "accessKeyId": access_key,
                    "userName": user.name,
                },
                user.name,
            )
    return Identity(
        DEFAULT_ACCOUNT_ID,
        {
            "type": "Root",
            "principalId": DEFAULT_ACCOUNT_ID,
            "arn": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:root",
            "accountId": DEFAULT_ACCOUNT_ID,
            "accessKeyId": access_key,
        },
        "root",
    )


def _assumed_role(account_id: str, access_key: str, key: Any) -> Identity:
    sts = sts_backends[account_id]["aws"]
    session = sts.get_assumed_role_from_access_key(access_key)
    role_arn = str(key.role_arn)
    role_name = role_arn.rsplit("/", 1)[-1]
    iam = iam_backends[account_id]["aws"]
    role = next((r for r in iam.roles.values() if r.arn == role_arn), None)
    role_id = (
        role.id if role is not None else "AROA" + uuid.uuid5(uuid.NAMESPACE_URL, role_arn).hex[:17].upper()
    )
    session_name = session.session_name if session is not None else access_key
    return Identity(
        account_id,
        {
            "type": "AssumedRole",
            "principalId": f"{role_id}:{session_name}",
            "arn": f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}",
            "accountId": account_id,
            "accessKeyId": access_key,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": role_arn,
                    "accountId": account_id,
                    "userName": role_name,
                },
                "attributes": {
                    "creationDate": key.create_date.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "mfaAuthenticated": "false",
                },
            },
        },
        session_name,
    )


# -- the record ------------------------------------------------------------------------------------
def _error(status: int, body: bytes) -> tuple[str | None, str | None]:
    if status < 400:
        return None, None
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
        code = str(parsed.get("__type") or parsed.get("code") or "").split("#")[-1]
        return code or str(status), parsed.get("message") or parsed.get("Message")
    except (ValueError, AttributeError):
        pass
    code = re.search(r"<Code>([^<]+)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    return (code.group(1) if code else str(status)), (message.group(1) if message else None)


def _resources(
    event_source: str, event_name: str, parameters: Mapping[str, Any]
) -> tuple[tuple[str | None, str], ...]:
    found: list[tuple[str | None, str]] = []
    for name, rtype, calls in _RESOURCE_PARAMETERS.get(event_source, ()):
        if calls not in event_name:
            continue
        value = _shallowest(parameters, name.lower())
        if isinstance(value, str) and value and (rtype, value) not in found:
            found.append((rtype, value))
    return tuple(found)


def _shallowest(parameters: Any, wanted: str) -> Any:
    level: Iterable[Any] = [parameters]
    while level:
        deeper: list[Any] = []
        for node in level:
            if isinstance(node, Mapping):
                for key, value in node.items():
                    if str(key).lower() == wanted:
                        return value
                    deeper.append(value)
        level = deeper
    return None


def finish(call: Call, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
    """Record the call with its outcome in the caller's account and the call's region."""
    who = identity_of(call.access_key_id)
    event_source = f"{call.service}.amazonaws.com"
    error_code, error_message = _error(status, body)
    request_id = next((v for k, v in headers if k.lower() in ("x-amzn-requestid", "x-amz-request-id")), None)
    event_id = str(uuid.uuid4())
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": who.user_identity,
        "eventTime": call.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": event_source,
        "eventName": call.event_name,
        "awsRegion": call.region,
        "sourceIPAddress": call.source_ip,
        "userAgent": call.user_agent,
        "requestParameters": call.parameters or None,
        "responseElements": None,
        "requestID": request_id or event_id,
        "eventID": event_id,
        "readOnly": call.read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": who.account_id,
        "eventCategory": "Management",
    }
    if error_code:
        record["errorCode"] = error_code
        if error_message:
            record["errorMessage"] = error_message
    cloudtrail.record_event(
        who.account_id,
        call.region,
        record,
        username=who.username,
        resources=_resources(event_source, call.event_name, call.parameters),
    )


class Recorder:
    """Wraps one request's answer so its outcome is recorded once the AWS app has answered."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.status = 500
        self.headers: list[tuple[str, str]] = []

    def start_response(self, start_response: Any) -> Any:
        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            self.status = int(status.split(" ", 1)[0])
            self.headers = list(headers)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return capture

    def answered(self, chunks: Iterable[bytes]) -> list[bytes]:
        """The answer's body, read whole (management answers are small), after recording the call."""
        body = list(chunks)
        close = getattr(chunks, "close", None)
        if close:
            close()
        try:
            finish(self.call, self.status, self.headers, b"".join(body))
        except Exception:  # a record fleetsim cannot build must never fail the caller's request
            log.exception("fleetsim: could not record %s in CloudTrail", self.call.event_name)
        return body
