"""Command documents as SSM Run Command runs them: the parameters SendCommand accepts, and what the
Falcon install document (include/terraform/modules/falcon_install_document) does on each instance.

Parameters (user guide, "Data elements and parameters",
https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-syntax-data-elements-parameters.html;
API reference, SendCommand, https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html):
every parameter given must be one the document declares, every declared parameter without a ``default``
must be given, a ``String`` takes one value, and a value must match the parameter's ``allowedPattern`` and
be one of its ``allowedValues`` when it has them. Otherwise SendCommand fails with ``InvalidParameters``
("You must specify values for all required parameters in the Amazon Web Services Systems Manager document
(SSM document). You can only supply values to parameters defined in the SSM document."). The message names
the parameter and the rule, never the value given (no document says what AWS echoes; values may be
secrets-adjacent, so fleetsim echoes none).

The Falcon install document is recognised by what it runs: its ``aws:runShellScript`` and
``aws:runPowerShellScript`` steps carry the module's ``scripts/install-linux.sh`` and
``scripts/install-windows.ps1`` (as ``documents.falcon_content`` renders them), whatever the document is
named (Terraform names it; ``Patchcycle-FalconSensorInstall`` by default). fleetsim does not run scripts:
:class:`FalconDocumentRun` follows those two scripts step by step, with the inputs they read (the
``SSM_<parameter>`` environment variables, the installer from S3, the two SecureString parameters), and
ends in ``FleetState.install_falcon_sensor`` with the version of the installer the URL names (the Sensor
Download catalog's, identified by its bytes). Each outcome is the scripts' own: their exit codes and the
messages they and the tools they call write to stderr. See :meth:`FalconDocumentRun.plan`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from moto.core.exceptions import ServiceException
from moto.kms.models import kms_backends
from moto.s3.models import s3_backends
from moto.ssm.models import ssm_backends

from fleetsim.falcon.installers import Installer, InstallerCatalog, install_failure, package_problem
from fleetsim.fleet import Command, FleetState, Invocation, SimHost

MODULE_SCRIPTS = (
    Path(__file__).resolve().parents[2] / "include/terraform/modules/falcon_install_document/scripts"
)
LINUX_STEP, WINDOWS_STEP = "installFalconLinux", "installFalconWindows"
# The AWS managed key SecureString parameters use when no KeyId is given; its key policy lets every
# principal of the account that may use SSM decrypt through SSM ("AWS managed keys",
# https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#aws-managed-key).
AWS_MANAGED_SSM_KEY = "alias/aws/ssm"


class InvalidParameters(ServiceException):
    code = "InvalidParameters"


class InvalidPluginName(ServiceException):
    code = "InvalidPluginName"


# -- parameters ---------------------------------------------------------------------------------------
def document_content(account: str, region: str, name: str) -> dict[str, Any] | None:
    """The default version's content of a document moto stores (None when it cannot be read)."""
    try:
        info = ssm_backends[account][region].get_document(name, None, None, "JSON")
    except Exception:  # noqa: BLE001 - moto raises its own exceptions for a missing document
        return None
    try:
        content = json.loads(info["Content"])
    except (KeyError, TypeError, ValueError):
        try:
            content = yaml.safe_load(info.get("Content", ""))
        except yaml.YAMLError:
            return None
    return content if isinstance(content, dict) else None


def validate_parameters(content: dict[str, Any], given: dict[str, list[str]]) -> dict[str, str]:
    """The values the run uses (given, else the defaults), or InvalidParameters naming what is wrong."""
    declared: dict[str, Any] = content.get("parameters") or {}
    if unknown := sorted(set(given) - set(declared)):
        raise InvalidParameters(f"Parameters {unknown} are not defined in the document")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        spec = spec or {}
        if name not in given:
            if "default" not in spec:
                raise InvalidParameters(f'Parameter "{name}" is required and has no default value')
            values[name] = str(spec["default"])
            continue
        raw = given[name]
        kind = spec.get("type", "String")
        if kind == "String" and len(raw) != 1:
            raise InvalidParameters(f'Parameter "{name}" is of type String and takes exactly one value')
        for value in raw:
            pattern = spec.get("allowedPattern")
            if pattern and not re.search(pattern, value):
                raise InvalidParameters(f'Parameter "{name}" does not match its allowedPattern {pattern}')
            allowed = spec.get("allowedValues")
            if allowed and value not in allowed:
                raise InvalidParameters(f'Parameter "{name}" must be one of its allowedValues {allowed}')
        values[name] = raw[0] if raw else ""
    return values


