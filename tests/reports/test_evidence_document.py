"""The typed view of the evidence document, held to the published schemas of every version, and its reader.

The view promises only what every schema version guarantees (see the module's docstring). The walk below
checks each key the view declares against each version's schema (include/schemas/evidence-*.schema.json):
its type accepts every value the schema allows, a key is required in the view exactly when every version
requires it, and a key no version describes is one of :data:`UNDESCRIBED`.

No ``from __future__ import annotations`` here (nor in the module): Python 3.11's TypedDict cannot see
``NotRequired`` in a string annotation.
"""

import json
import logging
import re
import types
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import (
    Any,
    Literal,
    NotRequired,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

import pytest

from devtools.evidence_documents import make_evidence
from patchcycle.config.loader import load_tenants
from patchcycle.domain.evidence import EVIDENCE_SCHEMA_VERSIONS, evidence_schema_path
from patchcycle.reports.evidence_document import (
    CycleEvidence,
    EvidenceSchemaError,
    evidence_schema_error,
    read_evidence,
)
from tests.domain.evidence_packs import HostSpec, cycle_evidence

SCHEMAS = {
    version: json.loads(evidence_schema_path(version).read_text()) for version in EVIDENCE_SCHEMA_VERSIONS
}

#: Keys the cycle writes and the report reads that no schema version describes yet (the next minor
#: version's to-do): declared ``NotRequired[object]``, and removed from here once a schema describes them.
UNDESCRIBED = {
    ("Cycle", "run_type"),
    ("Cycle", "triggered_by"),
    ("Cycle", "window_override_reason"),
    ("ControlResult", "references"),
    ("RiskReport", "open_truncated"),
    ("AccessReview", "permission_sets"),
    ("TrendPoint", "compliance_before"),
}


# --------------------------------------------------------------------------- the walk


def _resolved(node: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with its local ``$ref`` and its ``allOf`` branches' properties and required keys merged in
    (``if``/``then`` branches only narrow a value further, so they are left out)."""
    node = dict(node)
    if "$ref" in node:
        target = root["$defs"][node.pop("$ref").removeprefix("#/$defs/")]
        node = {**_resolved(target, root), **node}
    for branch in node.pop("allOf", []):
        branch = _resolved(branch, root)
        node["properties"] = {**branch.get("properties", {}), **node.get("properties", {})}
        node["required"] = [*branch.get("required", []), *node.get("required", [])]
        node.setdefault("type", branch.get("type"))
    return {k: v for k, v in node.items() if v is not None}


def _json_type(value: object) -> str:
    return {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}[type(value)]


def _enum(node: Mapping[str, Any]) -> list[Any] | None:
    return node.get("enum") or ([node["const"]] if "const" in node else None)


def _json_types(node: Mapping[str, Any]) -> set[str] | None:
    """The JSON types the schema node allows; None when it says nothing of the type."""
    if "type" in node:
        return {node["type"]} if isinstance(node["type"], str) else set(node["type"])
    values = _enum(node)
    return None if values is None else {_json_type(v) for v in values}


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return list(get_args(annotation))
    return [annotation]


def _is_literal(annotation: Any) -> bool:
    return get_origin(annotation) is Literal


def _accepts(member: Any, json_type: str, node: Mapping[str, Any]) -> bool:
    """Whether one member of an annotation holds values of ``json_type`` (a Literal only of an enum)."""
    if _is_literal(member):
        return _enum(node) is not None and all(_json_type(v) == json_type for v in get_args(member))
    origin = get_origin(member) or member
    return {
        "null": member is type(None),
        "string": member is str,
        "integer": member in (int, float),
        "number": member is float,
        "boolean": member is bool,
        "array": origin is list,
        "object": is_typeddict(member) or origin in (dict, Mapping),
    }[json_type]


@dataclass
class Walk:
    """What one walk of the view over every schema version found."""

    problems: list[str] = field(default_factory=list)
    #: (TypedDict, key) -> {version: "required" | "optional" | "absent"}, for each version describing the
    #: TypedDict's object.
    keys: dict[tuple[str, str], dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    #: where a Literal is declared -> (its values, the enum values any version allows there).
    literals: dict[str, tuple[set[Any], set[Any]]] = field(default_factory=dict)

    def check(self, annotation: Any, node: Mapping[str, Any], root: Mapping[str, Any], where: str) -> None:
        """Every value the schema ``node`` allows fits ``annotation`` (``object`` fits anything)."""
        if annotation in (object, Any):
            return
        node = _resolved(node, root)
        allowed = _json_types(node)
        if allowed is None:
            self.problems.append(f"{where}: the schema does not type it, so the view must say object")
            return
        members = _members(annotation)
        for json_type in sorted(allowed):
            member = next((m for m in members if _accepts(m, json_type, node)), None)
            if member is None:
                self.problems.append(f"{where}: the schema allows {json_type}, {annotation} does not")
            elif json_type in ("array", "object"):
                self._check_container(member, node, root, where)
        values = _enum(node)
        declared = {v for m in members if _is_literal(m) for v in get_args(m)}
        if values is not None and declared:
            missing = [v for v in values if v not in declared and not (v is None and type(None) in members)]
            if missing:
                self.problems.append(f"{where}: the schema allows {missing}, {annotation} does not")
            across_versions = re.sub(r" \(\d+\.\d+\)", "", where)
            seen = self.literals.setdefault(across_versions, (declared, set()))[1]
            seen.update(values)

    def _check_container(
        self, member: Any, node: Mapping[str, Any], root: Mapping[str, Any], where: str
    ) -> None:
        if is_typeddict(member):
            self.check_typed_dict(member, node, root)
        elif get_origin(member) is list:
            self.check(get_args(member)[0], node.get("items", {}), root, f"{where}[]")
        else:  # dict[str, X] / Mapping[str, X]: X holds every property and additional property
            value = get_args(member)[1]
            extra = node.get("additionalProperties", {})
            self.check(value, extra if isinstance(extra, dict) else {}, root, f"{where}.*")
            for name, prop in node.get("properties", {}).items():
                self.check(value, prop, root, f"{where}.{name}")

    def check_typed_dict(self, typed: Any, node: Mapping[str, Any], root: Mapping[str, Any]) -> None:
        """Each key of ``typed`` against the object schema ``node`` of one version."""
        version = root["properties"]["schema_version"]["const"]
        properties, required = node.get("properties", {}), set(node.get("required", []))
        for key, annotation in get_type_hints(typed).items():
            status = "required" if key in required else "optional" if key in properties else "absent"
            self.keys[(typed.__name__, key)][version] = status
            if status != "absent":
                self.check(annotation, properties.get(key, {}), root, f"{typed.__name__}.{key} ({version})")


def walk(view: Any = CycleEvidence, node_of: Any = lambda schema: schema) -> Walk:
    """Walk ``view`` over every version's schema (``node_of`` picks where in the schema it sits)."""
    found = Walk()
    for schema in SCHEMAS.values():
        found.check_typed_dict(view, _resolved(node_of(schema), schema), schema)
    return found


def _typed_dicts(view: Any = CycleEvidence) -> dict[str, Any]:
    """``view`` and every TypedDict reachable from it, by name."""
    found: dict[str, Any] = {}
    pending = [view]
    while pending:
        typed = pending.pop()
        if typed.__name__ in found:
            continue
        found[typed.__name__] = typed
        for annotation in get_type_hints(typed).values():
            stack = [annotation]
            while stack:
                current = stack.pop()
                if is_typeddict(current):
                    pending.append(current)
                stack += list(get_args(current))
    return found


# --------------------------------------------------------------------------- the view against the schemas


def test_every_key_of_the_view_has_a_type_every_schema_version_guarantees() -> None:
    assert walk().problems == []


def _required_mismatches(found: Walk, typed_dicts: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Keys required in the view but left out by some version, or required by every version but not in the
    view, with what each version says of them."""
    wrong = {}
    for (name, key), by_version in found.keys.items():
        always = all(status == "required" for status in by_version.values())
        if (key in typed_dicts[name].__required_keys__) != always:
            wrong[f"{name}.{key}"] = by_version
    return wrong


def test_a_key_is_required_in_the_view_exactly_when_every_version_requires_it() -> None:
    assert _required_mismatches(walk(), _typed_dicts()) == {}


def test_every_key_of_the_view_is_in_a_schema_or_listed_as_undescribed() -> None:
    keys = walk().keys
    undescribed = {key for key, by_version in keys.items() if set(by_version.values()) == {"absent"}}
    assert undescribed == UNDESCRIBED
    typed_dicts = _typed_dicts()
    for name, key in UNDESCRIBED:
        typed = typed_dicts[name]
        assert key in typed.__optional_keys__ and get_type_hints(typed)[key] is object, (name, key)


def test_every_typed_dict_of_the_view_is_walked() -> None:
    walked = {name for name, _ in walk().keys}
    assert walked == set(_typed_dicts())


def test_the_views_enums_name_only_values_some_version_allows() -> None:
    invented = {
        where: declared - seen for where, (declared, seen) in walk().literals.items() if declared - seen
    }
    assert invented == {}
    versions = get_args(get_type_hints(CycleEvidence)["schema_version"])
    assert versions == EVIDENCE_SCHEMA_VERSIONS


class _DriftedCycle(TypedDict):
    """A view of ``cycle`` that claims more than the schemas guarantee, key by key."""

    cycle_date: int  # a string
    outcome: Literal["completed", "failed"]  # misses partial, planned (and refused from 1.2)
    started_at: str  # may be null, and may be left out
    run_id: NotRequired[str]  # required in every version
    refused_reasons: list[int]  # from 1.2 only, and strings


def test_the_walk_catches_a_view_that_drifts_from_the_schema() -> None:
    found = walk(_DriftedCycle, lambda schema: schema["properties"]["cycle"])
    problems = "\n".join(found.problems)
    assert "_DriftedCycle.cycle_date (1.0): the schema allows string" in problems
    assert "_DriftedCycle.outcome (1.0): the schema allows ['partial', 'planned']" in problems
    assert "'refused'" in problems
    assert "_DriftedCycle.started_at (1.3): the schema allows null" in problems
    assert "_DriftedCycle.refused_reasons (1.2)[]: the schema allows string" in problems
    assert set(_required_mismatches(found, {"_DriftedCycle": _DriftedCycle})) == {
        "_DriftedCycle.started_at",  # optional in every version
        "_DriftedCycle.run_id",  # required in every version
        "_DriftedCycle.refused_reasons",  # absent before 1.2
    }


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("version", EVIDENCE_SCHEMA_VERSIONS)
def test_a_document_of_each_version_reads_as_itself(version: str) -> None:
    document = make_evidence(40, sections=True, schema_version=version)
    assert read_evidence(document) is document
    assert evidence_schema_error(document) is None


def test_documents_of_the_projects_own_builders_read() -> None:
    tenant = next(t for t in load_tenants().tenants if t.id == "cu_alpha")
    fleet = [HostSpec("web-01", "prod"), HostSpec("db-07", "prod", "failed", "exit code 1")]
    cycle = cycle_evidence(tenant, cycle_date="2026-11-22", run_id="scheduled__1", fleet=fleet)
    refused = cycle_evidence(
        tenant, cycle_date="2026-12-27", run_id="scheduled__2", refused_reasons=("late",)
    )
    for document in (cycle, refused):
        assert read_evidence(document) is document


def test_a_bad_field_is_named_with_the_schema_version_and_its_json_path() -> None:
    document = make_evidence(10, schema_version="1.1")
    document["hosts"][1]["final_state"] = "rebooted"  # the held host (it has a reason)
    with pytest.raises(EvidenceSchemaError) as raised:
        read_evidence(document)
    error = raised.value
    assert (error.version, error.path, error.count) == ("1.1", "$.hosts[1].final_state", 1)
    assert str(error).startswith(
        "evidence document of schema_version 1.1 does not match evidence-1.1.schema.json at $.hosts[1]"
    )
    assert "at $.hosts[1].final_state: 'rebooted' is not one of" in str(error)


def test_a_missing_required_field_is_named_and_further_problems_counted() -> None:
    document = make_evidence(10)
    del document["cycle"]["run_id"]
    document["tenant"]["frameworks"] = ["soc2", "iso27001"]
    error = evidence_schema_error(document)
    assert error is not None
    # Of several problems, the one jsonschema.validate would raise (the shallowest), and how many more.
    assert str(error).endswith("at $.cycle: 'run_id' is a required property (1 more)")
    assert (error.path, error.count) == ("$.cycle", 2)


def test_a_document_is_checked_against_the_schema_of_its_own_version() -> None:
    refused = {version: make_evidence(0, schema_version=version) for version in ("1.0", "1.2")}
    for document in refused.values():
        document["cycle"].update(outcome="refused", refused_reasons=["a late scheduled run"])
    with pytest.raises(EvidenceSchemaError, match=r"evidence-1\.0\.schema\.json at \$\.cycle\.outcome"):
        read_evidence(refused["1.0"])  # an outcome from 1.2 on
    assert read_evidence(refused["1.2"]) is refused["1.2"]


@pytest.mark.parametrize("version", [None, "2.0", 1.1])
def test_an_unknown_schema_version_is_named(version: object) -> None:
    document = make_evidence(2)
    document["schema_version"] = version
    with pytest.raises(EvidenceSchemaError, match=r"at \$\.schema_version: unknown schema_version") as raised:
        read_evidence(document)
    assert raised.value.version == str(version)


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(EvidenceSchemaError, match=r"at \$: not a JSON object but list"):
        read_evidence([])  # type: ignore[arg-type]


def test_reading_leniently_logs_the_problem_and_returns_the_document(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = make_evidence(10)
    document["summary"]["compliance_before"] = None
    with caplog.at_level(logging.WARNING, logger="patchcycle.reports.evidence_document"):
        assert read_evidence(document, strict=False) is document
    assert "evidence-1.0.schema.json" in caplog.text and "$.summary.compliance_before" in caplog.text


def test_a_long_offending_value_is_clipped_in_the_message() -> None:
    document = make_evidence(10)
    document["hosts"] = {"not": "a list " * 500}
    error = evidence_schema_error(document)
    assert error is not None and error.path == "$.hosts" and len(error.problem) < 320
