"""The health gate's verdict: may the next wave go, judging by Dynatrace's open problems and error rate?

Two signals, both from Dynatrace (read by :class:`patchcycle.hooks.dynatrace.DynatraceHook`):

* open problems concerning the wave's hosts or services: any OPEN problem whose severity is ERROR or
  AVAILABILITY makes the environment unhealthy (performance, resource-contention and custom alerts do not
  stop a patch cycle; they are someone else's page);
* the service error rate (``builtin:service.errors.total.rate``, percent of requests failing) now versus
  before the wave: unhealthy when it rose above ``baseline * (1 + tolerance)``, where ``tolerance`` is the
  environment's ``health_error_rate_tolerance`` (a share: 0.1 allows a 10 % relative rise). A zero
  baseline allows no rise at all; a rate exactly at the limit is healthy.

A missing rate (no data from Dynatrace for the baseline or now) is reported as a reason, and is healthy
unless the tenant requires data (``require_data``): a service without traffic has no error rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Problem severities that stop a wave.
BLOCKING_SEVERITIES = frozenset({"ERROR", "AVAILABILITY"})
# Relative slack when comparing the rate with its limit, so float rounding never flips "exactly at".
_REL_EPSILON = 1e-9


@dataclass(frozen=True)
class HealthVerdict:
    """Whether the environment is healthy enough to continue, and every reason that was found."""

    healthy: bool
    reasons: list[str] = field(default_factory=list)


def _rate(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} {value!r} is not an error rate (a finite, non-negative percentage)")
    return number


def blocking_problems(open_problems: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The problems that stop a wave: OPEN (or status absent) with severity ERROR or AVAILABILITY."""
    return [
        p
        for p in open_problems
        if str(p.get("severityLevel", "")).upper() in BLOCKING_SEVERITIES
        and str(p.get("status", "OPEN")).upper() == "OPEN"
    ]


def describe_problem(problem: Mapping[str, Any]) -> str:
    """``P-2401 (ERROR): Failure rate increase on payments, affecting HOST-1, SERVICE-2``."""
    affected = [
        str((e.get("entityId") or {}).get("id") or e.get("name") or "?")
        for e in problem.get("affectedEntities") or []
        if isinstance(e, Mapping)
    ]
    text = (
        f"{problem.get('displayId') or problem.get('problemId') or '<no id>'} "
        f"({problem.get('severityLevel')}): {problem.get('title') or '<no title>'}"
    )
    return f"{text}, affecting {', '.join(affected)}" if affected else text


def health_verdict(
    open_problems: Sequence[Mapping[str, Any]],
    baseline_rate: float | None,
    current_rate: float | None,
    tolerance: float,
    require_data: bool = False,
) -> HealthVerdict:
    """The health verdict from the open problems and the error rate (percent) before and now.

    ``tolerance`` is a share (0.1 = the rate may rise by 10 % of the baseline). Raises ``ValueError`` for a
    negative or non-finite tolerance or rate.
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance {tolerance!r} is not a share (a finite number >= 0, e.g. 0.1)")
    baseline = _rate(baseline_rate, "baseline_rate")
    current = _rate(current_rate, "current_rate")
    healthy = True
    reasons: list[str] = []

    for problem in blocking_problems(open_problems):
        healthy = False
        reasons.append(f"open problem {describe_problem(problem)}")

    if baseline is None or current is None:
        missing = " and ".join(
            name for name, value in (("baseline", baseline), ("current", current)) if value is None
        )
        if require_data:
            healthy = False
            reasons.append(f"no error-rate data for the {missing} rate, and this tenant requires data")
        else:
            reasons.append(f"no error-rate data for the {missing} rate; not judged on the error rate")
    else:
        limit = baseline * (1 + tolerance)
        if current > limit and not math.isclose(current, limit, rel_tol=_REL_EPSILON, abs_tol=1e-12):
            healthy = False
            rise = f"+{(current - baseline) / baseline:.1%}" if baseline else "from zero"
            reasons.append(
                f"error rate {current:g}% is above the limit {limit:g}% (baseline {baseline:g}% "
                f"+ {tolerance * 100:g}% tolerance; {rise})"
            )
    return HealthVerdict(healthy=healthy, reasons=reasons)
