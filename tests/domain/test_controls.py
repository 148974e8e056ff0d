"""The control catalogs and the mapping of a cycle's evidence events to controls."""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchcycle.config.models import Framework
from patchcycle.domain.controls import (
    EVENT_TYPES,
    REFERENCES,
    ControlCatalog,
    ControlCatalogError,
    ControlResult,
    controls_summary,
    load_control_catalogs,
    map_controls,
    retention_days_for,
)
from tests.conftest import REPO

ALL_FRAMEWORKS = [f.value for f in Framework]


@pytest.fixture(scope="module")
def catalogs() -> dict[str, ControlCatalog]:
    return load_control_catalogs()


def _event(
    action: str, target: str | None = None, *, actor: str | None = "svc-patchcycle", n: int = 0
) -> dict:
    return {
        "at": f"2026-07-01T02:{n // 60:02d}:{n % 60:02d}+00:00",
        "actor": actor,
        "action": action,
        "target": target,
        "result": "ok",
        "details": {},
    }


def full_cycle_events() -> list[dict[str, Any]]:
    """A successful three-stage cycle without approvals, health gates, holds, exceptions or incidents."""
    actions: list[tuple[str, str | None]] = [
        ("plan.frozen", None),
        ("access.reviewed", None),
        ("inventory.collected", "111111111111/us-east-1"),
        ("risk.assessed", None),
        ("preflight.evaluated", None),
    ]
    for env in ("nonprod", "staging", "prod"):
        for host in ("i-1", "i-2"):
            actions += [("backup.created", host), ("verify.host", host)]
        actions += [
            ("backup.completed", env),
            ("patch.sent", env),
            ("patch.finished", env),
            ("stage.verified", env),
        ]
        if env != "prod":
            actions += [("soak.started", env), ("soak.completed", env)]
    actions += [("evidence.written", None), ("evidence.distributed", None)]
    return [_event(action, target, n=i) for i, (action, target) in enumerate(actions)]


def _without(events: list[dict], action: str) -> list[dict]:
    return [e for e in events if e["action"] != action]


def _result(results: list[ControlResult], framework: str, control_id: str) -> ControlResult:
    matches = [r for r in results if r.framework == framework and r.control_id == control_id]
    assert len(matches) == 1, f"{framework} {control_id}: {matches}"
    return matches[0]


def _write(directory: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = directory / name
    path.write_text(
        data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    return path


def _catalog_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "framework": "demo",
        "name": "Demo framework",
        "version": "1",
        "retention_days": 30,
        "controls": [
            {
                "id": "D-1",
                "title": "Demo control",
                "requirement": "Patches are sent twice and verified.",
                "sources": ["https://example.com/d-1"],
                "evidenced_by": [
                    {"event": "patch.sent", "min_count": 2},
                    {"event": "stage.verified"},
                    {"event": "approval.answered", "optional": True},
                ],
            }
        ],
    }
    data.update(overrides)
    return data


# --------------------------------------------------------------------------------------------------
# The shipped catalogs
# --------------------------------------------------------------------------------------------------


def test_shipped_catalogs_load(catalogs: dict[str, ControlCatalog]) -> None:
    assert set(catalogs) == {"soc2", "pci_dss", "hipaa", "sox", REFERENCES}
    assert [c.id for c in catalogs["soc2"].controls] == ["CC6.1", "CC7.1", "CC7.2", "CC8.1"]
    assert [c.id for c in catalogs["pci_dss"].controls] == ["6.3.3", "10.2", "10.5.1"]
    assert len(catalogs["hipaa"].controls) == 4
    assert 3 <= len(catalogs["sox"].controls) <= 5


@pytest.mark.parametrize("framework", ALL_FRAMEWORKS)
def test_every_selectable_framework_has_a_catalog_with_retention(
    catalogs: dict[str, ControlCatalog], framework: str
) -> None:
    catalog = catalogs[framework]
    assert catalog.framework == framework
    assert catalog.retention_days and catalog.retention_basis and catalog.retention_sources


def test_every_mapped_event_is_in_the_vocabulary(catalogs: dict[str, ControlCatalog]) -> None:
    for catalog in catalogs.values():
        for control in catalog.controls:
            assert control.sources, control.id
            for req in control.evidenced_by:
                assert req.event in EVENT_TYPES, (catalog.framework, control.id, req.event)


EVENT_NAME = re.compile(r"^[a-z][a-z_]*\.[a-z_]+$")


def _event_names(node: ast.AST) -> set[str]:
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and EVENT_NAME.match(n.value)
    }


