"""Just enough of Terraform's language to render what the modules' IAM policy documents declare.

A module's ``.tf`` files are read with python-hcl2 (installed with the project's tools: pyproject's dev
group, which ``uv sync`` installs with the fleetsim group). Its expressions come back as ``${...}``
text, evaluated here for the forms the modules use, and refused by name otherwise, so a module that
starts using another form stops fleetsim at start instead of being rendered wrong:

- references: ``var.x``, ``local.x``, ``each.key``/``each.value.x``, ``path.module``,
  ``data.<type>.<name>.<attribute>`` (the
  partition, region and caller account of the module's provider; ``aws_iam_policy_document``'s ``json``;
  other data sources only as the caller provides their values), ``aws_<type>.<name>.<attribute>`` only
  as the caller provides them;
- a conditional ``<reference> ? [1] : []`` (a ``dynamic`` block's ``for_each``);
- a for expression ``[for x in <reference> : "<template using x>"]``;
- string templates interpolating any of the above.

Terraform's language: https://developer.hashicorp.com/terraform/language/expressions (references,
conditional expressions, for expressions, string templates, dynamic blocks); the
``aws_iam_policy_document`` data source:
https://registry.terraform.io/providers/hashicorp/aws/latest/docs/data-sources/iam_policy_document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fleetsim.terraform.documents import Statement, policy_json

_BOOKKEEPING = ("__is_block__", "__comments__", "__inline_comments__")
_WHOLE = re.compile(r"^\$\{(?P<expr>.*)\}$", re.S)
_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
_REFERENCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)+$")
_CONDITIONAL = re.compile(r"^(?P<cond>[\w.]+)\s*\?\s*(?P<yes>\[[^\]]*\])\s*:\s*(?P<no>\[[^\]]*\])$")
_FOR = re.compile(
    r'^\[for\s+(?P<var>\w+)\s+in\s+(?P<seq>[\w.]+|values\([\w.]+\))\s*:\s*"(?P<template>.*)"\]$', re.S
)
# ``ref == null ? <yes> : <no>`` (and ``!=``), each branch ``[]`` or ``[ref]``: how a module turns an optional
# object into a dynamic block's for_each.
_NULL_CONDITIONAL = re.compile(
    r"^(?P<ref>[\w.]+)\s*(?P<op>==|!=)\s*null\s*\?\s*(?P<yes>\[[\w.]*\])\s*:\s*(?P<no>\[[\w.]*\])$"
)


class HclError(ValueError):
    """An expression of a module that fleetsim does not evaluate; the message names it."""


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.strip('"'): _clean(v) for k, v in value.items() if k not in _BOOKKEEPING}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def read_module(directory: Path) -> dict[str, Any]:
    """A module's ``.tf`` files merged: ``resource``/``data`` by type and name, ``locals`` merged."""
    try:
        import hcl2
    except ImportError as exc:  # pragma: no cover - the project's tools install it
        raise HclError(
            "fleetsim reads include/terraform with python-hcl2: install the project's dev group"
        ) from exc
    merged: dict[str, Any] = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "module": {}}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            parsed = _clean(hcl2.load(handle))
        for kind, blocks in parsed.items():
            for block in blocks:
                if kind in ("resource", "data"):
                    for rtype, by_name in block.items():
                        merged[kind].setdefault(rtype, {}).update(by_name)
                elif kind in ("locals", "variable", "module"):
                    merged[kind].update(block)
    return merged


@dataclass
class Scope:
    """What a module's expressions see: its variables, provider facts, and values the caller knows."""

    module_dir: Path
    variables: Mapping[str, Any]
    partition: str
    region: str
    account_id: str
    known: Mapping[str, Any] = field(default_factory=dict)  # other references, by their text
    bound: dict[str, Any] = field(default_factory=dict)  # a for expression's variable
    _locals: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return read_module(self.module_dir)

    def reference(self, text: str) -> Any:
        if text in self.known:
            return self.known[text]
        head, _, rest = text.partition(".")
        if head in self.bound:  # a for expression's variable, or each.key / each.value
            return _walk(self.bound[head], rest, text)
        if head == "var":
            return _walk(self.variables, rest, text)
        if head == "local":
            name, _, tail = rest.partition(".")
            if name not in self._locals:
                if name not in self.config["locals"]:
                    raise HclError(f"{self.module_dir.name}: no local {name!r}")
                self._locals[name] = evaluate(self.config["locals"][name], self)
            return _walk(self._locals[name], tail, text) if tail else self._locals[name]
        if text == "path.module":
            return str(self.module_dir)
        facts: dict[str, Callable[[], Any]] = {
            "data.aws_partition.current.partition": lambda: self.partition,
            "data.aws_region.current.region": lambda: self.region,
            "data.aws_region.current.name": lambda: self.region,
            "data.aws_caller_identity.current.account_id": lambda: self.account_id,
        }
        if text in facts:
            return facts[text]()
        parts = text.split(".")
        if parts[:2] == ["data", "aws_iam_policy_document"] and len(parts) == 4 and parts[3] == "json":
            return policy_document(self, parts[2])
        raise HclError(f"{self.module_dir.name}: fleetsim cannot evaluate the reference {text!r}")


def _walk(value: Any, dotted: str, text: str) -> Any:
    for part in dotted.split(".") if dotted else ():
        if not isinstance(value, Mapping) or part not in value:
            raise HclError(f"{text!r} is not set")
        value = value[part]
    return value