# -- the Falcon install document -----------------------------------------------------------------------
def _script(step: dict[str, Any]) -> list[str]:
    return list((step.get("inputs") or {}).get("runCommand") or [])


def is_falcon_document(content: dict[str, Any]) -> bool:
    """Whether a document runs the Falcon install module's two scripts (its own steps, by name)."""
    steps = {s.get("name"): s for s in content.get("mainSteps") or [] if isinstance(s, dict)}
    linux, windows = steps.get(LINUX_STEP), steps.get(WINDOWS_STEP)
    if linux is None or windows is None:
        return False
    try:
        want_linux = (MODULE_SCRIPTS / "install-linux.sh").read_text().split("\n")
        want_windows = (MODULE_SCRIPTS / "install-windows.ps1").read_text().split("\n")
    except OSError:
        return False
    return _script(linux) == want_linux and _script(windows) == want_windows


@dataclass
class StepResult:
    """One document step on one instance: its exit code and output streams, or skipped."""

    name: str
    skipped: bool = False
    response_code: int = 0
    stdout: str = ""
    stderr: str = ""

    @property
    def failed(self) -> bool:
        return not self.skipped and self.response_code != 0


@dataclass
class FalconPlan:
    """What the install step does on one instance, decided when the command is sent."""

    step: StepResult
    installer: Installer | None = None
    cid: str | None = None  # the value the CID parameter holds (never shown anywhere)
    registers: bool = False  # the script reaches falconctl / the installer with a CID
    package_only: bool = False  # the package got installed, but the script failed before the CID
    rfm: bool = False


