"""The documents include/terraform's modules build, as Terraform would render them for given inputs.

Pure functions, no I/O but reading the modules' own data files. ``policy_json`` renders the statements
:mod:`fleetsim.terraform.hcl` reads from a module's ``aws_iam_policy_document`` blocks; the Falcon
document's content and the launch template's user data mirror one expression each (named at each
function), which tests/fleetsim/test_terraform_apply.py holds to ``terraform console``'s own rendering
where Terraform is installed.

- ``jsonencode``: Terraform's function, "JSON encoding" with object attributes in lexical order and the
  characters <, > and & escaped as \\u003c, \\u003e, \\u0026, as its Go encoder writes them
  (https://developer.hashicorp.com/terraform/language/functions/jsonencode).
- ``aws_iam_policy_document``'s ``json``: the provider's rendering, indented, ``Version`` then
  ``Statement``; a one-element action, resource, principal or condition value list becomes a string
  (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/data-sources/iam_policy_document).
  The provider does not document its order for set-valued actions and resources; fleetsim sorts them
  (IAM evaluates them as sets).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IAM_VERSION = "2012-10-17"


def jsonencode(value: Any) -> str:
    """Terraform's ``jsonencode``: compact, keys sorted, <, > and & escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def base64encode(text: str) -> str:
    """Terraform's ``base64encode`` of a string (its UTF-8 bytes)."""
    return base64.b64encode(text.encode()).decode()


@dataclass(frozen=True)
class Statement:
    """One ``statement`` block of an ``aws_iam_policy_document``."""

    actions: Sequence[str]
    resources: Sequence[str] = ()
    sid: str = ""
    effect: str = "Allow"
    principals: Mapping[str, Sequence[str]] = field(default_factory=dict)
    conditions: Sequence[tuple[str, str, Sequence[str]]] = ()  # (test, variable, values)


def _one_or_many(values: Sequence[str]) -> str | list[str]:
    ordered = sorted(set(values))
    return ordered[0] if len(ordered) == 1 else ordered


def policy_json(statements: Sequence[Statement]) -> str:
    """The ``json`` attribute of an ``aws_iam_policy_document`` with these statements."""
    rendered = []
    for s in statements:
        out: dict[str, Any] = {}
        if s.sid:
            out["Sid"] = s.sid
        out["Effect"] = s.effect
        out["Action"] = _one_or_many(s.actions)
        if s.resources:
            out["Resource"] = _one_or_many(s.resources)
        if s.principals:
            out["Principal"] = {kind: _one_or_many(ids) for kind, ids in sorted(s.principals.items())}
        if s.conditions:
            condition: dict[str, dict[str, Any]] = {}
            for test, variable, values in s.conditions:
                condition.setdefault(test, {})[variable] = _one_or_many(values)
            out["Condition"] = condition
        rendered.append(out)
    return json.dumps({"Version": IAM_VERSION, "Statement": rendered}, indent=2)


# -- modules/launch_template -----------------------------------------------------------------------
def user_data(module_dir: Path, region: str) -> str:
    """modules/launch_template's ``base64encode(templatefile("${path.module}/user_data.sh.tftpl",
    { region = data.aws_region.current.region }))``."""
    template = (module_dir / "user_data.sh.tftpl").read_text()
    rendered = template.replace("${region}", region)
    if "${" in rendered or "%{" in rendered:
        raise ValueError("user_data.sh.tftpl uses template syntax fleetsim does not render (only ${region})")
    return base64encode(rendered)


# -- modules/falcon_install_document ---------------------------------------------------------------
PARAMETER_NAME_PATTERN = "^/[A-Za-z0-9_./-]{1,1010}$"


def falcon_content(module_dir: Path, cid_parameter_name: str, installation_token_parameter_name: str) -> str:
    """modules/falcon_install_document's ``jsonencode(local.content)``: the Falcon install document."""
    scripts = module_dir / "scripts"

    def parameter(description: str, **extra: Any) -> dict[str, Any]:
        return {"type": "String", "description": description, **extra, "interpolationType": "ENV_VAR"}

    content = {
        "schemaVersion": "2.2",
        "description": (
            "Install the CrowdStrike Falcon sensor, register it with the tenant's CID, verify it runs."
        ),
        "parameters": {
            "InstallerUrl": parameter(
                "s3:// or https:// URL of the sensor package for the host's OS (rpm, deb or exe).",
                allowedPattern="^(s3|https)://[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+$",
            ),
            "InstallerSha256": parameter(
                "SHA-256 of the package; the install stops when it differs.", allowedPattern="^[0-9a-f]{64}$"
            ),
            "CidParameterName": parameter(
                "SecureString parameter holding the CID.",
                default=cid_parameter_name,
                allowedPattern=PARAMETER_NAME_PATTERN,
            ),
            "TokenParameterName": parameter(
                "SecureString parameter holding the installation token.",
                default=installation_token_parameter_name,
                allowedPattern=PARAMETER_NAME_PATTERN,
            ),
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "installFalconLinux",
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                # split("\n", file(...)): a trailing newline leaves a last, empty element.
                "inputs": {
                    "runCommand": (scripts / "install-linux.sh").read_text().split("\n"),
                    "timeoutSeconds": 1200,
                },
            },
            {
                "action": "aws:runPowerShellScript",
                "name": "installFalconWindows",
                "precondition": {"StringEquals": ["platformType", "Windows"]},
                "inputs": {
                    "runCommand": (scripts / "install-windows.ps1").read_text().split("\n"),
                    "timeoutSeconds": 1200,
                },
            },
        ],
    }
    return jsonencode(content)