def recorded_actions() -> set[str]:
    """The event actions the product's code records, read from its source (not from a list kept by hand):
    the first argument of every ``.record(...)`` call (a literal, either branch of a conditional, or, for
    a variable, the event names in the class or module around the call) and every ``"action": ...``."""
    found: set[str] = set()
    for path in (REPO / "plugins" / "patchcycle").rglob("*.py"):
        if path.name == "controls.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        scopes: list[ast.AST] = [tree]
        scopes += [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        for scope in scopes:
            for node in ast.walk(scope):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    if node.func.attr == "record" and node.args:
                        first = node.args[0]
                        found |= _event_names(scope if isinstance(first, ast.Name) else first)
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "action" and value is not None:
                            found |= _event_names(value)
    return found


def test_the_vocabulary_is_what_the_code_records() -> None:
    """A catalog may only map an event some code really records: a name no code writes (the catalogs
    once mapped ``incident.opened`` and ``approval.recorded``, which nothing recorded) never counts."""
    recorded = recorded_actions()
    assert {"incident.triggered", "approval.answered", "plan.frozen", "preflight.held"} <= recorded
    assert set(EVENT_TYPES) - recorded == set()


STANDARD_PUBLISHERS = (
    "www.aicpa-cima.com",  # AICPA: Trust Services Criteria 2017, revised points of focus 2022
    "docs-prv.pcisecuritystandards.org",  # PCI SSC: PCI DSS v4.0.1
    "www.law.cornell.edu",  # LII: 45 CFR 164 (HIPAA), 15 U.S.C. 7262 (SOX s404), 17 CFR 210.2-06
    "www.sec.gov",
    "pcaobus.org",  # PCAOB: AS 2201
    "doi.org",  # NIST SP 800-40r4
    "www.cisecurity.org",  # CIS Controls v8
)


def test_every_control_cites_the_standard_itself_not_a_vendor_blog(
    catalogs: dict[str, ControlCatalog],
) -> None:
    from urllib.parse import urlparse

    for catalog in catalogs.values():
        cited = [*catalog.retention_sources, *(s for c in catalog.controls for s in c.sources)]
        for url in cited:
            assert urlparse(url).hostname in STANDARD_PUBLISHERS, (catalog.framework, url)


def test_pci_retention_control_requires_a_year(catalogs: dict[str, ControlCatalog]) -> None:
    assert catalogs["pci_dss"].control("10.5.1").requires.retention_days_at_least == 365
    assert catalogs["pci_dss"].control("10.2").requires.events_attributed


# --------------------------------------------------------------------------------------------------
# Mapping a cycle
# --------------------------------------------------------------------------------------------------


def test_full_cycle_with_a_prod_approval_evidences_every_control(catalogs: dict[str, ControlCatalog]) -> None:
    events = [*full_cycle_events(), _event("approval.answered", "prod", n=99)]
    results = map_controls(events, ALL_FRAMEWORKS, catalogs, retention_days=2555)
    not_evidenced = [(r.framework, r.control_id, r.missing) for r in results if r.status != "evidenced"]
    assert not_evidenced == []
    assert {r.framework for r in results} == {*ALL_FRAMEWORKS, REFERENCES}
    assert all(r.missing == () for r in results)
    cc81 = _result(results, "soc2", "CC8.1")
    assert dict(cc81.evidenced)["patch.sent"] == 3
    assert dict(cc81.evidenced)["approval.answered"] == 1
    assert cc81.references == (
        "https://www.aicpa-cima.com/resources/download/get-the-2017-trust-services-criteria",
    )


def test_without_an_approver_sox_authorisation_is_not_green(catalogs: dict[str, ControlCatalog]) -> None:
    """SOX ITGC-CM-01 says changes are approved: a cycle whose prod asked nobody (a soak override or an
    emergency change included) shows it partial, naming the missing approval; SOC 2 CC8.1 takes the
    approval as optional (only environments with approval_required record one)."""
    events = [*full_cycle_events(), _event("soak.override_requested", None, n=98)]
    results = map_controls(events, ["soc2", "sox"], catalogs, retention_days=2555)
    cm01 = _result(results, "sox", "ITGC-CM-01")
    assert (cm01.status, cm01.missing) == ("partial", ("approval.answered",))
    assert _result(results, "soc2", "CC8.1").status == "evidenced"


def test_without_access_review_cc61_is_missing_and_activity_review_partial(
    catalogs: dict[str, ControlCatalog],
) -> None:
    events = _without(full_cycle_events(), "access.reviewed")
    results = map_controls(events, ["soc2", "hipaa", "sox"], catalogs, retention_days=2555)
    cc61 = _result(results, "soc2", "CC6.1")
    assert cc61.status == "missing"
    assert cc61.missing == ("access.reviewed",)
    assert cc61.evidenced == ()
    review = _result(results, "hipaa", "164.308(a)(1)(ii)(D)")
    assert review.status == "partial"
    assert review.missing == ("access.reviewed",)
    assert review.evidenced == (("evidence.written", 1),)
    assert _result(results, "sox", "ITGC-CM-05").status == "missing"
    assert _result(results, "soc2", "CC8.1").status == "evidenced"


@pytest.mark.parametrize("retention_days", [90, 364])
def test_short_retention_leaves_pci_10_5_1_partial(
    catalogs: dict[str, ControlCatalog], retention_days: int
) -> None:
    results = map_controls(full_cycle_events(), ["pci_dss"], catalogs, retention_days=retention_days)
    retention = _result(results, "pci_dss", "10.5.1")
    assert retention.status == "partial"
    assert retention.evidenced == (("evidence.written", 1),)
    (reason,) = retention.missing
    assert "retention_days_at_least 365" in reason
    assert str(retention_days) in reason
    assert _result(results, "pci_dss", "6.3.3").status == "evidenced"


def test_retention_without_an_evidence_write_is_missing(catalogs: dict[str, ControlCatalog]) -> None:
    events = _without(full_cycle_events(), "evidence.written")
    results = map_controls(events, ["pci_dss"], catalogs, retention_days=30)
    retention = _result(results, "pci_dss", "10.5.1")
    assert retention.status == "missing"
    assert retention.missing[0] == "evidence.written"
    assert "retention_days_at_least 365" in retention.missing[1]


def test_events_without_an_actor_leave_pci_10_2_partial(catalogs: dict[str, ControlCatalog]) -> None:
    events = full_cycle_events()
    events[3] = {**events[3], "actor": None}
    events[7] = {**events[7], "actor": ""}
    result = _result(map_controls(events, ["pci_dss"], catalogs, retention_days=365), "pci_dss", "10.2")
    assert result.status == "partial"
    assert any("events_attributed" in m and f"2 of {len(events)}" in m for m in result.missing)


def test_optional_events_never_count_as_missing_but_are_listed_when_present(
    catalogs: dict[str, ControlCatalog],
) -> None:
    bare = map_controls(full_cycle_events(), ["soc2"], catalogs, retention_days=365)
    cc72 = _result(bare, "soc2", "CC7.2")
    assert cc72.status == "evidenced"
    assert set(dict(cc72.evidenced)) == {"preflight.evaluated", "verify.host"}

    extra = [_event("health.checked", "prod"), _event("preflight.held", "i-9"), _event("approval.answered")]
    rich = map_controls(full_cycle_events() + extra, ["soc2"], catalogs, retention_days=365)
    cc72 = _result(rich, "soc2", "CC7.2")
    assert cc72.status == "evidenced"
    assert dict(cc72.evidenced)["health.checked"] == 1
    assert dict(cc72.evidenced)["preflight.held"] == 1
    assert dict(_result(rich, "soc2", "CC8.1").evidenced)["approval.answered"] == 1


def test_min_count_is_enforced(tmp_path: Path) -> None:
    _write(tmp_path, "demo.yaml", _catalog_data())
    demo = load_control_catalogs(tmp_path)

    def status(events: list[dict]) -> ControlResult:
        (result,) = map_controls(events, ["demo"], demo, retention_days=30)
        return result

    one = status([_event("patch.sent"), _event("stage.verified")])
    assert one.status == "partial"
    assert one.missing == ("patch.sent",)
    assert one.evidenced == (("stage.verified", 1),)
    two = status([_event("patch.sent"), _event("patch.sent"), _event("stage.verified")])
    assert two.status == "evidenced"
    assert two.evidenced == (("patch.sent", 2), ("stage.verified", 1))
    assert status([_event("patch.sent")]).status == "missing"
    assert status([]).missing == ("patch.sent", "stage.verified")


def test_events_count_whatever_their_result(tmp_path: Path) -> None:
    _write(tmp_path, "demo.yaml", _catalog_data())
    demo = load_control_catalogs(tmp_path)
    events = [{**_event("patch.sent"), "result": "error"}, _event("patch.sent"), _event("stage.verified")]
    (result,) = map_controls(events, ["demo"], demo, retention_days=30)
    assert result.status == "evidenced"


def test_output_order_is_deterministic(catalogs: dict[str, ControlCatalog]) -> None:
    events = _without(full_cycle_events(), "risk.assessed")
    first = map_controls(events, ["sox", "pci_dss", "soc2"], catalogs, retention_days=400)
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    assert map_controls(shuffled, ["sox", "pci_dss", "soc2"], catalogs, retention_days=400) == first
    order = [(r.framework, r.control_id) for r in first]
    expected = [(f, c.id) for f in ("sox", "pci_dss", "soc2", REFERENCES) for c in catalogs[f].controls]
    assert order == expected


def test_references_can_be_left_out_and_frameworks_are_not_repeated(
    catalogs: dict[str, ControlCatalog],
) -> None:
    results = map_controls(
        full_cycle_events(), ["soc2", "soc2"], catalogs, retention_days=365, include_references=False
    )
    assert [r.control_id for r in results] == ["CC6.1", "CC7.1", "CC7.2", "CC8.1"]


def test_unknown_framework_is_an_error(catalogs: dict[str, ControlCatalog]) -> None:
    with pytest.raises(ValueError, match="iso27001"):
        map_controls([], ["iso27001"], catalogs, retention_days=365)


def test_framework_enum_members_are_accepted(catalogs: dict[str, ControlCatalog]) -> None:
    results = map_controls(
        full_cycle_events(), [Framework.pci_dss], catalogs, retention_days=365, include_references=False
    )
    assert {r.framework for r in results} == {"pci_dss"}


def test_controls_summary_counts_statuses_per_framework(catalogs: dict[str, ControlCatalog]) -> None:
    events = _without(full_cycle_events(), "access.reviewed")
    results = map_controls(events, ["soc2", "hipaa"], catalogs, retention_days=365)
    summary = controls_summary(results)
    assert list(summary) == ["soc2", "hipaa", REFERENCES]
    assert summary["soc2"] == {"evidenced": 3, "partial": 0, "missing": 1, "total": 4}
    assert summary["hipaa"] == {"evidenced": 3, "partial": 1, "missing": 0, "total": 4}
    assert summary[REFERENCES]["total"] == len(catalogs[REFERENCES].controls)


def test_result_to_dict_is_plain_data(catalogs: dict[str, ControlCatalog]) -> None:
    result = _result(
        map_controls(full_cycle_events(), ["pci_dss"], catalogs, retention_days=365), "pci_dss", "10.5.1"
    )
    assert result.to_dict() == {
        "framework": "pci_dss",
        "control_id": "10.5.1",
        "title": result.title,
        "status": "evidenced",
        "evidenced": [{"event": "evidence.written", "count": 1}],
        "missing": [],
        "references": ["https://docs-prv.pcisecuritystandards.org/PCI%20DSS/Standard/PCI-DSS-v4_0_1.pdf"],
    }


# --------------------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frameworks", "days"),
    [
        (["pci_dss", "hipaa"], 2190),
        (["hipaa", "pci_dss"], 2190),
        (["pci_dss"], 365),
        (["soc2"], 365),
        (["soc2", "pci_dss", "sox"], 2555),
        (ALL_FRAMEWORKS, 2555),
    ],
)
def test_retention_is_the_strictest_of_the_selected_frameworks(
    catalogs: dict[str, ControlCatalog], frameworks: list[str], days: int
) -> None:
    assert retention_days_for(frameworks, catalogs) == days


