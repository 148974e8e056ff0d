"""Uniqueness of a configuration list, one rule for every file the project reads (tenants, exception
registers): the error names what must be unique and every value repeated."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from pydantic import AfterValidator


def duplicates(values: Iterable[Hashable]) -> list[Hashable]:
    """Values that occur more than once, in first-seen order."""
    counts = Counter(values)
    return [value for value, count in counts.items() if count > 1]


def require_unique(values: Iterable[Hashable], what: str) -> None:
    """Raise ``ValueError`` naming every repeated value."""
    repeated = duplicates(values)
    if repeated:
        listed = ", ".join(repr(str(value)) for value in repeated)
        raise ValueError(f"{what} must be unique; repeated: {listed}")


def unique(what: str, key: Callable[[Any], Hashable] | None = None) -> AfterValidator:
    """The check of a list field whose values (or each value's ``key``) must be unique, as annotation
    metadata: ``Annotated[list[GcpZone], unique("zones")]``. The error names ``what`` and every value
    repeated."""

    def check(values: list[Any]) -> list[Any]:
        require_unique((key(v) for v in values) if key else values, what)
        return values

    return AfterValidator(check)
