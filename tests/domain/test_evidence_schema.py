"""The published JSON Schema of the evidence document, against documents the builder produces."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from tests.conftest import REPO
from tests.reports.conftest import make_evidence

SCHEMA = json.loads((REPO / "include" / "schemas" / "evidence-1.0.schema.json").read_text())


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_a_full_document_validates() -> None:
    jsonschema.validate(make_evidence(40, sections=True), SCHEMA)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda e: e.pop("hosts"), "hosts"),
        (lambda e: e["hosts"][0].update(final_state="fine"), "final_state"),
        (lambda e: e["cycle"].update(outcome="ok"), "outcome"),
        (lambda e: e["events"][0].update(action="Did Something"), "action"),
    ],
)
def test_a_broken_document_is_rejected(mutate, where) -> None:
    document = copy.deepcopy(make_evidence(10, sections=True))
    mutate(document)
    with pytest.raises(jsonschema.ValidationError) as excinfo:
        jsonschema.validate(document, SCHEMA)
    assert where in str(excinfo.value.json_path) or where in excinfo.value.message


def test_a_host_left_behind_must_say_why() -> None:
    document = copy.deepcopy(make_evidence(10, sections=True))
    failed = next(h for h in document["hosts"] if h["final_state"] != "patched")
    failed["reason"] = None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)
