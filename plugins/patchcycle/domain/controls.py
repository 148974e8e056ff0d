"""Compliance controls as data, and what one cycle's evidence shows for each of them.

The catalogs in ``include/controls/*.yaml`` map each control of a framework (SOC 2, PCI DSS, HIPAA,
SOX ITGC, plus non-selectable references such as NIST SP 800-40r4 and CIS v8) to the evidence event
types that demonstrate it. :func:`map_controls` counts a cycle's events and says, per control, what
was evidenced and what is missing. The mapping is a compliance judgement: the catalogs are reviewed
by the compliance team like code (see ``include/controls/README.md``).

Pure apart from :func:`load_control_catalogs`, which reads the YAML files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

__all__ = [
    "EVENT_TYPES",
    "REFERENCES",
    "STATUSES",
    "Control",
    "ControlCatalog",
    "ControlCatalogError",
    "ControlResult",
    "DocumentRequirements",
    "EvidenceKind",
    "EvidenceRequirement",
    "controls_summary",
    "default_controls_dir",
    "load_control_catalogs",
    "map_controls",
    "retention_days_for",
]

EVENT_TYPES: tuple[str, ...] = (
    "plan.frozen",
    "inventory.collected",
    "preflight.evaluated",
    "preflight.held",
    "preflight.kev_exposure",
    "zero_day.no_fix",
    "backup.created",
    "backup.reused",
    "backup.completed",
    "backup.failed",
    "patch.sent",
    "patch.resumed",
    "patch.finished",
    "verify.host",
    "stage.verified",
    "soak.started",
    "soak.completed",
    "soak.override_requested",
    "evidence.written",
    "access.reviewed",
    "risk.assessed",
    "exceptions.applied",
    "evidence.distributed",
    "health.checked",
    "approval.answered",
    "incident.triggered",
    "drift.checked",
    "drift.reported",
    "saml.certificates_checked",
    "falcon.sensors_assessed",
    "falcon.sensors_validated",
    "falcon.install_sent",
    "falcon.rollout_reported",
    "falcon.prevention_phase_decided",
    "falcon.prevention_phase_changed",
    "falcon.exclusion_created",
)
"""The ``action`` of every evidence event a cycle, a daily drift run or a daily SAML certificate watch
records that a catalog may map (catalogs may only map these)."""

EvidenceKind = Literal["cycle", "drift", "saml", "rollout"]
"""Which evidence a control is judged on: a cycle's pack (``controls``), a daily drift report's
(``drift_controls``), a daily SAML certificate watch's record (``saml_controls``) or a Falcon sensor
roll-out's pack (``rollout_controls``)."""

REFERENCES = "references"
"""Catalog id of the references (NIST SP 800-40r4, CIS v8): mapped, but not a framework a tenant picks."""

STATUSES: tuple[str, ...] = ("evidenced", "partial", "missing")
"""A control's status: every required item met, some of them, or none."""

Status = Literal["evidenced", "partial", "missing"]
_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_Url = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^https?://\S+$")]


# --------------------------------------------------------------------------------------------------
# Catalog models
# --------------------------------------------------------------------------------------------------


class _CatalogModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvidenceRequirement(_CatalogModel):
    """An event type that evidences a control, how many are needed, and whether every tenant has it."""

    event: str
    min_count: int = Field(default=1, ge=1)
    optional: bool = False

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str) -> str:
        if value not in EVENT_TYPES:
            raise ValueError(f"unknown event type {value!r}; expected one of {', '.join(EVENT_TYPES)}")
        return value


class DocumentRequirements(_CatalogModel):
    """Conditions on the evidence document as a whole rather than on counts of events."""

    retention_days_at_least: int | None = Field(default=None, ge=1)
    events_attributed: bool = False
    """Every event names who (actor), what (action), when (at) and the result."""