@dataclass
class FalconDocumentRun:
    """The Falcon install document on each instance of one command (``Command.document_run``)."""

    values: dict[str, str]
    catalog: InstallerCatalog
    plans: dict[str, FalconPlan] = field(default_factory=dict)

    # -- planning (SendCommand) --------------------------------------------------------------------------
    def plan(self, state: FleetState, command: Command, host: SimHost) -> FalconPlan:
        """Follow the host's script (``install-linux.sh`` or ``install-windows.ps1``) to its end.

        Deviation, stated: the real host reads the installer and the parameters when its invocation
        starts; fleetsim reads them when the command is sent, because SendCommand's MaxErrors stop point
        is laid out then. A parameter or object changed in between is read as it was at SendCommand.
        """
        windows = host.platform.platform_type == "Windows"
        step = StepResult(WINDOWS_STEP if windows else LINUX_STEP)
        plan = FalconPlan(step)
        url, sha = self.values.get("InstallerUrl", ""), self.values.get("InstallerSha256", "")
        content, fetch_error = _fetch(url, windows=windows)
        if fetch_error is not None:
            step.response_code, step.stderr = fetch_error
            return plan
        assert content is not None
        if hashlib.sha256(content).hexdigest() != sha:
            step.response_code = 1
            step.stderr = "sensor package checksum differs\n"
            return plan
        installer = self.catalog.by_content(content)
        plan.installer = installer
        if not windows:
            return self._linux(state, command, host, plan, url)
        return self._windows(state, command, host, plan)

    def _linux(
        self, state: FleetState, command: Command, host: SimHost, plan: FalconPlan, url: str
    ) -> FalconPlan:
        step, installer = plan.step, plan.installer
        # package="$workdir/falcon-sensor.${SSM_InstallerUrl##*.}": the URL's text after its last dot.
        extension = url.rsplit(".", 1)[-1] if "." in url else url
        package = f"falcon-sensor.{extension}"
        ubuntu = host.os_family.startswith("ubuntu")
        if extension == "rpm":
            if ubuntu:  # neither dnf nor yum on Ubuntu: `yum install` is "command not found"
                step.response_code, step.stderr = 127, "bash: line 1: yum: command not found\n"
                return plan
            if installer is None:
                step.response_code = 1
                step.stderr = f"error: {package}: not an rpm package (or package manifest)\n"
                return plan
        elif extension == "deb":
            if not ubuntu:
                step.response_code, step.stderr = 127, "bash: line 1: apt-get: command not found\n"
                return plan
            if installer is None:
                step.response_code = 100
                step.stderr = (
                    f"dpkg-deb: error: '{package}' is not a Debian format archive\n"
                    "E: Sub-process /usr/bin/dpkg returned an error code (1)\n"
                )
                return plan
        else:
            step.response_code = 1
            step.stderr = f"unsupported package type: /tmp/tmp.fleetsim/{package}\n"
            return plan
        assert installer is not None
        if (problem := package_problem(host, installer)) is not None:
            step.response_code, step.stderr = 1, f"Error: {problem}\n"
            return plan
        if state.falcon_install_fails(host):
            step.response_code, step.stderr = install_failure(installer)
            return plan
        plan.package_only = True  # the package is on the host from here on
        cid, error = _read_secure_strings(command, host, self.values)
        if error is not None:
            step.response_code, step.stderr = error
            return plan
        if not _valid_cid(cid or ""):
            step.response_code = 255
            step.stderr = "falconctl: the CID given is not valid (32 hexadecimal digits and a checksum)\n"
            return plan
        plan.cid, plan.registers, plan.package_only = cid, True, False
        # The script's last check: `falconctl -g --rfm-state | grep -q 'rfm-state=false'`.
        version = installer.version if installer.version.count(".") == 3 else f"{installer.version}.0"
        plan.rfm = state.sensor_rfm(host, version)
        if plan.rfm:
            step.response_code, step.stderr = 1, "sensor in reduced functionality mode\n"
        return plan

    def _windows(self, state: FleetState, command: Command, host: SimHost, plan: FalconPlan) -> FalconPlan:
        step, installer = plan.step, plan.installer
        # install-windows.ps1 reads both parameters before it starts the installer.
        cid, error = _read_secure_strings(command, host, self.values, windows=True)
        if error is not None:
            step.response_code, step.stderr = error
            return plan
        if installer is None or (problem := package_problem(host, installer)) is not None:
            step.response_code = 1
            what = problem if installer is not None else "WindowsSensor.exe is not a valid Win32 application"
            step.stderr = f"{what}\n"
            return plan
        if state.falcon_install_fails(host):
            code, _ = install_failure(installer)
            step.response_code, step.stderr = 1, f"sensor installer exited with {code}\n"
            return plan
        if not _valid_cid(cid or ""):
            # No document gives the installer's exit code for a malformed CID; 1639 is Windows
            # Installer's "invalid command line argument" (https://learn.microsoft.com/windows/win32/msi/error-codes).
            step.response_code, step.stderr = 1, "sensor installer exited with 1639\n"
            return plan
        plan.cid, plan.registers = cid, True
        return plan

    def fails(self, host: SimHost) -> bool:
        plan = self.plans.get(host.host_id)
        return plan is not None and plan.step.failed

    # -- applying (the invocation's end) ---------------------------------------------------------------
    def apply(self, state: FleetState, command: Command, inv: Invocation, host: SimHost) -> dict[str, Any]:
        """Make the invocation's effect happen: the sensor installed (or not); fill its output."""
        plan = self.plans[host.host_id]
        step = plan.step
        via = f"ssm:{command.document_name}:{command.command_id}"
        effect: dict[str, Any] = {"exit_code": step.response_code}
        if plan.registers and plan.installer is not None and plan.cid is not None:
            result = state.install_falcon_sensor(
                host, plan.installer.version, plan.cid, via=via, at=inv.ended_at
            )
            effect["falcon"] = result["result"]
            if not step.failed:
                if host.platform.platform_type == "Windows":
                    step.stdout = "falcon sensor installed and running\n"
                else:
                    step.stdout = f"falcon sensor installed: aid={result.get('device_id', '')}\n"
        elif plan.package_only and plan.installer is not None:
            # The package is installed, but the script stopped before it gave the sensor a CID: the
            # sensor does not start and never registers.
            host.actions.append(
                {
                    "at": dt.datetime.fromtimestamp(inv.ended_at, dt.UTC).isoformat(),
                    "action": "falcon.install",
                    "via": via,
                    "version": plan.installer.version,
                    "result": "package_only",
                    "message": "sensor package installed without a CID: the sensor is not running",
                }
            )
            effect["falcon"] = "package_only"
        inv.response_code = step.response_code
        inv.output = step.stdout + (f"\n----------ERROR-------\n{step.stderr}" if step.stderr else "")
        return effect

    def steps(self, inv: Invocation) -> list[StepResult]:
        """Both steps of an invocation in document order: the one that ran and the one skipped."""
        plan = self.plans.get(inv.instance_id)
        if plan is None:  # never delivered (the agent was offline): neither step ran
            return [StepResult(LINUX_STEP, response_code=-1), StepResult(WINDOWS_STEP, response_code=-1)]
        ran = plan.step
        skipped_name = LINUX_STEP if ran.name == WINDOWS_STEP else WINDOWS_STEP
        platform = "Linux" if skipped_name == LINUX_STEP else "Windows"
        skipped = StepResult(
            skipped_name,
            skipped=True,
            stdout=(
                "Step execution skipped due to unsatisfied preconditions: "
                f"'\"StringEquals\": [platformType, {platform}]'. Step name: {skipped_name}"
            ),
        )
        return [ran, skipped] if ran.name == LINUX_STEP else [skipped, ran]


