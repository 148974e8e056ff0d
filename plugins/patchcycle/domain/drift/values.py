"""Comparing Terraform attribute values: paths, leaf differences, sensitivity and documents.

Values are JSON as Terraform writes them (the plan's ``change.before``/``change.after`` and the state's
``attributes``): "the same intuitive mapping from HCL types to JSON types used by Terraform's
``jsonencode`` function [...] Unknown values and null values are both treated as absent or null"
(JSON Output Format, Values Representation). So an absent key and a null are the same value here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

Step = str | int
Path = tuple[Step, ...]
Difference = tuple[Path, Any, Any]  # (path, declared, live)
Kind = Literal["value", "set", "json", "iam_policy", "document", "base64"]

SENSITIVE = "(sensitive value hidden)"
"""What a report shows in place of a sensitive value, declared or live."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PATTERN_STEP = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+|\*)\]|\["((?:[^"\\]|\\.)*)"\]')


def format_path(path: Path) -> str:
    """``approval_rule[0].approve_after_days``; a map key that is not an identifier as ``tags["a b"]``."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        elif _IDENTIFIER.fullmatch(step):
            text += f".{step}" if text else step
        else:
            text += f"[{json.dumps(step)}]"
    return text


def parse_pattern(pattern: str) -> tuple[Step, ...]:
    """The steps of a path pattern such as ``approval_rule[*].approve_until_date`` (``*``: any index)."""
    steps: list[Step] = []
    position = 0
    while position < len(pattern):
        match = _PATTERN_STEP.match(pattern, position)
        if match is None:
            raise ValueError(f"path pattern {pattern!r} is not of the form name[0].name or name[*].name")
        name, index, key = match.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(index if index == "*" else int(index))
        else:
            steps.append(json.loads(f'"{key}"'))
        position = match.end()
    return tuple(steps)


def path_matches(path: Path, pattern: str) -> bool:
    """Whether ``path`` is the one ``pattern`` names, ``[*]`` standing for any list index."""
    steps = parse_pattern(pattern)
    if len(steps) != len(path):
        return False
    return all(
        (want == "*" and isinstance(have, int)) or (want == have and type(want) is type(have))
        for want, have in zip(steps, path, strict=True)
    )


def same_value(declared: Any, live: Any) -> bool:
    """JSON equality that keeps ``true`` apart from ``1`` (Python's ``True == 1`` does not)."""
    if isinstance(declared, bool) or isinstance(live, bool):
        return type(declared) is type(live) and declared == live
    if isinstance(declared, Mapping) and isinstance(live, Mapping):
        keys = set(declared) | set(live)
        return all(same_value(declared.get(key), live.get(key)) for key in keys)
    if _is_list(declared) and _is_list(live):
        return len(declared) == len(live) and all(
            same_value(a, b) for a, b in zip(declared, live, strict=True)
        )
    return bool(declared == live)


def leaf_differences(declared: Any, live: Any, prefix: Path = ()) -> list[Difference]:
    """Every path where ``declared`` and ``live`` differ, as deep as both sides share a shape.

    Objects are compared key by key; lists of the same length index by index; a list whose length
    changed is one difference at the list itself (an index-by-index reading of an inserted element
    would blame every element after it).
    """
    if isinstance(declared, Mapping) and isinstance(live, Mapping):
        found: list[Difference] = []
        for key in sorted(set(declared) | set(live)):
            found += leaf_differences(declared.get(key), live.get(key), (*prefix, key))
        return found
    if _is_list(declared) and _is_list(live) and len(declared) == len(live):
        found = []
        for index, (a, b) in enumerate(zip(declared, live, strict=True)):
            found += leaf_differences(a, b, (*prefix, index))
        return found
    return [] if same_value(declared, live) else [(prefix, declared, live)]


def sensitive_paths(tree: Any, prefix: Path = ()) -> list[Path]:
    """The paths a plan's ``before_sensitive``/``after_sensitive`` mark: "all sensitive leaf values
    replaced with true, and all non-sensitive leaf values omitted" (JSON Output Format, Change
    Representation). A ``true`` above the leaves marks everything under it."""
    if tree is True:
        return [prefix]
    if isinstance(tree, Mapping):
        return [path for key, sub in tree.items() for path in sensitive_paths(sub, (*prefix, key))]
    if _is_list(tree):
        return [path for index, sub in enumerate(tree) for path in sensitive_paths(sub, (*prefix, index))]
    return []


def touches(path: Path, marked: Iterable[Path]) -> bool:
    """Whether ``path`` is, contains or lies inside one of the ``marked`` paths."""
    for other in marked:
        shorter = min(len(path), len(other))
        if path[:shorter] == other[:shorter]:
            return True
    return False


def normalize(kind: Kind, value: Any) -> Any:
    """``value`` in the form two equivalent values share, for an attribute of ``kind``.

    ``set``: order does not count. ``json``/``document``: the parsed document (key order and
    whitespace do not count; a document is JSON or YAML). ``iam_policy``: the parsed policy with the
    IAM grammar's equivalences applied (:func:`normalize_iam_policy`). ``base64``: the decoded text.
    A value that does not parse as its kind is kept as it is, so it still compares exactly.
    """
    if value is None or kind == "value":
        return value
    if kind == "set":
        return sorted(value, key=_canonical) if _is_list(value) else value
    if kind == "base64":
        return _decode_base64(value)
    parsed = _parse_document(value, yaml_too=kind == "document")
    if parsed is None:
        return value
    return normalize_iam_policy(parsed) if kind == "iam_policy" else parsed


# IAM policy elements whose value is "a single string or an array" of strings that IAM evaluates
# as a set (IAM JSON policy elements reference: Action, NotAction, Resource, NotResource; the
# principal's AWS/Service/Federated/CanonicalUser values; each condition key's values).
_SET_ELEMENTS = ("Action", "NotAction", "Resource", "NotResource")


def normalize_iam_policy(document: Any) -> Any:
    """An IAM policy document in a canonical form: a lone string and a one-element list are the same,
    the order of actions, resources, principals, condition values and statements does not count."""
    if not isinstance(document, Mapping):
        return document
    statements = document.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    result = dict(document)
    if isinstance(statements, list | tuple):
        result["Statement"] = sorted((_normalize_statement(s) for s in statements), key=_canonical)
    return result


def _normalize_statement(statement: Any) -> Any:
    if not isinstance(statement, Mapping):
        return statement
    result = dict(statement)
    for element in _SET_ELEMENTS:
        if element in result:
            result[element] = _string_set(result[element])
    for element in ("Principal", "NotPrincipal"):
        if isinstance(result.get(element), Mapping):
            result[element] = _string_sets(result[element])
    if isinstance(result.get("Condition"), Mapping):
        result["Condition"] = {
            operator: _string_sets(block) if isinstance(block, Mapping) else block
            for operator, block in result["Condition"].items()
        }
    return result


def _string_sets(block: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _string_set(value) for key, value in block.items()}


def _string_set(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if _is_list(value):
        return sorted(set(value), key=_canonical) if all(isinstance(v, str) for v in value) else value
    return value


def _parse_document(value: Any, *, yaml_too: bool) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        pass
    if not yaml_too:
        return None
    import yaml  # only SSM documents in YAML format need it

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return None


def _decode_base64(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
