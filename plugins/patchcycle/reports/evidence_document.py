"""The evidence document as the report reads it: a typed view, checked against the published schemas.

:func:`read_evidence` validates a document against the schema of the ``schema_version`` it declares
(``include/schemas/evidence-<version>.schema.json``, 1.0 to 1.3) and returns the same object typed as
:class:`CycleEvidence`; a document that departs from its schema raises :class:`EvidenceSchemaError`,
naming the version and the JSON path of the problem.

The types promise only what every supported schema version guarantees, and
``tests/reports/test_evidence_document.py`` holds them to the schemas:

- a key the schemas require in every version is a required key here; one that a version may leave out
  (added in a later version, or optional) is ``NotRequired``;
- a value the schemas type (``string``, ``integer``, an enum...) has that type here; a value some
  version requires without saying its type (most of a host record, a stage's counts, the contents of the
  audit sections ``risk``, ``access``, ``exceptions``, ``trend``, and in 1.0 the summary counts and the
  approved patches) is ``object``: the reader must still check it;
- a few keys the cycle writes and the report reads are described by no schema version yet (listed in
  that test); they are ``NotRequired[object]``.

TypedDicts, not classes: the view is the document itself (nothing is copied or converted), so the
report built from it is the report built from the plain document. No ``from __future__ import
annotations`` here: Python 3.11's TypedDict cannot see ``NotRequired`` in a string annotation.
"""

import functools
import json
import logging
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast

import jsonschema
from jsonschema.exceptions import best_match

from patchcycle.domain.evidence import EVIDENCE_SCHEMA_VERSIONS, evidence_schema_path

log = logging.getLogger(__name__)

SchemaVersion = Literal["1.0", "1.1", "1.2", "1.3", "1.4"]
FrameworkId = Literal["soc2", "pci_dss", "hipaa", "sox"]
#: ``refused`` from 1.2.
Outcome = Literal["completed", "partial", "failed", "planned", "refused"]
Environment = Literal["nonprod", "staging", "prod"]
#: ``rejected`` from 1.1.
StageStatus = Literal["succeeded", "failed", "skipped", "not_run", "rejected"]
Cloud = Literal["aws", "azure", "gcp"]
#: ``not_assessed`` from 1.1.
FinalState = Literal[
    "patched", "failed", "held", "non_compliant", "excepted", "not_run", "out_of_scope", "not_assessed"
]
ControlStatus = Literal["evidenced", "partial", "missing"]


class Tenant(TypedDict):
    """The tenant the cycle ran for."""

    id: str
    display_name: str
    frameworks: list[FrameworkId]


class Cycle(TypedDict):
    """The run: its date, outcome, plan hash and overrides."""

    cycle_date: str
    run_id: str
    plan_hash: str
    dry_run: bool
    outcome: Outcome
    generated_by: str
    started_at: NotRequired[str | None]
    finished_at: NotRequired[str | None]
    soak_hours_override: NotRequired[float | None]
    soak_override_reason: NotRequired[str | None]
    refused_reasons: NotRequired[list[str]]  # 1.2
    halted_reason: NotRequired[str | None]  # 1.2
    # Written by the cycle, described by no schema version yet.
    run_type: NotRequired[object]
    triggered_by: NotRequired[object]
    window_override_reason: NotRequired[object]


class Summary(TypedDict):
    """The fleet's hosts by final state, and the same by environment and by cloud (integers and
    ``compliance_*`` ratios from 1.1; evidence-1.0 types only the fleet's two ratios)."""

    hosts_total: object
    in_scope: object
    patched: object
    failed: object
    held: object
    non_compliant: NotRequired[int]  # 1.1
    excepted: object
    not_run: object
    out_of_scope: object
    not_assessed: NotRequired[int]  # 1.1
    compliance_before: float
    compliance_after: float
    by_environment: object
    by_cloud: object


class Stage(TypedDict):
    """One environment's stage: its status, host counts, commands and reason."""

    environment: Environment
    status: StageStatus
    hosts_targeted: object
    hosts_succeeded: object
    hosts_failed: object
    hosts_not_assessed: NotRequired[int]  # 1.1
    backups: object
    command_ids: list[str]
    reason: object


class InstalledVersion(TypedDict):
    """One planned update read back on a host whose cloud cannot pin versions (1.1)."""

    patch_id: NotRequired[str | None]
    package: NotRequired[str | None]
    kb: NotRequired[str | None]
    planned: str | None
    installed: str | None
    status: NotRequired[str | None]


class HostRecord(TypedDict):
    """One host of the cycle and how it ended (``reason`` is a non-empty string unless it was patched)."""

    host_id: object
    name: object
    cloud: Cloud
    account: object
    region: object
    environment: object
    os_family: object
    criticality: object
    agent_status: object
    final_state: FinalState
    reason: str | None
    backup_id: object
    command_id: object
    missing_before: object
    missing_after: object
    failed_after: object
    installed_after: object
    installed_versions: NotRequired[list[InstalledVersion] | None]  # 1.1
    patch_ids: NotRequired[list[str] | None]  # 1.3
    patched_at: NotRequired[str | None]  # 1.3