def _valid_cid(value: str) -> bool:
    return re.fullmatch(r"[0-9A-Fa-f]{32}(-[0-9A-Fa-f]{2})?", value.strip()) is not None


def _fetch(url: str, *, windows: bool) -> tuple[bytes | None, tuple[int, str] | None]:
    """The installer's bytes as the script fetches them (``aws s3 cp`` / curl, Copy-S3Object /
    Invoke-WebRequest), or (exit code, stderr) of the failing fetch.

    fleetsim does not evaluate the instance profile's S3 permissions (as for AWS-RunPatchBaseline's
    InstallOverrideList): an ``s3://`` object that exists is read. An ``https://`` URL is fetched
    anonymously, as curl does: an S3 URL reaches the object only when it is presigned (``X-Amz-Signature``),
    otherwise S3 answers 403 (private buckets, "Blocking public access",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html); any
    other host cannot be reached from fleetsim's instances (curl's exit 6, "Couldn't resolve host").
    """
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        bucket, key = parsed.netloc, unquote(parsed.path.lstrip("/"))
        return _s3_object(bucket, key, cli=not windows)
    host = parsed.hostname or ""
    s3_host = re.fullmatch(
        r"(?:(?P<vbucket>[^.]+)\.)?s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com", host
    )
    if s3_host is None:
        if windows:
            return None, (1, f"Invoke-WebRequest : The remote name could not be resolved: '{host}'\n")
        return None, (6, f"curl: (6) Could not resolve host: {host}\n")
    if "X-Amz-Signature" not in parsed.query:
        if windows:
            return None, (1, "Invoke-WebRequest : The remote server returned an error: (403) Forbidden.\n")
        return None, (22, "curl: (22) The requested URL returned error: 403\n")
    if s3_host["vbucket"]:
        bucket, key = s3_host["vbucket"], unquote(parsed.path.lstrip("/"))
    else:
        bucket, _, key = unquote(parsed.path.lstrip("/")).partition("/")
    content, error = _s3_object(bucket, key, cli=False)
    if error is not None:
        return None, (
            (1, "Invoke-WebRequest : The remote server returned an error: (404) Not Found.\n")
            if windows
            else (22, "curl: (22) The requested URL returned error: 404\n")
        )
    return content, None