def test_retention_needs_a_framework_that_states_one(catalogs: dict[str, ControlCatalog]) -> None:
    with pytest.raises(ValueError, match="retention"):
        retention_days_for([REFERENCES], catalogs)
    with pytest.raises(ValueError, match="retention"):
        retention_days_for([], catalogs)
    with pytest.raises(ValueError, match="nist"):
        retention_days_for(["nist"], catalogs)


# --------------------------------------------------------------------------------------------------
# Malformed catalogs
# --------------------------------------------------------------------------------------------------


def _control(**overrides: Any) -> dict[str, Any]:
    control = _catalog_data()["controls"][0]
    control.update(overrides)
    return control


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (_catalog_data(owner="compliance"), "owner", "Extra inputs"),
        (_catalog_data(controls=[_control(evidenced=[])]), "controls[0] (D-1).evidenced", "Extra inputs"),
        (
            _catalog_data(controls=[_control(evidenced_by=[{"event": "patch.applied"}])]),
            "controls[0] (D-1).evidenced_by[0].event",
            "unknown event type 'patch.applied'",
        ),
        (
            _catalog_data(controls=[_control(evidenced_by=[{"event": "patch.sent", "min": 2}])]),
            "controls[0] (D-1).evidenced_by[0].min",
            "Extra inputs",
        ),
        (
            _catalog_data(controls=[_control(requires={"retention_years": 1})]),
            "controls[0] (D-1).requires.retention_years",
            "Extra inputs",
        ),
        (
            _catalog_data(controls=[{k: v for k, v in _control().items() if k != "id"}]),
            "controls[0].id",
            "Field required",
        ),
        (_catalog_data(controls=[_control(), _control()]), "controls", "D-1"),
        (
            _catalog_data(controls=[_control(evidenced_by=[{"event": "patch.sent", "optional": True}])]),
            "controls[0] (D-1).evidenced_by",
            "required (not optional)",
        ),
        (
            _catalog_data(
                controls=[_control(evidenced_by=[{"event": "patch.sent"}, {"event": "patch.sent"}])]
            ),
            "controls[0] (D-1).evidenced_by",
            "patch.sent",
        ),
        (
            _catalog_data(controls=[_control(sources=["not a url"])]),
            "controls[0] (D-1).sources[0]",
            "pattern",
        ),
        (_catalog_data(version=None), "version", "string"),
        (_catalog_data(framework="other"), "framework", "does not match the file name"),
    ],
)
def test_malformed_catalog_names_file_and_field(
    tmp_path: Path, data: dict[str, Any], field: str, message: str
) -> None:
    _write(tmp_path, "demo.yaml", data)
    with pytest.raises(ControlCatalogError) as caught:
        load_control_catalogs(tmp_path)
    text = str(caught.value)
    assert "demo.yaml" in text
    assert any(loc == field and message in msg for loc, msg in caught.value.problems), text
    assert f"{field}: " in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("framework: demo\nframework: demo\n", "duplicate key 'framework'"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("framework: [unclosed\n", "not valid YAML"),
    ],
)
def test_unreadable_catalog_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, "demo.yaml", text)
    with pytest.raises(ControlCatalogError, match=message) as caught:
        load_control_catalogs(tmp_path)
    assert "demo.yaml" in str(caught.value)


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ControlCatalogError, match="no control catalog"):
        load_control_catalogs(tmp_path)


