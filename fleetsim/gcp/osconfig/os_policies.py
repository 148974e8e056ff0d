"""OS policy assignments (OS Config v1, ``OsConfigZonalService``): their rollout to each zone's instances,
the per-instance reports, and the one kind of OS policy resource fleetsim runs: an ``exec`` resource that
runs CrowdStrike's falcon-installer (a shell script on Linux, a PowerShell script on Windows).

Documents followed (google-cloud-os-config 1.26's protos: ``types/os_policy_assignments.py``,
``os_policy.py``, ``os_policy_assignment_reports.py``; REST paths from ``transports/rest_base.py``):

* ``CreateOSPolicyAssignment`` (``POST /v1/projects/{p}/locations/{zone}/osPolicyAssignments?
  osPolicyAssignmentId=``): a long-running operation (``OSPolicyAssignmentOperationMetadata``:
  ``osPolicyAssignment`` ``name@revisionId``, ``apiMethod``, ``rolloutState``, ``rolloutStartTime``,
  ``rolloutUpdateTime``), done when the rollout is, its response the assignment. The id: "lowercase
  letters, numbers, and hyphens ... start with a letter ... 1-63 characters ... end with a number or a
  letter ... unique within the project" (a second one anywhere in the project is 409 ALREADY_EXISTS).
  Required: ``osPolicies``, ``instanceFilter``, ``rollout`` (``disruptionBudget`` and
  ``minWaitDuration``); an OS policy's id, ``mode`` and ``resourceGroups``; a resource's id; an exec's
  ``validate`` and its ``interpreter`` (INTERPRETER_UNSPECIFIED "will return validation error"); "The size
  of the script is limited to 1024 characters". Each is a 400 INVALID_ARGUMENT naming the field.
* ``UpdateOSPolicyAssignment`` (``PATCH /v1/{os_policy_assignment.name}?updateMask=``): "creates a new
  revision of the OS policy assignment" and a long-running operation (``apiMethod`` UPDATE) whose rollout
  runs again when ``instance_filter`` or ``os_policies`` changed (the ``rollout`` field's documented
  triggers); ``etag``, when given, "must match the server's etag" (400 FAILED_PRECONDITION).
* ``GetOSPolicyAssignment``, ``ListOSPolicyAssignments``, ``DeleteOSPolicyAssignment`` (a long-running
  operation too, whose rollout carries the ``deleted`` revision; it removes no software: an exec resource
  has nothing to undo it), and the operations (``GET .../osPolicyAssignments/{id}/operations/{op}``).
* The rollout, per zone (the assignment's location): ``instanceFilter`` selects the zone's instances
  (``all``, else ``inclusionLabels`` (any set; labels in a set ANDed), minus ``exclusionLabels``, and
  ``inventories`` (OS short name, version with a trailing ``*`` as prefix)); "The maximum number (or
  percentage) of VMs per zone to disrupt at any given moment" is the budget (a percentage of the zone's
  selected VMs, rounded up, at least 1), and "A VM continues to count towards the disruption_budget at
  least until this duration of time has passed after configuration changes are applied" (minWaitDuration).
  Where no document says, fleetsim's conservative readings: a VM left NON_COMPLIANT keeps counting
  towards the budget for the rest of the rollout; once such VMs fill the budget, the VMs not yet reached
  never are, and the operation ends with an ABORTED error naming the count; a VM without an OS Config
  agent takes no slot and reports UNKNOWN ``no-agent-detected``.
* Reports (``GetOSPolicyAssignmentReport``, ``ListOSPolicyAssignmentReports`` with ``-`` for every
  instance or assignment): per OS policy COMPLIANT / NON_COMPLIANT / UNKNOWN with the documented reasons,
  per resource its config steps (VALIDATION, DESIRED_STATE_CHECK, DESIRED_STATE_ENFORCEMENT,
  DESIRED_STATE_CHECK_POST_ENFORCEMENT) and the error of the step that failed. A VM the rollout has not
  reached has no report (404).
* ExecResource: validate "exit code of 100 indicates 'in desired state', and exit code of 101 indicates
  'not in desired state'", enforce: "An exit code of 100 indicates 'success', any other exit code
  indicates a failure running enforce" (so a script that ends with falcon-installer's own exit 0 leaves
  the VM NON_COMPLIANT).

fleetsim runs no scripts. An exec resource whose ``enforce`` runs an executable named ``falcon-installer*``
(an inline ``script``, or a ``file`` with ``args``) is followed as falcon-installer
(:mod:`fleetsim.falcon.falcon_installer`), its flags read from the script or the args:
``--gcp-project-id`` makes it read the ``falcon_*`` secrets of that project's Secret Manager (the
scenario's ``gcp.secrets``; only the instance's own project, the conservative reading of the service
account's reach), as its ``internal/vault/gcp.go`` does (names lower-cased, ``-`` as ``_``, the
``falcon_`` prefix dropped); ``--client-id``, ``--client-secret``, ``--sensor-update-policy``,
``--sensor-version``, ``--member-cid``, ``--update`` as on its command line. The validate stage is read as
what such a check tests: 100 when a sensor is installed (at ``--sensor-version`` when given), else 101. The
enforce stage exits 100 when the script maps the installer's success to it (``... && exit 100``, or an
``exit 100`` after it: then on failure too, unless ``set -e``), else with the installer's code. Any other
resource (pkg, repository, file, another exec) is reported UNKNOWN ``execution-errors`` ("fleetsim does
not emulate"). A credential passed on the command line in clear is accepted, as the service accepts it,
and recorded in the ground truth (``secrets_in_clear``) for the product's tests to find.

The interpreter (``Exec.Interpreter``: SHELL "runs with ``/bin/sh`` on Linux and ``cmd.exe`` on Windows",
POWERSHELL "runs with PowerShell"), as the OS Config agent runs it (github.com/GoogleCloudPlatform/osconfig
``config/exec_resource.go``: ``System32\\WindowsPowerShell\\v1.0\\PowerShell.exe -File script.ps1``,
Windows PowerShell 5.1):

* POWERSHELL on a VM that is not Windows: the agent's ``run`` refuses it ("interpreter %q can only be used
  on Windows systems") with exit code 0, which ``checkState`` reports as "unexpected return code from
  validate: 0": the resource is UNKNOWN ``execution-errors`` at DESIRED_STATE_CHECK and nothing runs.
* A PowerShell script with ``&&`` or ``||`` outside quotes: pipeline chain operators came with PowerShell 7
  (Microsoft's ``about_Pipeline_Chain_Operators``); Windows PowerShell 5.1 does not parse the script ("The
  token '&&' is not a valid statement separator in this version."), so it runs nothing and exits 1 (a
  validate stage: UNKNOWN as above; an enforce stage: NON_COMPLIANT, nothing installed).
* A PowerShell enforce script is read statement by statement (lines and ``;`` outside quotes and braces).
  The installer's call is a statement whose command (after ``&``) names ``falcon-installer*``: a path, a
  quoted path, or a ``$variable`` whose last assignment in the script ends in such a name (``$P = Join-Path
  $D 'falcon-installer.exe'``; ``$name`` expanded from the script's own assignments); its flags as above.
  After the call, the recognised endings, in order: ``if ($LASTEXITCODE -eq 0) { exit 100 }`` (success
  exits 100); then the first top-level ``exit``: ``exit 100`` is reached on failure too (a native command's
  exit code never stops Windows PowerShell 5.1, whatever ``$ErrorActionPreference``), ``exit
  $LASTEXITCODE`` exits with the installer's code, ``exit <n>`` with n, and a script with no ``exit``
  exits 0 (ExecResource: "Powershell will always return an exit code of 0 unless an exit statement is
  provided"). Any other form (``if ($?)``, ``-not $LASTEXITCODE``, ``Start-Process``, a call fleetsim
  cannot resolve) is not read as a success: the script exits as above without 100, and the VM is left
  NON_COMPLIANT, or its resource is not emulated when the call is not found. The validate script is read as
  for Linux (100 when a sensor at ``--sensor-version`` is installed, else 101).
* A SHELL script on a Windows VM runs with ``cmd.exe``, which fleetsim does not emulate (UNKNOWN
  ``execution-errors``).
"""