def _s3_object(bucket: str, key: str, *, cli: bool) -> tuple[bytes | None, tuple[int, str] | None]:
    owner = s3_backends.bucket_accounts.get(bucket)
    obj = None
    if owner is not None:
        partition, account = owner
        try:
            obj = s3_backends[account][partition].get_object(bucket, key)
        except Exception:  # noqa: BLE001 - moto raises MissingKey / MissingBucket
            obj = None
    if obj is None:
        if cli:  # `aws s3 cp` (AWS CLI) on a missing object
            return None, (
                1,
                "fatal error: An error occurred (404) when calling the HeadObject operation: "
                f'Key "{key}" does not exist\n',
            )
        return None, (1, f"Copy-S3Object : The specified key does not exist. (s3://{bucket}/{key})\n")
    return bytes(obj.value), None


def _read_secure_strings(
    command: Command, host: SimHost, values: dict[str, str], *, windows: bool = False
) -> tuple[str | None, tuple[int, str] | None]:
    """Read the CID and the token parameters as the host does (``aws ssm get-parameter --with-decryption``
    / ``Get-SSMParameter -WithDecryption``) in its own account and region; (CID, None) or (None, error).

    Decryption: a SecureString under the AWS managed key ``alias/aws/ssm`` decrypts for any principal the
    account lets use SSM; under a customer managed key, only when the key policy allows ``kms:Decrypt``
    to the caller. The instances' role holds AmazonSSMManagedInstanceCore, which grants no ``kms:Decrypt``
    (its policy document, https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonSSMManagedInstanceCore.html),
    so fleetsim reads a customer managed key as decryptable only when its key policy allows
    ``kms:Decrypt`` (or ``kms:*``) to every principal (``"*"``): the conservative reading.
    The AWS CLI exits 254 on a service error (CLI v2, Amazon Linux 2023 and the others) and 255 on
    Amazon Linux 2, which ships CLI v1 ("Return codes", https://docs.aws.amazon.com/cli/latest/topic/return-codes.html).
    """
    backend = ssm_backends[command.account][command.region]
    cli_code = 255 if host.os_family == "amazon_linux_2" else 254
    read: dict[str, str] = {}
    for key in ("CidParameterName", "TokenParameterName"):
        name = values.get(key, "")
        parameter = backend.get_parameter(name)
        if parameter is None:
            message = (
                "An error occurred (ParameterNotFound) when calling the GetParameter operation: "
                f"Parameter {name} not found."
            )
            return None, ((1, f"Get-SSMParameter : {message}\n") if windows else (cli_code, f"\n{message}\n"))
        if parameter.parameter_type == "SecureString" and not _decryptable(
            command, parameter.keyid or AWS_MANAGED_SSM_KEY
        ):
            message = (
                "An error occurred (AccessDeniedException) when calling the GetParameter operation: "
                f"User: arn:aws:sts::{command.account}:assumed-role/instance-role/{host.host_id} is not "
                f"authorized to perform: kms:Decrypt on the key of parameter {name} because no "
                "resource-based policy allows the kms:Decrypt action"
            )
            return None, ((1, f"Get-SSMParameter : {message}\n") if windows else (cli_code, f"\n{message}\n"))
        read[key] = parameter.decrypt(parameter.value) or ""
    return read["CidParameterName"], None


def _decryptable(command: Command, key_id: str) -> bool:
    if key_id == AWS_MANAGED_SSM_KEY or key_id.endswith(":alias/aws/ssm"):
        return True
    try:
        kms = kms_backends[command.account][command.region]
        key = kms.describe_key(key_id)
        policy = json.loads(key.policy)
    except Exception:  # noqa: BLE001 - a key moto does not know: not decryptable
        return False
    for statement in policy.get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        principal = statement.get("Principal")
        everyone = principal == "*" or (isinstance(principal, dict) and principal.get("AWS") in ("*", ["*"]))
        if statement.get("Effect") == "Allow" and everyone and ({"kms:Decrypt", "kms:*", "*"} & set(actions)):
            return True
    return False
