"""A small Falcon Query Language (FQL) parser and matcher, as much of FQL as the API's clients use.

Supported: ``field:'value'`` (case-insensitive equality), ``field:!'value'`` (not equal),
``field:*'pre*'`` (wildcard), ``field:~'part'`` (contains), ``field:['a','b']`` (any of),
``field:>='2025-05-18T00:00:00Z'`` and ``>``/``<``/``<=`` (ISO timestamps, numbers, then strings),
bare values (``field:true``, ``field:5``), ``+`` (AND, binding tighter) and ``,`` (OR) between terms,
and parentheses. Fields may be dotted paths into nested objects (``device_policies.prevention.applied``).
A list-valued field matches when any of its elements does. Anything else is a :class:`FqlError`, which
the API answers with 400 naming the problem, as Falcon does.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

COMPARISON_OPS = (">=", "<=", ">", "<")
PREFIX_OPS = ("!~", "!*", "!", "*", "~")


class FqlError(ValueError):
    """A filter the API refuses (400); the message names the field, value or position."""


@dataclass(frozen=True)
class Term:
    field: str
    op: str  # "" (equals) | "!" | "*" | "!*" | "~" | "!~" | ">=" | "<=" | ">" | "<"
    values: tuple[str, ...]


@dataclass(frozen=True)
class Node:
    kind: str  # "and" | "or"
    children: tuple[Node | Term, ...]


Expr = Node | Term


class _Parser:
    def __init__(self, text: str, fields: Callable[[str], bool]) -> None:
        self.text = text
        self.pos = 0
        self.known = fields

    def fail(self, what: str) -> FqlError:
        return FqlError(f"Invalid filter {self.text!r}: {what} at position {self.pos}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Expr:
        expr = self.parse_or()
        if self.peek():
            raise self.fail(f"unexpected {self.text[self.pos]!r}")
        return expr

    def parse_or(self) -> Expr:
        children = [self.parse_and()]
        while self.peek() == ",":
            self.pos += 1
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Node("or", tuple(children))

    def parse_and(self) -> Expr:
        children = [self.parse_atom()]
        while self.peek() == "+":
            self.pos += 1
            children.append(self.parse_atom())
        return children[0] if len(children) == 1 else Node("and", tuple(children))

    def parse_atom(self) -> Expr:
        if self.peek() == "(":
            self.pos += 1
            expr = self.parse_or()
            if self.peek() != ")":
                raise self.fail("missing ')'")
            self.pos += 1
            return expr
        return self.parse_term()

    def parse_term(self) -> Term:
        self.skip_ws()
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in "_.-"):
            self.pos += 1
        field = self.text[start : self.pos]
        if not field:
            raise self.fail("expected a field name")
        if not self.known(field):
            raise FqlError(f"Invalid filter {self.text!r}: unknown field {field!r}")
        if self.peek() != ":":
            raise self.fail(f"expected ':' after field {field!r}")
        self.pos += 1
        op = ""
        for candidate in (*COMPARISON_OPS, *PREFIX_OPS):
            if self.text.startswith(candidate, self.pos):
                op = candidate
                self.pos += len(candidate)
                break
        if self.peek() == "[":
            if op in COMPARISON_OPS:
                raise self.fail(f"a list cannot follow {op!r}")
            self.pos += 1
            values = [self.parse_value()]
            while self.peek() == ",":
                self.pos += 1
                values.append(self.parse_value())
            if self.peek() != "]":
                raise self.fail("missing ']'")
            self.pos += 1
            return Term(field, op, tuple(values))
        return Term(field, op, (self.parse_value(),))

    def parse_value(self) -> str:
        quote = self.peek()
        if quote in ("'", '"'):
            self.pos += 1
            out: list[str] = []
            while self.pos < len(self.text):
                char = self.text[self.pos]
                if char == "\\" and self.pos + 1 < len(self.text):
                    out.append(self.text[self.pos + 1])
                    self.pos += 2
                    continue
                if char == quote:
                    self.pos += 1
                    return "".join(out)
                out.append(char)
                self.pos += 1
            raise self.fail("unterminated quoted value")
        start = self.pos
        while (
            self.pos < len(self.text)
            and self.text[self.pos] not in "+,()[]"
            and not self.text[self.pos].isspace()
        ):
            self.pos += 1
        if start == self.pos:
            raise self.fail("expected a value")
        return self.text[start : self.pos]


def parse(text: str, known_field: Callable[[str], bool]) -> Expr | None:
    """The filter's expression tree; None for an empty filter. Raises :class:`FqlError`."""
    if not text or not text.strip():
        return None
    return _Parser(text, known_field).parse()


