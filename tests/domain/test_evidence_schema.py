"""The published JSON Schemas of the evidence document, against documents the builder produces.

Every published version stays: a pack is validated against the version it declares, so packs written as
1.0 before not_assessed existed keep validating against evidence-1.0, and 1.1 packs against evidence-1.1.
"""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from devtools.evidence_documents import NOT_ASSESSED_REASON, make_evidence
from patchcycle.domain import outcomes as o
from patchcycle.domain.evidence import EVIDENCE_SCHEMA_VERSION, EVIDENCE_SCHEMA_VERSIONS, evidence_schema_path
from tests.conftest import REPO

SCHEMAS = {v: json.loads(evidence_schema_path(v).read_text()) for v in EVIDENCE_SCHEMA_VERSIONS}
SCHEMA = SCHEMAS["1.0"]
SCHEMA_1_1 = SCHEMAS["1.1"]
SCHEMA_1_2 = SCHEMAS["1.2"]


def _document(version: str, n_hosts: int = 40) -> dict:
    return copy.deepcopy(make_evidence(n_hosts, sections=True, schema_version=version))


@pytest.mark.parametrize("version", EVIDENCE_SCHEMA_VERSIONS)
def test_the_schema_is_a_valid_draft_2020_12_schema(version) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMAS[version])
    assert SCHEMAS[version]["properties"]["schema_version"] == {"const": version}
    assert SCHEMAS[version]["$id"].endswith(f"/evidence-{version}.schema.json")


def test_every_published_schema_is_known_and_the_newest_is_written() -> None:
    published = sorted(p.name for p in (REPO / "include" / "schemas").glob("evidence-*.schema.json"))
    assert published == [f"evidence-{v}.schema.json" for v in EVIDENCE_SCHEMA_VERSIONS]
    assert EVIDENCE_SCHEMA_VERSION == EVIDENCE_SCHEMA_VERSIONS[-1] == "1.4"
    with pytest.raises(ValueError, match="unknown evidence schema_version"):
        evidence_schema_path("2.0")


@pytest.mark.parametrize("version", EVIDENCE_SCHEMA_VERSIONS)
def test_a_full_document_validates_against_its_own_version(version) -> None:
    jsonschema.validate(_document(version), SCHEMAS[version])


def test_a_1_0_pack_still_validates_against_1_0_only() -> None:
    document = _document("1.0")
    jsonschema.validate(document, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA_1_1)  # it declares 1.0 (and has no not_assessed count)


def test_1_0_does_not_know_not_assessed_and_1_1_does() -> None:
    document = _document("1.1")
    host = next(h for h in document["hosts"] if h["final_state"] == o.NOT_ASSESSED)
    assert host["reason"] == NOT_ASSESSED_REASON
    jsonschema.validate(document, SCHEMA_1_1)
    as_1_0 = copy.deepcopy(document)
    as_1_0["schema_version"] = "1.0"
    with pytest.raises(jsonschema.ValidationError) as excinfo:
        jsonschema.validate(as_1_0, SCHEMA)
    assert "final_state" in str(excinfo.value.json_path)


@pytest.mark.parametrize("version", EVIDENCE_SCHEMA_VERSIONS)
@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda e: e.pop("hosts"), "hosts"),
        (lambda e: e["hosts"][0].update(final_state="fine"), "final_state"),
        (lambda e: e["cycle"].update(outcome="ok"), "outcome"),
        (lambda e: e["events"][0].update(action="Did Something"), "action"),
    ],
)
def test_a_broken_document_is_rejected(version, mutate, where) -> None:
    document = _document(version, 10)
    mutate(document)
    with pytest.raises(jsonschema.ValidationError) as excinfo:
        jsonschema.validate(document, SCHEMAS[version])
    assert where in str(excinfo.value.json_path) or where in excinfo.value.message


@pytest.mark.parametrize("version", EVIDENCE_SCHEMA_VERSIONS)
def test_a_host_left_behind_must_say_why(version) -> None:
    document = _document(version, 10)
    failed = next(h for h in document["hosts"] if h["final_state"] != "patched")
    failed["reason"] = None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMAS[version])


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda e: _not_assessed(e).update(reason=None), id="not-assessed-without-reason"),
        pytest.param(lambda e: _not_assessed(e).update(reason=""), id="not-assessed-empty-reason"),
        pytest.param(lambda e: e["summary"].pop("not_assessed"), id="summary-without-not-assessed"),
        pytest.param(lambda e: e["summary"]["by_cloud"]["gcp"].pop("not_assessed"), id="by-cloud-without"),
        pytest.param(lambda e: e["summary"].update(not_assessed=-1), id="negative-count"),
        pytest.param(lambda e: _drifted(e)["installed_versions"][0].pop("planned"), id="version-no-planned"),
        pytest.param(lambda e: _drifted(e)["installed_versions"][0].pop("package"), id="version-no-package"),
        pytest.param(
            lambda e: e["plan"]["approved"]["rhel_9"][0].update(released_basis="guess"), id="released-basis"
        ),
        pytest.param(lambda e: e["plan"]["baselines"][0].update(sources="ssm"), id="sources-not-a-list"),
    ],
)
def test_1_1_rejects_what_it_added_when_broken(mutate) -> None:
    document = _document("1.1", 10)
    jsonschema.validate(document, SCHEMA_1_1)
    mutate(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA_1_1)


def test_1_1_takes_a_kb_where_a_windows_update_has_no_package() -> None:
    document = _document("1.1", 10)
    _drifted(document)["installed_versions"] = [
        {
            "patch_id": "KB5041578",
            "kb": "5041578",
            "planned": "5041578",
            "installed": None,
            "status": "absent",
        }
    ]
    jsonschema.validate(document, SCHEMA_1_1)


def test_1_2_knows_a_refused_run_and_its_reasons_and_1_1_does_not() -> None:
    document = _document("1.2", 10)
    document["cycle"].update(outcome="refused", refused_reasons=["conf key 'dryrun' is not a parameter"])
    jsonschema.validate(document, SCHEMA_1_2)
    as_1_1 = copy.deepcopy(document)
    as_1_1["schema_version"] = "1.1"
    with pytest.raises(jsonschema.ValidationError) as excinfo:
        jsonschema.validate(as_1_1, SCHEMA_1_1)
    assert "outcome" in str(excinfo.value.json_path)
    document["cycle"]["refused_reasons"] = [""]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA_1_2)


def _not_assessed(document: dict) -> dict:
    return next(h for h in document["hosts"] if h["final_state"] == o.NOT_ASSESSED)


def _drifted(document: dict) -> dict:
    return next(h for h in document["hosts"] if h.get("installed_versions"))