class Control(_CatalogModel):
    """One control of a framework and the evidence that demonstrates it."""

    id: _Text
    title: _Text
    requirement: _Text
    sources: list[_Url] = Field(min_length=1)
    evidenced_by: list[EvidenceRequirement] = Field(min_length=1)
    requires: DocumentRequirements = Field(default_factory=DocumentRequirements)
    notes: _Text | None = None

    @field_validator("evidenced_by")
    @classmethod
    def _sound_evidence(cls, value: list[EvidenceRequirement]) -> list[EvidenceRequirement]:
        events = [r.event for r in value]
        duplicates = sorted({e for e in events if events.count(e) > 1})
        if duplicates:
            raise ValueError(f"event types listed more than once: {', '.join(duplicates)}")
        if all(r.optional for r in value):
            raise ValueError("at least one event type must be required (not optional)")
        return value


class ControlCatalog(_CatalogModel):
    """The controls of one framework (or of the references), in the order they are reported."""

    framework: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
    version: _Text
    name: _Text
    retention_days: int | None = Field(default=None, ge=1)
    retention_basis: _Text | None = None
    retention_sources: list[_Url] = Field(default_factory=list)
    controls: list[Control] = Field(min_length=1)
    drift_controls: list[Control] = Field(default_factory=list)
    """The controls the daily drift report evidences (judged on its events, not a cycle's)."""
    saml_controls: list[Control] = Field(default_factory=list)
    """The controls the daily SAML certificate watch evidences (judged on its record's events)."""
    rollout_controls: list[Control] = Field(default_factory=list)
    """The controls a Falcon sensor roll-out evidences (endpoint protection; judged on its run's events)."""

    @field_validator("controls", "drift_controls", "saml_controls", "rollout_controls")
    @classmethod
    def _unique_ids(cls, value: list[Control]) -> list[Control]:
        ids = [c.id for c in value]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"control ids listed more than once: {', '.join(duplicates)}")
        return value

    def control(self, control_id: str) -> Control:
        """The control with ``control_id``; KeyError if the catalog has none."""
        for control in self.controls:
            if control.id == control_id:
                return control
        raise KeyError(f"{self.framework} has no control {control_id!r}")

    def controls_for(self, evidence: EvidenceKind) -> list[Control]:
        """The controls judged on ``evidence``: a cycle's pack, a daily drift report or a SAML watch."""
        if evidence == "saml":
            return self.saml_controls
        if evidence == "rollout":
            return self.rollout_controls
        return self.drift_controls if evidence == "drift" else self.controls


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


class ControlCatalogError(ValueError):
    """A control catalog that cannot be used, naming the file and every offending field.

    ``problems`` holds ``(location, message)`` pairs; ``location`` is a field path such as
    ``controls[2] (10.5.1).evidenced_by[0].event``, or empty for problems with the file as a whole.
    """

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        lines = [f"{self.path}: invalid control catalog:"]
        lines += [f"  - {loc}: {msg}" if loc else f"  - {msg}" for loc, msg in self.problems]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problems))


def default_controls_dir() -> Path:
    """``include/controls`` in the repository."""
    # plugins/patchcycle/domain/controls.py -> repository root
    return Path(__file__).resolve().parents[3] / "include" / "controls"