def field_checker(fields: Collection[str], nested: Collection[str] = ()) -> Callable[[str], bool]:
    """Known fields: the exact names, plus any dotted path under one of ``nested``."""
    exact = frozenset(fields)
    prefixes = tuple(f"{n}." for n in nested)

    def known(name: str) -> bool:
        return name in exact or (bool(prefixes) and name.startswith(prefixes))

    return known


def lookup(record: Mapping[str, Any], field: str) -> Any:
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def text(value: Any) -> str:
    """A field value as FQL compares it (booleans as true/false, None as empty)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _timestamp(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _compare(actual: str, op: str, wanted: str, field: str) -> bool:
    left: Any
    right: Any
    if (right := _timestamp(wanted)) is not None and any(c in wanted for c in "-:T"):
        left = _timestamp(actual)
        if left is None:
            return False
    elif (right := _number(wanted)) is not None:
        left = _number(actual)
        if left is None:
            return False
    elif wanted.lower().startswith("now"):
        raise FqlError(f"Invalid filter value {wanted!r} for {field!r}: use an absolute ISO-8601 timestamp")
    else:
        left, right = actual.lower(), wanted.lower()
    if op == ">=":
        return left >= right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left < right


def _one(actual: Any, term: Term, wanted: str) -> bool:
    value = text(actual)
    op = term.op.lstrip("!")
    if op == "":
        return value.lower() == wanted.lower()
    if op == "*":
        return fnmatch.fnmatchcase(value.lower(), wanted.lower())
    if op == "~":
        return wanted.lower() in value.lower()
    return _compare(value, term.op, wanted, term.field)


@functools.lru_cache(maxsize=256)
def _equal_to(term: Term) -> frozenset[str]:
    """The values an equality term (``field:['a','b']``) accepts, lower-cased: one set lookup per record
    instead of one comparison per value (filters naming hundreds of device ids)."""
    return frozenset(w.lower() for w in term.values)


def _term_matches(record: Mapping[str, Any], term: Term) -> bool:
    actual = lookup(record, term.field)
    candidates = actual if isinstance(actual, list) else [actual]
    if term.op in ("", "!"):
        wanted = _equal_to(term)
        hit = any(text(a).lower() in wanted for a in candidates)
    else:
        hit = any(_one(a, term, w) for a in candidates for w in term.values)
    return not hit if term.op.startswith("!") else hit


def matches(record: Mapping[str, Any], expr: Expr | None) -> bool:
    """Whether a record satisfies the parsed filter (None matches everything)."""
    if expr is None:
        return True
    if isinstance(expr, Term):
        return _term_matches(record, expr)
    if expr.kind == "and":
        return all(matches(record, child) for child in expr.children)
    return any(matches(record, child) for child in expr.children)


def sort_key(sort: str, known_field: Callable[[str], bool]) -> tuple[str, bool]:
    """``"hostname.asc"`` / ``"last_seen|desc"`` / ``"hostname"`` -> (field, descending)."""
    field, descending = sort.strip(), False
    for sep in ("|", "."):
        head, _, tail = field.rpartition(sep)
        if head and tail.lower() in ("asc", "desc"):
            field, descending = head, tail.lower() == "desc"
            break
    if not known_field(field):
        raise FqlError(f"Invalid sort {sort!r}: unknown field {field!r}")
    return field, descending