from __future__ import annotations

import math
import re
import shlex
import uuid
from dataclasses import dataclass, field
from typing import Any

from fleetsim.falcon import falcon_installer
from fleetsim.fleet import FleetState, SimHost, _stable_fraction
from fleetsim.gcp import instance_labels, rfc3339
from fleetsim.gcp.osconfig.exceptions import FailedPrecondition, InvalidArgument, NotFound, OsConfigError

ASSIGNMENT_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
SCRIPT_MAX = 1024
DESCRIPTION_MAX = 1024
METADATA_TYPE = "type.googleapis.com/google.cloud.osconfig.v1.OSPolicyAssignmentOperationMetadata"
ASSIGNMENT_TYPE = "type.googleapis.com/google.cloud.osconfig.v1.OSPolicyAssignment"
CLEAR_SECRET_FLAGS = ("--client-secret", "--access-token", "--provisioning-token", "--cid")


class AlreadyExists(OsConfigError):
    code = 409
    status = "ALREADY_EXISTS"


def _seconds(duration: str) -> float:
    """A protobuf Duration's JSON ("60s", "1.5s") in seconds."""
    return float(duration.rstrip("s") or 0) if isinstance(duration, str) else float(duration or 0)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidArgument(message)


def validate_assignment(assignment_id: str, body: dict[str, Any]) -> None:
    """The documented requirements of a new assignment (400 INVALID_ARGUMENT naming the field)."""
    _require(
        bool(ASSIGNMENT_ID.match(assignment_id or "")),
        f"os_policy_assignment_id {assignment_id!r}: lowercase letters, numbers and hyphens, starting with a "
        "letter and ending with a letter or number, 1-63 characters",
    )
    _require(len(body.get("description", "")) <= DESCRIPTION_MAX, "description: at most 1024 characters")
    policies = body.get("osPolicies") or []
    _require(bool(policies), "os_policy_assignment.os_policies is required")
    seen: set[str] = set()
    for i, policy in enumerate(policies):
        where = f"os_policies[{i}]"
        _require(bool(ASSIGNMENT_ID.match(policy.get("id", ""))), f"{where}.id is required (lowercase, 1-63)")
        _require(
            policy["id"] not in seen, f"{where}.id {policy['id']!r} must be unique within the assignment"
        )
        seen.add(policy["id"])
        _require(policy.get("mode") in ("VALIDATION", "ENFORCEMENT"), f"{where}.mode is required")
        groups = policy.get("resourceGroups") or []
        _require(bool(groups), f"{where}.resource_groups is required")
        for j, group in enumerate(groups):
            resources = group.get("resources") or []
            _require(bool(resources), f"{where}.resource_groups[{j}].resources is required")
            ids: set[str] = set()
            for k, resource in enumerate(resources):
                rwhere = f"{where}.resource_groups[{j}].resources[{k}]"
                rid = resource.get("id", "")
                _require(bool(ASSIGNMENT_ID.match(rid)), f"{rwhere}.id is required (lowercase, 1-63)")
                _require(rid not in ids, f"{rwhere}.id {rid!r} must be unique within the OS policy")
                ids.add(rid)
                kinds = [k for k in ("pkg", "repository", "exec", "file") if k in resource]
                _require(len(kinds) == 1, f"{rwhere}: exactly one of pkg, repository, exec or file")
                if "exec" in resource:
                    _validate_exec(resource["exec"], rwhere)
    instance_filter = body.get("instanceFilter")
    _require(instance_filter is not None, "os_policy_assignment.instance_filter is required")
    if instance_filter.get("all"):
        others = ("inclusionLabels", "exclusionLabels", "inventories")
        _require(
            not any(instance_filter.get(o) for o in others),
            "instance_filter: all=true permits no other criteria",
        )
    rollout = body.get("rollout")
    _require(rollout is not None, "os_policy_assignment.rollout is required")
    budget = rollout.get("disruptionBudget")
    _require(
        budget is not None and ("fixed" in budget) != ("percent" in budget),
        "rollout.disruption_budget: exactly one of fixed or percent is required",
    )
    if "fixed" in budget:
        _require(int(budget["fixed"]) >= 1, "rollout.disruption_budget.fixed must be at least 1")
    else:
        _require(1 <= int(budget["percent"]) <= 100, "rollout.disruption_budget.percent must be 1..100")
    _require("minWaitDuration" in rollout, "rollout.min_wait_duration is required")