def _location(loc: tuple[Any, ...], data: Any) -> str:
    """``("controls", 2, "evidenced_by", 0, "event")`` -> ``controls[2] (10.5.1).evidenced_by[0].event``."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, Mapping) and isinstance(node.get("id"), str | int | float):
                label += f" ({node['id']})"
            parts.append(label)
        else:
            parts.append(f".{item}" if parts else str(item))
            node = node.get(item) if isinstance(node, Mapping) else None
    return "".join(parts)


def _read_catalog(path: Path) -> ControlCatalog:
    import yaml

    try:
        # The project's strict, bounded reader (imported here, not at module import, to keep parses light).
        from patchcycle.config.yaml_files import load_bounded_yaml

        data = load_bounded_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ControlCatalogError(path, [("", f"cannot read file: {exc}")]) from exc
    except yaml.YAMLError as exc:
        raise ControlCatalogError(path, [("", f"not valid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise ControlCatalogError(path, [("", "a control catalog must be a YAML mapping")])
    try:
        catalog = ControlCatalog.model_validate(data)
    except ValidationError as exc:
        problems = [(_location(tuple(e["loc"]), data), e["msg"]) for e in exc.errors()]
        raise ControlCatalogError(path, problems) from None
    if catalog.framework != path.stem:
        raise ControlCatalogError(
            path, [("framework", f"{catalog.framework!r} does not match the file name {path.name!r}")]
        )
    return catalog


def load_control_catalogs(directory: Path | None = None) -> dict[str, ControlCatalog]:
    """Every ``*.yaml`` catalog in ``directory`` (default ``include/controls``), keyed by framework id.

    Raises :class:`ControlCatalogError` naming the file and field of the first broken catalog.
    """
    directory = directory or default_controls_dir()
    paths = sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    if not paths:
        raise ControlCatalogError(directory, [("", "no control catalog (*.yaml) in this directory")])
    catalogs: dict[str, ControlCatalog] = {}
    for path in paths:
        catalog = _read_catalog(path)
        if catalog.framework in catalogs:
            raise ControlCatalogError(path, [("framework", f"{catalog.framework!r} is defined twice")])
        catalogs[catalog.framework] = catalog
    return catalogs


# --------------------------------------------------------------------------------------------------
# Mapping a cycle's evidence to controls
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlResult:
    """What one cycle evidenced for one control, and what it did not."""

    framework: str
    control_id: str
    title: str
    status: Status
    evidenced: tuple[tuple[str, int], ...]
    """(event type, count) for every listed event type that met its ``min_count``, optional ones included."""
    missing: tuple[str, ...]
    """Required event types short of their ``min_count``, then unmet document requirements (described)."""
    references: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form for the evidence document and the report."""
        return {
            "framework": self.framework,
            "control_id": self.control_id,
            "title": self.title,
            "status": self.status,
            "evidenced": [{"event": e, "count": n} for e, n in self.evidenced],
            "missing": list(self.missing),
            "references": list(self.references),
        }


def _unattributed(events: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for e in events if not all(e.get(k) for k in ("actor", "action", "at", "result")))


def _document_checks(
    requires: DocumentRequirements, events: Sequence[Mapping[str, Any]], retention_days: int
) -> list[tuple[bool, str]]:
    """(met, description) for each document requirement the control states."""
    checks: list[tuple[bool, str]] = []
    if requires.retention_days_at_least is not None:
        need = requires.retention_days_at_least
        checks.append(
            (
                retention_days >= need,
                f"retention_days_at_least {need}: evidence is retained {retention_days} days",
            )
        )
    if requires.events_attributed:
        bad = _unattributed(events)
        if not events:
            checks.append((False, "events_attributed: the cycle recorded no events"))
        else:
            checks.append(
                (
                    bad == 0,
                    f"events_attributed: {bad} of {len(events)} events lack actor, action, time or result",
                )
            )
    return checks


def _evaluate(
    framework: str,
    control: Control,
    counts: Mapping[str, int],
    events: Sequence[Mapping[str, Any]],
    retention_days: int,
) -> ControlResult:
    evidenced: list[tuple[str, int]] = []
    missing: list[str] = []
    met = required = 0
    for req in control.evidenced_by:
        count = counts.get(req.event, 0)
        if count >= req.min_count:
            evidenced.append((req.event, count))
        if req.optional:
            continue
        required += 1
        if count >= req.min_count:
            met += 1
        else:
            missing.append(req.event)
    for ok, description in _document_checks(control.requires, events, retention_days):
        required += 1
        if ok:
            met += 1
        else:
            missing.append(description)
    status: Status = "evidenced" if met == required else ("missing" if met == 0 else "partial")
    return ControlResult(
        framework=framework,
        control_id=control.id,
        title=control.title,
        status=status,
        evidenced=tuple(evidenced),
        missing=tuple(missing),
        references=tuple(control.sources),
    )