class BaselineDecision(TypedDict):
    """The baseline applied to one OS family and the catalog sources it was read from (1.1)."""

    os_family: str
    cutoff: NotRequired[str]
    sources: NotRequired[list[str]]
    notes: NotRequired[list[str]]


class Plan(TypedDict):
    """The frozen plan: its hash, per-family decisions and approved patches (untyped in 1.0)."""

    hash: str
    baselines: NotRequired[list[BaselineDecision]]  # 1.1
    approved: NotRequired[dict[str, list[object]]]
    rds_os_updates: NotRequired[list[str]]


class Event(TypedDict):
    """One audit event."""

    at: str
    actor: str
    action: str
    target: object
    result: object
    details: dict[str, object]


class ControlResult(TypedDict):
    """One control of a framework and the evidence for it."""

    framework: object
    control_id: object
    title: object
    status: ControlStatus
    evidenced: object
    missing: object
    # Written by the cycle, described by no schema version yet.
    references: NotRequired[object]


class Retention(TypedDict):
    """How long the evidence store keeps the pack, and in which lock mode."""

    days: object
    mode: object


class RiskReport(TypedDict):
    """Risk and SLA: the feeds, the summary counts and the open patches."""

    as_of: object
    feeds: object
    summary: object
    open: object
    # Written by the cycle, described by no schema version yet.
    open_truncated: NotRequired[object]


class AccessReview(TypedDict):
    """Who could run the cycle's automation."""

    reviewed_at: object
    principals: object
    grants: object
    # Written by the cycle, described by no schema version yet.
    permission_sets: NotRequired[object]


class TrendPoint(TypedDict):
    """One cycle's compliance in the trend."""

    cycle_date: object
    compliance_after: object
    outcome: object
    # Written by the cycle, described by no schema version yet.
    compliance_before: NotRequired[object]


class CycleEvidence(TypedDict):
    """A cycle's evidence document (``evidence.json``), schema 1.0 to 1.4."""

    schema_version: SchemaVersion
    tenant: Tenant
    cycle: Cycle
    summary: Summary
    stages: list[Stage]
    hosts: list[HostRecord]
    plan: Plan
    events: list[Event]
    controls: NotRequired[list[ControlResult]]
    controls_summary: NotRequired[dict[str, object]]
    retention: NotRequired[Retention]
    risk: NotRequired[RiskReport]
    trend: NotRequired[list[TrendPoint]]
    exceptions: NotRequired[dict[str, object] | None]
    access: NotRequired[AccessReview | None]
    sensor_upgrades: NotRequired[dict[str, object]]


class EvidenceSchemaError(ValueError):
    """An evidence document that does not match the schema of the ``schema_version`` it declares."""

    def __init__(self, version: str, path: str, problem: str, count: int = 1) -> None:
        self.version = version
        self.path = path
        self.problem = problem
        self.count = count
        more = f" ({count - 1:,} more)" if count > 1 else ""
        if version in EVIDENCE_SCHEMA_VERSIONS:
            head = (
                f"evidence document of schema_version {version} does not match evidence-{version}.schema.json"
            )
        else:
            head = "evidence document cannot be checked against a schema"
        super().__init__(f"{head} at {path}: {problem}{more}")


@functools.cache
def _validator(version: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(evidence_schema_path(version).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _clipped(text: str, limit: int = 300) -> str:
    """jsonschema's message quotes the offending value, which can be a whole host list."""
    return text if len(text) <= limit else text[:limit] + "..."


def evidence_schema_error(document: object) -> EvidenceSchemaError | None:
    """Where ``document`` departs from the schema of its own ``schema_version`` (the most relevant of its
    problems, as ``jsonschema.validate`` would report it), or None when it matches."""
    if not isinstance(document, Mapping):
        return EvidenceSchemaError("?", "$", f"not a JSON object but {type(document).__name__}")
    version = document.get("schema_version")
    if version not in EVIDENCE_SCHEMA_VERSIONS:
        known = ", ".join(EVIDENCE_SCHEMA_VERSIONS)
        return EvidenceSchemaError(
            str(version), "$.schema_version", f"unknown schema_version {version!r} (known: {known})"
        )
    errors = list(_validator(version).iter_errors(document))
    if not errors:
        return None
    error = best_match(errors)
    return EvidenceSchemaError(version, error.json_path, _clipped(error.message), len(errors))


def read_evidence(document: Mapping[str, Any], *, strict: bool = True) -> CycleEvidence:
    """``document`` typed as :class:`CycleEvidence` once it matches the schema of its ``schema_version``.

    Raises :class:`EvidenceSchemaError` when it does not; with ``strict=False`` logs that error as a
    warning instead and returns the document as it is (its values then need the reader's own checks).
    """
    error = evidence_schema_error(document)
    if error is not None:
        if strict:
            raise error
        log.warning("%s", error)
    return cast(CycleEvidence, document)
