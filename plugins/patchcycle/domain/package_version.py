"""Ordering Linux package versions as the package managers do, to tell what a host really installed.

OS Config patch jobs name packages without versions, so after a job the installed version is read back
from the inventory and compared with the plan's: equal, newer (the cloud installed a later update than
the plan froze) or older (the planned update is still missing).
"""

from __future__ import annotations

import re

_SEGMENT = re.compile(r"(~|\^|[0-9]+|[A-Za-z]+)")


def split_epoch(version: str) -> tuple[int, str]:
    """``"1:1.1.1k-14.el8"`` -> ``(1, "1.1.1k-14.el8")``; no epoch is epoch 0."""
    head, sep, rest = version.partition(":")
    if sep and head.isdigit():
        return int(head), rest
    return 0, version


def _compare_segments(a: str, b: str) -> int:
    """rpmvercmp's rules: alphanumeric runs compared in turn, numbers numerically and newer than
    letters, ``~`` older than anything (also dpkg's rule), separators ignored."""
    sa, sb = _SEGMENT.findall(a), _SEGMENT.findall(b)
    for x, y in zip(sa, sb, strict=False):
        if x == y:
            continue
        if x == "~" or y == "~":
            return -1 if x == "~" else 1
        if x == "^" or y == "^":
            return 1 if x == "^" else -1
        if x.isdigit() and y.isdigit():
            return (int(x) > int(y)) - (int(x) < int(y))
        if x.isdigit() != y.isdigit():
            return 1 if x.isdigit() else -1
        return int(x > y) - int(x < y)
    rest_a, rest_b = sa[len(sb) :], sb[len(sa) :]
    if rest_a:
        return -1 if rest_a[0] == "~" else 1
    if rest_b:
        return 1 if rest_b[0] == "~" else -1
    return 0


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as package version ``a`` is older than, equal to or newer than ``b``
    (``[epoch:]version[-release]``, RPM or Debian)."""
    ea, va = split_epoch(a.strip())
    eb, vb = split_epoch(b.strip())
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_segments(va, vb)