def test_catalog_error_is_a_value_error() -> None:
    assert issubclass(ControlCatalogError, ValueError)


def test_the_distribution_addendum_closes_what_the_sealed_pack_could_not(
    catalogs: dict[str, ControlCatalog],
) -> None:
    """The pack is sealed before it is sent: SOX ITGC-CM-04 reads partial in it. The addendum, chained to
    the pack by its manifest digest, maps the distribution and lists the controls it changes."""
    from patchcycle.domain.controls import distribution_addendum

    events = [
        *_without(full_cycle_events(), "evidence.distributed"),
        _event("approval.answered", "prod", n=99),
    ]
    sealed = map_controls(events, ["sox", "soc2"], catalogs, retention_days=2555)
    pack = {
        "tenant": {"frameworks": ["sox", "soc2"]},
        "events": events,
        "controls": [c.to_dict() for c in sealed],
    }
    assert _result(sealed, "sox", "ITGC-CM-04").status == "partial"
    sent = _event("evidence.distributed", "compliance@example.com", n=120)
    addendum = distribution_addendum(
        pack, sent, catalogs, pack_url="s3://b/p", pack_manifest_sha256="ab" * 32, retention_days=2555
    )
    assert (addendum["pack"], addendum["pack_manifest_sha256"], addendum["distributed"]) == (
        "s3://b/p",
        "ab" * 32,
        sent,
    )
    changed = {(c["framework"], c["control_id"]): c for c in addendum["controls"]}
    cm04 = changed[("sox", "ITGC-CM-04")]
    assert (cm04["status_in_pack"], cm04["status"], cm04["missing"]) == ("partial", "evidenced", [])
    assert all(c["status"] == "evidenced" for c in changed.values())
    assert ("soc2", "CC8.1") not in changed  # unchanged controls are not repeated