def _selected(frameworks: Iterable[str], catalogs: Mapping[str, ControlCatalog]) -> list[str]:
    selected: list[str] = []
    for framework in frameworks:
        framework = str(framework)
        if framework not in catalogs:
            raise ValueError(f"no control catalog for framework {framework!r}; have {', '.join(catalogs)}")
        if framework not in selected:
            selected.append(framework)
    return selected


def map_controls(
    events: Sequence[Mapping[str, Any]],
    frameworks: Sequence[str],
    catalogs: Mapping[str, ControlCatalog],
    *,
    retention_days: int,
    include_references: bool = True,
    evidence: EvidenceKind = "cycle",
) -> list[ControlResult]:
    """Each control of the selected frameworks (then the references), with what ``events`` evidence.

    ``evidence`` says whose events these are: a cycle's (the catalogs' ``controls``), a daily drift
    run's (their ``drift_controls``) or a SAML certificate watch's (``saml_controls``); a framework
    without any has none here.

    Events are counted by ``action`` whatever their ``result``: a failed backup is still a recorded fact.
    Status is ``evidenced`` when every non-optional requirement is met, ``partial`` when some are and
    ``missing`` when none are. Order: frameworks as given, then each catalog's order.
    """
    selected = _selected(frameworks, catalogs)
    if include_references and REFERENCES in catalogs and REFERENCES not in selected:
        selected.append(REFERENCES)
    counts = Counter(str(e.get("action")) for e in events)
    return [
        _evaluate(framework, control, counts, events, retention_days)
        for framework in selected
        for control in catalogs[framework].controls_for(evidence)
    ]


def retention_days_for(frameworks: Sequence[str], catalogs: Mapping[str, ControlCatalog]) -> int:
    """The longest evidence retention any selected framework demands (e.g. PCI 365 + HIPAA 2190 -> 2190)."""
    demands = [catalogs[f].retention_days for f in _selected(frameworks, catalogs)]
    stated = [d for d in demands if d is not None]
    if not stated:
        raise ValueError(f"none of the frameworks {list(frameworks)} states a retention period")
    return max(stated)


def controls_summary(results: Iterable[ControlResult]) -> dict[str, dict[str, int]]:
    """Per framework, in result order: how many controls are evidenced, partial, missing, and in total."""
    summary: dict[str, dict[str, int]] = {}
    for result in results:
        counts = summary.setdefault(result.framework, {**dict.fromkeys(STATUSES, 0), "total": 0})
        counts[result.status] += 1
        counts["total"] += 1
    return summary


def distribution_addendum(
    pack_evidence: Mapping[str, Any],
    distributed: Mapping[str, Any],
    catalogs: Mapping[str, ControlCatalog],
    *,
    pack_url: str,
    pack_manifest_sha256: str,
    retention_days: int,
) -> dict[str, Any]:
    """The record written after a pack is distributed, chained to it by the pack's manifest digest.

    A pack is sealed before it is sent, so the controls that need its distribution (SOX ITGC-CM-04, NIST
    SP 800-40r4 reporting) read missing in it. The addendum maps the pack's events plus the distribution
    again and lists each control whose status that changes, with the event that changed it.
    """
    frameworks = [str(f) for f in (pack_evidence.get("tenant") or {}).get("frameworks") or []]
    before = {(c["framework"], c["control_id"]): c["status"] for c in pack_evidence.get("controls") or []}
    events = [*(pack_evidence.get("events") or []), dict(distributed)]
    after = map_controls(events, frameworks, catalogs, retention_days=retention_days)
    return {
        "kind": "distribution_addendum",
        "pack": pack_url,
        "pack_manifest_sha256": pack_manifest_sha256,
        "distributed": dict(distributed),
        "controls": [
            {**r.to_dict(), "status_in_pack": before.get((r.framework, r.control_id))}
            for r in after
            if before.get((r.framework, r.control_id)) != r.status
        ],
    }