def _expression(expr: str, scope: Scope) -> Any:
    expr = expr.strip()
    if _REFERENCE.match(expr) or expr in scope.bound:
        return scope.reference(expr)
    null_test = _NULL_CONDITIONAL.match(expr)
    if null_test:
        is_null = scope.reference(null_test["ref"]) is None
        branch = null_test["yes"] if is_null == (null_test["op"] == "==") else null_test["no"]
        inner = branch[1:-1].strip()
        return [scope.reference(inner)] if inner else []
    conditional = _CONDITIONAL.match(expr)
    if conditional:
        chosen = conditional["yes"] if scope.reference(conditional["cond"]) else conditional["no"]
        return json.loads(chosen)
    loop = _FOR.match(expr)
    if loop:
        seq = loop["seq"]
        values = seq.startswith("values(")
        items = scope.reference(seq[len("values(") : -1] if values else seq)
        if values:
            items = [items[k] for k in sorted(items)]  # Terraform's values() is in key order
        template = loop["template"].replace('\\"', '"')
        out = []
        for item in items:
            scope.bound[loop["var"]] = item
            try:
                out.append(evaluate(template, scope))
            finally:
                scope.bound.pop(loop["var"], None)
        return out
    raise HclError(f"{scope.module_dir.name}: fleetsim cannot evaluate the expression {expr!r}")


def evaluate(value: Any, scope: Scope) -> Any:
    """``value`` as python-hcl2 read it, its expressions evaluated in ``scope``."""
    if isinstance(value, Mapping):
        return {k: evaluate(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, scope) for v in value]
    if not isinstance(value, str):
        return value
    whole = _WHOLE.match(value)
    if whole and "${" not in whole["expr"]:
        return _expression(whole["expr"], scope)
    if whole and whole["expr"].lstrip().startswith("[for "):
        return _expression(whole["expr"], scope)
    return _INTERPOLATION.sub(lambda m: str(_expression(m.group(1), scope)), value)


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _statement(block: Mapping[str, Any], scope: Scope) -> Statement:
    body = evaluate(block, scope)
    principals: dict[str, list[str]] = {}
    for principal in body.get("principals", []):
        principals.setdefault(principal["type"], []).extend(_strings(principal["identifiers"]))
    return Statement(
        actions=_strings(body.get("actions")),
        resources=_strings(body.get("resources")),
        sid=body.get("sid", ""),
        effect=body.get("effect", "Allow"),
        principals=principals,
        conditions=[(c["test"], c["variable"], _strings(c["values"])) for c in body.get("condition", [])],
    )


def policy_statements(scope: Scope, name: str) -> list[Statement]:
    """The statements of ``data.aws_iam_policy_document.<name>``: its ``statement`` blocks, then its
    ``dynamic "statement"`` blocks, each once per element of its ``for_each``."""
    try:
        spec = scope.config["data"]["aws_iam_policy_document"][name]
    except KeyError as exc:
        raise HclError(f"{scope.module_dir.name}: no data.aws_iam_policy_document.{name}") from exc
    statements = [_statement(block, scope) for block in spec.get("statement", [])]
    for dynamic in spec.get("dynamic", []):
        for label, body in dynamic.items():
            if label != "statement":
                raise HclError(f"{scope.module_dir.name}: dynamic {label!r} blocks are not rendered")
            iterator = str(body.get("iterator") or label)
            for item in evaluate(body["for_each"], scope):
                scope.bound[iterator] = {"value": item}  # the block's iterator: <label>.value
                try:
                    statements += [_statement(block, scope) for block in body["content"]]
                finally:
                    scope.bound.pop(iterator, None)
    return statements


def policy_document(scope: Scope, name: str) -> str:
    """``data.aws_iam_policy_document.<name>.json`` for ``scope``."""
    return policy_json(policy_statements(scope, name))


def resources(scope: Scope, rtype: str) -> dict[str, dict[str, Any]]:
    """The module's ``resource "<rtype>"`` blocks by name, unevaluated."""
    return dict(scope.config["resource"].get(rtype, {}))


def attribute(scope: Scope, rtype: str, name: str, key: str, default: Any = None) -> Any:
    """One argument of ``resource "<rtype>" "<name>"``, evaluated (``default`` when it is not set)."""
    try:
        block = scope.config["resource"][rtype][name]
    except KeyError as exc:
        raise HclError(f"{scope.module_dir.name}: no resource {rtype}.{name}") from exc
    return evaluate(block[key], scope) if key in block else default


# Module block arguments that are Terraform's own, not the module's input variables.
_META_ARGUMENTS = frozenset({"source", "count", "for_each", "providers", "depends_on", "version"})


def module_inputs(root: Scope, module: str, each: tuple[str, Any] | None = None) -> dict[str, Any]:
    """The input variables the root passes ``module "<module>"`` (for one ``each`` key and value), with
    the module's own defaults for those it does not pass."""
    try:
        block = root.config["module"][module]
    except KeyError as exc:
        raise HclError(f"{root.module_dir.name}: no module {module!r}") from exc
    if each is not None:
        root.bound["each"] = {"key": each[0], "value": each[1]}
    try:
        given = {k: evaluate(v, root) for k, v in block.items() if k not in _META_ARGUMENTS}
    finally:
        root.bound.pop("each", None)
    source = (root.module_dir / str(block["source"])).resolve()
    defaults = {
        name: spec["default"]
        for name, spec in read_module(source).get("variable", {}).items()
        if "default" in spec and name not in given
    }
    return {**defaults, **given}


def module_source(root: Scope, module: str) -> Path:
    """The directory of ``module "<module>"``'s source."""
    return (root.module_dir / str(root.config["module"][module]["source"])).resolve()
