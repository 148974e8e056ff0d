"""Terraform's state file, format version 4, as Terraform 1.x writes it.

The format has no published specification; this follows Terraform's own reader and writer,
``internal/states/statefile/version4.go`` (https://github.com/hashicorp/terraform): top level
``version`` (4), ``terraform_version``, ``serial``, ``lineage``, ``outputs``, ``resources``,
``check_results``; each resource ``module`` (absent in the root module), ``mode``, ``type``, ``name``,
``each`` ("list" for count, "map" for for_each), ``provider`` (the provider configuration's absolute
address), ``instances``; each instance ``index_key`` (absent without count or for_each),
``schema_version``, ``attributes``, ``sensitive_attributes`` (paths of ``get_attr``/``index`` steps).
Resources are written sorted by module, mode, type and name, as Terraform sorts them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 4
AWS_PROVIDER = 'provider["registry.terraform.io/hashicorp/aws"]'


def provider_address(alias: str | None = None) -> str:
    """``provider["registry.terraform.io/hashicorp/aws"]``, with ``.alias`` for an aliased one."""
    return f"{AWS_PROVIDER}.{alias}" if alias else AWS_PROVIDER


def attribute_path(*steps: str | int) -> list[dict[str, Any]]:
    """A ``sensitive_attributes`` path: ``get_attr`` steps by name, ``index`` steps by number."""
    return [
        {"type": "index", "value": {"value": s, "type": "number"}}
        if isinstance(s, int)
        else {"type": "get_attr", "value": s}
        for s in steps
    ]


@dataclass
class StateResource:
    """One resource block's instances (one without count/for_each, else one per index key)."""

    module: str | None
    type: str
    name: str
    provider: str
    each: str | None = None  # "map" (for_each) or "list" (count)
    instances: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "managed"

    def add(
        self,
        attributes: Mapping[str, Any],
        *,
        schema_version: int = 0,
        index_key: str | int | None = None,
        sensitive: list[list[dict[str, Any]]] | None = None,
    ) -> None:
        instance: dict[str, Any] = {}
        if index_key is not None:
            instance["index_key"] = index_key
        instance["schema_version"] = schema_version
        instance["attributes"] = dict(attributes)
        instance["sensitive_attributes"] = sensitive or []
        self.instances.append(instance)

    @property
    def address(self) -> str:
        base = f"{self.type}.{self.name}" if self.mode == "managed" else f"data.{self.type}.{self.name}"
        return f"{self.module}.{base}" if self.module else base

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.module:
            out["module"] = self.module
        out.update({"mode": self.mode, "type": self.type, "name": self.name})
        if self.each:
            out["each"] = self.each
        out["provider"] = self.provider
        out["instances"] = self.instances
        return out


def state_file(
    resources: list[StateResource],
    *,
    terraform_version: str,
    serial: int,
    lineage: str,
    outputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The state file document for ``resources``."""
    ordered = sorted(resources, key=lambda r: (r.module or "", r.mode, r.type, r.name))
    return {
        "version": FORMAT_VERSION,
        "terraform_version": terraform_version,
        "serial": serial,
        "lineage": lineage,
        "outputs": dict(outputs or {}),
        "resources": [r.to_json() for r in ordered],
        "check_results": None,
    }


def dumps(document: Mapping[str, Any]) -> str:
    """The state file's text: Terraform writes it indented by two spaces, with a final newline."""
    return json.dumps(document, indent=2) + "\n"
