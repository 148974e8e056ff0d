"""A tenant's rate control as numbers for a run over a given count of targets.

``RateControl`` values are written as SSM's ``MaxConcurrency`` and ``MaxErrors`` accept them: a count
(``"10"``) or a percentage of the targets (``"25%"``) (SendCommand, "MaxConcurrency" / "MaxErrors",
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html). Run Command
applies them itself to a command's targets; Patchcycle applies the same numbers where a cloud has no
such control: Azure Arc machines are started one ``installPatches`` at a time, a stage's verdict counts
its failed hosts, and a GCP patch job's disruption budget is derived from them.

No AWS document states how a percentage is rounded. The conservative reading is taken for both: fewer
errors tolerated (rounded down, so "10%" of 9 targets tolerates none) and fewer hosts at once (rounded
down, but at least one so that a run can make progress).
"""

from __future__ import annotations

import math

from patchcycle.config.models import RateControl


def _percent(value: str) -> int | None:
    """The percentage in ``"25%"`` as 25, or None for an absolute count."""
    return int(value[:-1]) if value.endswith("%") else None


def _check_targets(targets: int) -> None:
    if targets < 0:
        raise ValueError(f"targets must be zero or more, got {targets}")


def allowed_errors(rate: RateControl, targets: int) -> int:
    """Number of failed targets tolerated in a run over ``targets`` hosts.

    A percentage is rounded down (``"10%"`` of 19 targets tolerates 1 error); a count is returned as
    written.
    """
    _check_targets(targets)
    percent = _percent(rate.max_errors)
    if percent is None:
        return int(rate.max_errors)
    return math.floor(targets * percent / 100)


def concurrency(rate: RateControl, targets: int) -> int:
    """Number of hosts patched at once in a run over ``targets`` hosts.

    A percentage is rounded down but never below one; the result never exceeds ``targets`` and is zero
    only when there are no targets.
    """
    _check_targets(targets)
    if targets == 0:
        return 0
    percent = _percent(rate.max_concurrency)
    wanted = int(rate.max_concurrency) if percent is None else math.floor(targets * percent / 100)
    return min(max(1, wanted), targets)