def _validate_exec(resource: dict[str, Any], where: str) -> None:
    _require("validate" in resource, f"{where}.exec.validate is required")
    for stage in ("validate", "enforce"):
        step = resource.get(stage)
        if step is None:
            continue
        _require(
            step.get("interpreter", "INTERPRETER_UNSPECIFIED") != "INTERPRETER_UNSPECIFIED",
            f"{where}.exec.{stage}.interpreter is required",
        )
        _require(
            len(step.get("script", "")) <= SCRIPT_MAX, f"{where}.exec.{stage}.script: at most 1024 characters"
        )
        _require(
            ("script" in step) != ("file" in step), f"{where}.exec.{stage}: exactly one of script or file"
        )


# -- falcon-installer in an exec resource -------------------------------------------------------------
@dataclass(frozen=True)
class InstallerCall:
    """falcon-installer as an exec resource's enforce stage calls it."""

    flags: dict[str, str]
    exits_100: str  # "never" | "on_success" | "always"
    otherwise: int | None = None  # the script's exit code when it does not exit 100 (None: the installer's)


def _flags(tokens: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("&&", "||", ";", "|"):
            break
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            if eq:
                flags[name] = value
            elif (
                i + 1 < len(tokens)
                and not tokens[i + 1].startswith("--")
                and tokens[i + 1] not in ("&&", ";")
            ):
                flags[name] = tokens[i + 1]
                i += 1
            else:
                flags[name] = "true"
        i += 1
    return flags


def _is_installer(word: str) -> bool:
    return re.split(r"[\\/]", word)[-1].lower().startswith("falcon-installer")


def installer_call(enforce: dict[str, Any] | None) -> InstallerCall | None:
    """The falcon-installer call of an enforce stage, or None when it runs something else."""
    if not enforce:
        return None
    if "script" in enforce and enforce.get("interpreter") == "POWERSHELL":
        return powershell_call(enforce["script"])
    if "script" in enforce:
        script = enforce["script"]
        for line in script.replace("\r", "").split("\n"):
            try:
                tokens = shlex.split(line.replace("&&", " && ").replace(";", " ; "), posix=True)
            except ValueError:
                continue
            for i, token in enumerate(tokens):
                if _is_installer(token):
                    flags = _flags(tokens[i + 1 :])
                    if re.search(r"falcon-installer[^\n]*&&\s*exit\s+100\b", script):
                        exits = "on_success"
                    elif re.search(r"(^|\n|;)\s*exit\s+100\b", script):
                        exits = "on_success" if re.search(r"(^|\n)\s*set\s+-e", script) else "always"
                    else:
                        exits = "never"
                    return InstallerCall(flags, exits)
        return None
    source = enforce.get("file") or {}
    path = (
        source.get("localPath")
        or (source.get("remote") or {}).get("uri")
        or (source.get("gcs") or {}).get("object", "")
    )
    if path and _is_installer(path):
        return InstallerCall(_flags(list(enforce.get("args") or [])), "never")
    return None


# -- falcon-installer in a PowerShell script ----------------------------------------------------------
_PS_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|[^\s]+")
_PS_ASSIGNMENT = re.compile(r"^\$(\w+)\s*=\s*(.+)$", re.S)
_PS_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_PS_ON_SUCCESS = re.compile(r"^if\s*\(\s*\$LASTEXITCODE\s+-eq\s+0\s*\)\s*\{\s*exit\s+100\s*;?\s*\}$", re.I)
_PS_EXIT = re.compile(r"^exit(?:\s+(\S+))?$", re.I)
PS_CHAIN_ERROR = "The token '{token}' is not a valid statement separator in this version."


def powershell_statements(script: str) -> list[str]:
    """The script's top-level statements: split at line ends and ``;`` outside quotes and braces (a
    ``{ ... }`` block stays one statement with its ``if``)."""
    statements: list[str] = []
    current: list[str] = []
    quote, depth = "", 0
    for char in script.replace("\r", ""):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
        elif char in "\n;" and depth == 0:
            statements.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    statements.append("".join(current).strip())
    return [st for st in statements if st and not st.startswith("#")]


def powershell_chain_operator(script: str) -> str:
    """``&&`` or ``||`` used outside quotes (a parse error in Windows PowerShell 5.1), else ""."""
    bare = re.sub(r"'[^']*'|\"[^\"]*\"", "''", script)
    found = re.search(r"&&|\|\|", bare)
    return found.group(0) if found else ""


def _ps_expand(text: str, variables: dict[str, str], depth: int = 0) -> str:
    """``$name`` replaced by what the script last assigned to it (unquoted), a few levels deep."""
    if depth > 4:
        return text
    return _PS_VARIABLE.sub(
        lambda m: (
            _ps_expand(_ps_unquote(variables[m.group(1).lower()]), variables, depth + 1)
            if m.group(1).lower() in variables
            else m.group(0)
        ),
        text,
    )


def _ps_unquote(token: str) -> str:
    token = token.strip().strip("()")
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    return token


def _ps_names_installer(expression: str, variables: dict[str, str]) -> bool:
    """Whether a command word (a path, a quoted path, ``$var``) names falcon-installer: the last word of
    what it expands to (``Join-Path $D 'falcon-installer.exe'``, ``"$D\falcon-installer.exe"``)."""
    expanded = _ps_expand(_ps_unquote(expression), variables).strip()
    words = _PS_TOKEN.findall(expanded)
    return bool(words) and _is_installer(_ps_unquote(words[-1]))


def powershell_call(script: str) -> InstallerCall | None:
    """falcon-installer as a PowerShell script calls it: ``& <path or $var> --flag value ...`` or
    ``falcon-installer.exe --flag ...``; then the exit-100 mapping after the call (see the module)."""
    variables: dict[str, str] = {}
    statements = powershell_statements(script)
    for index, statement in enumerate(statements):
        assigned = _PS_ASSIGNMENT.match(statement)
        if assigned:
            variables[assigned.group(1).lower()] = assigned.group(2).strip()
            continue
        tokens = _PS_TOKEN.findall(statement)
        if tokens and tokens[0] == "&":
            tokens = tokens[1:]
        if not tokens or not _ps_names_installer(tokens[0], variables):
            continue
        words = [
            _ps_unquote(_ps_expand(t, variables)) if t.startswith("$") else _ps_unquote(t) for t in tokens
        ]
        return _ps_exits(_flags(words[1:]), statements[index + 1 :])
    return None


def _ps_exits(flags: dict[str, str], after: list[str]) -> InstallerCall:
    """How the statements after the call end the script: ``if ($LASTEXITCODE -eq 0) { exit 100 }`` maps
    success to 100; a top-level ``exit 100`` is reached on failure too (a native command's exit code never
    stops Windows PowerShell); ``exit $LASTEXITCODE`` gives the installer's code, ``exit <n>`` n, and no
    ``exit`` at all 0 ("Powershell will always return an exit code of 0 unless an exit statement is
    provided", ExecResource)."""
    exits, otherwise = "never", 0
    for statement in after:
        if _PS_ON_SUCCESS.match(statement):
            exits = "on_success"
            continue
        ends = _PS_EXIT.match(statement)
        if ends is None:
            continue
        code = ends.group(1) or "0"
        if code == "100":
            exits = "always"
        elif code.lower() == "$lastexitcode":
            return InstallerCall(flags, exits, None)
        elif code.lstrip("-").isdigit():
            otherwise = int(code)
        break
    return InstallerCall(flags, exits, otherwise)


def stage_failure(stage: dict[str, Any] | None, windows: bool) -> tuple[int, str] | None:
    """(exit code, stderr) of a stage the agent cannot run as written, else None: ``POWERSHELL`` on a VM
    that is not Windows (the agent's ``run`` refuses it and reports exit code 0), or a PowerShell script
    that uses ``&&`` or ``||`` (a parse error in the Windows PowerShell 5.1 the agent runs: the script does
    not run, exit code 1)."""
    if not stage or stage.get("interpreter") != "POWERSHELL":
        return None
    if not windows:
        return 0, ""
    token = powershell_chain_operator(stage.get("script", ""))
    return (1, PS_CHAIN_ERROR.format(token=token)) if token else None


# -- state ---------------------------------------------------------------------------------------------
@dataclass
class VmRun:
    """One instance's application of the assignment in a rollout."""

    host: SimHost
    started_at: float | None = None
    ended_at: float | None = None
    compliances: list[dict[str, Any]] | None = None  # OSPolicyCompliance rows, set when applied
    compliant: bool = True  # planned
    applied: bool = False
    run_id: str = ""


@dataclass
class Assignment:
    name: str
    project: str
    zone: str
    assignment_id: str
    body: dict[str, Any]  # the OSPolicyAssignment as given, enums as names
    revision_id: str
    revision_created: float
    uid: str
    rollout_started: float
    rollout_ends: float | None = None
    rollout_error: str = ""
    runs: list[VmRun] = field(default_factory=list)
    deleted_at: float | None = None  # a delete's rollout ends then

    def rollout_state(self, now: float) -> str:
        if self.rollout_error and self.rollout_ends is not None and now >= self.rollout_ends:
            return "CANCELLED"
        return "SUCCEEDED" if self.rollout_ends is not None and now >= self.rollout_ends else "IN_PROGRESS"


@dataclass
class Operation:
    name: str
    assignment: Assignment
    method: str  # CREATE | DELETE
    started: float
    ends: float
    error: str = ""


class OsPolicyBackend:
    """Every project's OS policy assignments, their operations and rollouts (caller holds the lock)."""

    def __init__(self, state: FleetState, instances: Any) -> None:
        self.state = state
        self.instances = instances  # OsConfigBackend: project_instances(project)
        self.assignments: dict[str, Assignment] = {}
        self.operations: dict[str, Operation] = {}
        self.secrets = {
            t.gcp.project_id: dict(t.gcp.secrets) for t in state.scenario.tenants if t.gcp is not None
        }

    # -- create / delete -------------------------------------------------------------------------------
    def create(
        self, project: str, zone: str, assignment_id: str, body: dict[str, Any], now: float
    ) -> Operation:
        hosts = self.instances.project_instances(project)
        validate_assignment(assignment_id, body)
        if any(
            a.project == project and a.assignment_id == assignment_id and a.deleted_at is None
            for a in self.assignments.values()
        ):
            raise AlreadyExists(f"OS policy assignment {assignment_id!r} already exists in project {project}")
        name = f"projects/{project}/locations/{zone}/osPolicyAssignments/{assignment_id}"
        assignment = Assignment(
            name=name,
            project=project,
            zone=zone,
            assignment_id=assignment_id,
            body={
                k: v
                for k, v in body.items()
                if k in ("description", "osPolicies", "instanceFilter", "rollout")
            },
            revision_id=uuid.uuid4().hex[:8],
            revision_created=now,
            uid=str(uuid.uuid4()),
            rollout_started=now,
        )
        zone_hosts = [h for h in hosts if h.region == zone]
        self._schedule(assignment, select(zone_hosts, body["instanceFilter"]), now)
        self.assignments[name] = assignment
        return self._operation(assignment, "CREATE", now, assignment.rollout_ends or now)

    def update(
        self,
        project: str,
        zone: str,
        assignment_id: str,
        body: dict[str, Any],
        paths: list[str],
        now: float,
    ) -> Operation:
        """UpdateOSPolicyAssignment: "creates a new revision of the OS policy assignment" and a rollout when
        the update changes ``instance_filter`` or ``os_policies`` (the proto's ``rollout`` field); with an
        ``update_mask`` only its fields change. An ``etag`` given must match the server's. Reports are of
        the revision the VM last ran: a VM the new rollout has not reached yet has none (fleetsim keeps no
        history of revisions)."""
        assignment = self.get(project, zone, assignment_id, now)
        if assignment.deleted_at is not None:
            raise NotFound(f"Resource not found: {assignment.name}")
        etag = body.get("etag")
        if etag and etag != f"{assignment.uid[:8]}-{assignment.revision_id}":
            raise FailedPrecondition(f"etag {etag!r} does not match the OS policy assignment's")
        fields = {"description": "description", "os_policies": "osPolicies"}
        fields |= {"instance_filter": "instanceFilter", "rollout": "rollout"}
        wanted = [fields.get(p, p) for p in paths] if paths else list(fields.values())
        unknown = [p for p in wanted if p not in fields.values()]
        _require(not unknown, f"update_mask: fields that cannot be updated: {unknown}")
        merged = dict(assignment.body)
        for key in wanted:
            if key in body:
                merged[key] = body[key]
            else:
                merged.pop(key, None)
        validate_assignment(assignment_id, merged)
        changed = any(merged.get(k) != assignment.body.get(k) for k in ("osPolicies", "instanceFilter"))
        assignment.body = merged
        if not changed:
            return self._operation(assignment, "UPDATE", now, now)
        assignment.revision_id = uuid.uuid4().hex[:8]
        assignment.revision_created = assignment.rollout_started = now
        assignment.rollout_error, assignment.runs = "", []
        hosts = [h for h in self.instances.project_instances(project) if h.region == zone]
        self._schedule(assignment, select(hosts, merged["instanceFilter"]), now)
        return self._operation(assignment, "UPDATE", now, assignment.rollout_ends or now)

    def delete(self, project: str, zone: str, assignment_id: str, now: float) -> Operation:
        assignment = self.get(project, zone, assignment_id)
        assignment.deleted_at = now + self.state.timings.command_pending_seconds
        return self._operation(assignment, "DELETE", now, assignment.deleted_at)

    def _operation(self, assignment: Assignment, method: str, now: float, ends: float) -> Operation:
        name = f"{assignment.name}/operations/{uuid.uuid4()}"
        operation = Operation(
            name, assignment, method, now, ends, "" if method == "DELETE" else assignment.rollout_error
        )
        self.operations[name] = operation
        return operation

    def get(self, project: str, zone: str, assignment_id: str, now: float | None = None) -> Assignment:
        self.instances.project_instances(project)
        name = f"projects/{project}/locations/{zone}/osPolicyAssignments/{assignment_id.split('@', 1)[0]}"
        assignment = self.assignments.get(name)
        at = self.state.clock() if now is None else now
        if assignment is None or (assignment.deleted_at is not None and at >= assignment.deleted_at):
            raise NotFound(f"Resource not found: {name}")
        return assignment

    def listed(self, project: str, zone: str, now: float) -> list[Assignment]:
        self.instances.project_instances(project)
        return sorted(
            (
                a
                for a in self.assignments.values()
                if a.project == project and a.zone == zone and (a.deleted_at is None or now < a.deleted_at)
            ),
            key=lambda a: a.name,
        )

    def operation(self, name: str) -> Operation:
        operation = self.operations.get(name)
        if operation is None:
            raise NotFound(f"Resource not found: {name}")
        return operation

    # -- rollout ---------------------------------------------------------------------------------------
    def _schedule(self, assignment: Assignment, hosts: list[SimHost], now: float) -> None:
        rollout = assignment.body["rollout"]
        budget_spec = rollout["disruptionBudget"]
        targets = sorted(hosts, key=lambda h: h.name)
        agents = [h for h in targets if h.agent_status == "ACTIVE"]
        if "fixed" in budget_spec:
            budget = int(budget_spec["fixed"])
        else:
            budget = max(1, math.ceil(len(agents) * int(budget_spec["percent"]) / 100))
        min_wait = _seconds(rollout.get("minWaitDuration", "0s"))
        lo, hi = self.state.timings.invocation_seconds
        start = now + self.state.timings.command_pending_seconds
        free: list[float] = [start] * budget  # when each slot frees up
        stuck = 0
        end = start
        for host in targets:
            run = VmRun(host=host, run_id=str(uuid.uuid4()))
            assignment.runs.append(run)
            if host.agent_status != "ACTIVE":
                run.started_at = run.ended_at = start
                continue
            if stuck >= budget:
                continue  # the budget is held by non-compliant VMs: never reached
            free.sort()
            begin = free.pop(0)
            run.started_at = begin
            run.ended_at = begin + lo + (hi - lo) * _stable_fraction(assignment.uid, host.host_id)
            run.compliant = self._will_comply(assignment, host)
            end = max(end, run.ended_at)
            if run.compliant:
                free.append(run.ended_at + min_wait)
                end = max(end, run.ended_at + min_wait)
            else:
                stuck += 1  # keeps its slot until the rollout ends
        if stuck >= budget and any(r.started_at is None for r in assignment.runs):
            never = sum(1 for r in assignment.runs if r.started_at is None)
            assignment.rollout_error = (
                f"Rollout stopped: {stuck} VM(s) non-compliant hold the disruption budget of {budget}; "
                f"{never} VM(s) were not reached"
            )
        assignment.rollout_ends = end

    def _will_comply(self, assignment: Assignment, host: SimHost) -> bool:
        """Whether the VM ends compliant, decided when the rollout is laid out (as the outcome it will
        report; the effect happens at the run's end)."""
        compliances = self._evaluate(assignment, host, at=None)
        return all(c["complianceState"] == "COMPLIANT" for c in compliances)

    def advance(self, now: float) -> None:
        with self.state.lock:
            for assignment in list(self.assignments.values()):
                for run in assignment.runs:
                    if not run.applied and run.ended_at is not None and run.ended_at <= now:
                        run.applied = True
                        run.compliances = self._evaluate(assignment, run.host, at=run.ended_at)

    # -- one VM --------------------------------------------------------------------------------------------
    def _evaluate(self, assignment: Assignment, host: SimHost, at: float | None) -> list[dict[str, Any]]:
        """Each OS policy's compliance on the VM; with ``at``, apply the enforcement (once, at its end)."""
        if host.agent_status != "ACTIVE":
            return [
                {
                    "osPolicyId": p["id"],
                    "complianceState": "UNKNOWN",
                    "complianceStateReason": "no-agent-detected",
                }
                for p in assignment.body["osPolicies"]
            ]
        return [self._policy(assignment, policy, host, at) for policy in assignment.body["osPolicies"]]

    def _policy(
        self, assignment: Assignment, policy: dict[str, Any], host: SimHost, at: float | None
    ) -> dict[str, Any]:
        group = next(
            (g for g in policy["resourceGroups"] if _inventory_match(g.get("inventoryFilters"), host)), None
        )
        if group is None:
            state = "COMPLIANT" if policy.get("allowNoResourceGroupMatch") else "NON_COMPLIANT"
            return {"osPolicyId": policy["id"], "complianceState": state, "osPolicyResourceCompliances": []}
        rows = []
        failed = False
        for resource in group["resources"]:
            if failed:
                rows.append(
                    {
                        "osPolicyResourceId": resource["id"],
                        "complianceState": "UNKNOWN",
                        "complianceStateReason": "execution-skipped-by-agent",
                        "configSteps": [],
                    }
                )
                continue
            row = self._resource(assignment, policy, resource, host, at)
            failed = row["complianceState"] != "COMPLIANT"
            rows.append(row)
        states = {r["complianceState"] for r in rows}
        if "UNKNOWN" in states:
            overall = {"complianceState": "UNKNOWN", "complianceStateReason": "resource-execution-errors"}
        elif "NON_COMPLIANT" in states:
            overall = {"complianceState": "NON_COMPLIANT"}
        else:
            overall = {"complianceState": "COMPLIANT"}
        return {"osPolicyId": policy["id"], **overall, "osPolicyResourceCompliances": rows}

    def _resource(
        self,
        assignment: Assignment,
        policy: dict[str, Any],
        resource: dict[str, Any],
        host: SimHost,
        at: float | None,
    ) -> dict[str, Any]:
        rid = resource["id"]
        stages = resource.get("exec") or {}
        windows = host.platform.platform_type == "Windows"
        call = installer_call(stages.get("enforce"))
        cmd = windows and any(
            (stages.get(s) or {}).get("interpreter") == "SHELL" for s in ("validate", "enforce")
        )
        if call is None or cmd:
            why = (
                "a SHELL script on Windows (cmd.exe)"
                if call
                else "only an exec resource that runs falcon-installer"
            )
            return {
                "osPolicyResourceId": rid,
                "complianceState": "UNKNOWN",
                "complianceStateReason": "execution-errors",
                "configSteps": [
                    {"type": "VALIDATION", "errorMessage": f"fleetsim does not emulate this resource: {why}"}
                ],
            }
        steps: list[dict[str, Any]] = [{"type": "VALIDATION"}]
        failure = stage_failure(stages.get("validate"), windows)
        if failure is not None:  # the agent's checkState: any code but 100 or 101 is an error
            code, stderr = failure
            message = f"unexpected return code from validate: {code}, stdout: , stderr: {stderr}"
            steps.append({"type": "DESIRED_STATE_CHECK", "errorMessage": message})
            return {
                "osPolicyResourceId": rid,
                "complianceState": "UNKNOWN",
                "complianceStateReason": "execution-errors",
                "configSteps": steps,
            }
        steps.append({"type": "DESIRED_STATE_CHECK"})
        wanted = call.flags.get("--sensor-version", "")
        if self._in_desired_state(host, wanted):
            return {"osPolicyResourceId": rid, "complianceState": "COMPLIANT", "configSteps": steps}
        if policy["mode"] == "VALIDATION":
            return {"osPolicyResourceId": rid, "complianceState": "NON_COMPLIANT", "configSteps": steps}
        failure = stage_failure(stages.get("enforce"), windows)
        if failure is not None:  # the script never ran: nothing installed
            exit_code = failure[0]
            message = f"enforce exited {exit_code}: {failure[1] or 'the agent could not run the script'}"
        else:
            exit_code, message = self._enforce(assignment, call, host, at)
        steps.append(
            {"type": "DESIRED_STATE_ENFORCEMENT"}
            if exit_code == 100
            else {"type": "DESIRED_STATE_ENFORCEMENT", "errorMessage": message}
        )
        if exit_code != 100:
            return {"osPolicyResourceId": rid, "complianceState": "NON_COMPLIANT", "configSteps": steps}
        steps.append({"type": "DESIRED_STATE_CHECK_POST_ENFORCEMENT"})
        return {"osPolicyResourceId": rid, "complianceState": "COMPLIANT", "configSteps": steps}

    @staticmethod
    def _in_desired_state(host: SimHost, version: str) -> bool:
        sensor = host.falcon
        if sensor is None:
            return False
        if not version:
            return True
        current = sensor.upgrade_to or sensor.version
        return current.split(".")[:3] == version.split(".")[:3]

    def _enforce(
        self, assignment: Assignment, call: InstallerCall, host: SimHost, at: float | None
    ) -> tuple[int, str]:
        """(enforce's exit code, its error message); runs falcon-installer when ``at`` is given."""
        options, error = self._options(call, host)
        if error:
            code, message = 1, error
        elif at is None:  # planning: the outcome without the effect
            run = falcon_installer.run(self.state, host, options, via="", at=0.0, dry_run=True)
            code, message = run.exit_code, run.log.strip()
        else:
            run = falcon_installer.run(
                self.state, host, options, via=f"gcp:osPolicyAssignment:{assignment.name}", at=at
            )
            code, message = run.exit_code, run.log.strip()
            host.actions.append(
                {
                    "at": rfc3339(at),
                    "action": "gcp.osPolicyAssignment",
                    "assignment": assignment.name,
                    "revision_id": assignment.revision_id,
                    "installer_log": run.log,
                    "exit_code": run.exit_code,
                    "secrets_in_clear": sorted(f for f in call.flags if f in CLEAR_SECRET_FLAGS),
                }
            )
        if code == 0 and call.exits_100 in ("on_success", "always"):
            return 100, ""
        if code != 0 and call.exits_100 == "always":
            return 100, ""
        exit_code = code if call.otherwise is None else call.otherwise
        if exit_code == 0:
            output = f" (falcon-installer exited {code}: {message})" if code else ""
            return 0, "enforce exited 0: an ExecResource's enforce must exit 100 to report success" + output
        return exit_code, f"enforce exited {exit_code}: {message}"

    def _options(self, call: InstallerCall, host: SimHost) -> tuple[falcon_installer.InstallerOptions, str]:
        flags = dict(call.flags)
        project = flags.get("--gcp-project-id")
        values: dict[str, str] = {}
        if project is not None:
            if project != host.account or project not in self.secrets:
                return falcon_installer.InstallerOptions(), (
                    f"failed to get secrets: access denied to Secret Manager in project '{project}'"
                )
            for name, value in self.secrets[project].items():
                key = name.lower().replace("-", "_")
                if key.startswith("falcon_"):
                    values[key.removeprefix("falcon_")] = value

        def pick(flag: str, key: str, default: str = "") -> str:
            return flags.get(flag) or values.get(key) or default

        options = falcon_installer.InstallerOptions(
            client_id=pick("--client-id", "client_id"),
            client_secret=pick("--client-secret", "client_secret"),
            access_token=pick("--access-token", "access_token"),
            member_cid=pick("--member-cid", "member_cid"),
            sensor_update_policy=pick("--sensor-update-policy", "sensor_update_policy", "platform_default"),
            sensor_version=pick("--sensor-version", "sensor_version"),
            cid=pick("--cid", "cid"),
            update=flags.get("--update") == "true" or flags.get("--upgrade") == "true",
        )
        if not options.access_token and not options.client_secret:
            return options, "the Client Secret must be specified"
        return options, ""

    # -- wire ----------------------------------------------------------------------------------------------
    def assignment_body(self, assignment: Assignment, now: float) -> dict[str, Any]:
        state = assignment.rollout_state(now)
        body = dict(assignment.body)
        deleting = assignment.deleted_at is not None
        body.update(
            name=assignment.name,
            revisionId=assignment.revision_id,
            revisionCreateTime=rfc3339(assignment.revision_created),
            etag=f"{assignment.uid[:8]}-{assignment.revision_id}",
            rolloutState="IN_PROGRESS" if deleting else state,
            baseline=state == "SUCCEEDED" and not deleting,
            deleted=deleting,
            reconciling=state == "IN_PROGRESS" or deleting,
            uid=assignment.uid,
        )
        return body

    def report_body(self, assignment: Assignment, run: VmRun) -> dict[str, Any]:
        host = run.host
        return {
            "name": (
                f"projects/{assignment.project}/locations/{assignment.zone}/instances/{host.host_id}"
                f"/osPolicyAssignments/{assignment.assignment_id}/report"
            ),
            "instance": host.name,
            "osPolicyAssignment": f"{assignment.name}@{assignment.revision_id}",
            "osPolicyCompliances": run.compliances or [],
            "updateTime": rfc3339(run.ended_at or assignment.rollout_started),
            "lastRunId": run.run_id,
        }

    def reports(
        self, project: str, zone: str, instance: str, assignment_id: str, now: float
    ) -> list[dict[str, Any]]:
        """The reports of the instance (``-``: all) for the assignment (``-``: all) the rollouts reached."""
        self.instances.project_instances(project)
        rows = []
        for assignment in self.listed(project, zone, now):
            if assignment_id not in ("-", assignment.assignment_id):
                continue
            for run in assignment.runs:
                if instance not in ("-", run.host.name, run.host.host_id):
                    continue
                if run.applied or (
                    run.host.agent_status != "ACTIVE" and run.started_at is not None and now >= run.started_at
                ):
                    if run.compliances is None:
                        run.compliances = self._evaluate(assignment, run.host, at=None)
                    rows.append(self.report_body(assignment, run))
        return rows

    def operation_body(self, operation: Operation, now: float, render: Any) -> dict[str, Any]:
        assignment = operation.assignment
        done = now >= operation.ends
        if operation.method != "DELETE":
            rollout = assignment.rollout_state(now)
        else:
            rollout = "SUCCEEDED" if done else "IN_PROGRESS"
        body: dict[str, Any] = {
            "name": operation.name,
            "metadata": {
                "@type": METADATA_TYPE,
                "osPolicyAssignment": f"{assignment.name}@{assignment.revision_id}",
                "apiMethod": operation.method,
                "rolloutState": rollout,
                "rolloutStartTime": rfc3339(operation.started),
                "rolloutUpdateTime": rfc3339(min(now, operation.ends)),
            },
            "done": done,
        }
        if done and operation.error:
            body["error"] = {"code": 10, "message": operation.error}  # google.rpc.Code ABORTED
        elif done and operation.method != "DELETE":
            body["response"] = {"@type": ASSIGNMENT_TYPE, **render(self.assignment_body(assignment, now))}
        elif done:
            body["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return body


def select(hosts: list[SimHost], instance_filter: dict[str, Any]) -> list[SimHost]:
    """The zone's VMs an assignment's instance filter selects (criteria ANDed)."""
    if instance_filter.get("all"):
        return list(hosts)
    chosen = []
    for host in hosts:
        labels = instance_labels(host)
        inclusion = instance_filter.get("inclusionLabels") or []
        if inclusion and not any(
            all(labels.get(k) == v for k, v in s.get("labels", {}).items()) for s in inclusion
        ):
            continue
        exclusion = instance_filter.get("exclusionLabels") or []
        if any(all(labels.get(k) == v for k, v in s.get("labels", {}).items()) for s in exclusion):
            continue
        inventories = instance_filter.get("inventories") or []
        if inventories and not _inventory_match(inventories, host):
            continue
        if not (inclusion or exclusion or inventories):
            continue  # an empty filter selects nothing
        chosen.append(host)
    return chosen


def _inventory_match(filters: list[dict[str, Any]] | None, host: SimHost) -> bool:
    """Whether the VM's inventory (OS short name and version) matches any of the filters (none: all)."""
    if not filters:
        return True
    from fleetsim.gcp.osconfig.models import os_short_name_and_version

    short, version = os_short_name_and_version(host)
    for f in filters:
        if f.get("osShortName", "").lower() != short:
            continue
        wanted = f.get("osVersion", "")
        if not wanted or version == wanted or (wanted.endswith("*") and version.startswith(wanted[:-1])):
            return True
    return False
