"""Reading the project's YAML facts (tenants, exception registers, control catalogs) one strict way.

Every file is read within fixed bounds, so one hostile or broken file costs its own error and nothing
else (no unbounded allocation, recursion or alias expansion at DAG parse time):

- at most :data:`MAX_FILE_BYTES` bytes;
- plain data only: the YAML tags of strings, numbers, booleans, null, dates, lists and mappings
  (``!!binary``, ``!!set``, ``!!python/...`` and any local tag are errors);
- at most :data:`MAX_DEPTH` levels of nesting and :data:`MAX_VALUES` values counted after expanding
  aliases (an "alias bomb" of a few lines stops at the bound instead of growing to gigabytes);
- scalars of at most :data:`MAX_SCALAR_CHARS` characters (so no number exceeds Python's int limit).
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

_BaseSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_FILE_BYTES = 256 * 1024
"""Largest YAML fact file read (256 KiB; the shipped tenant files are under 4 KiB)."""
MAX_DEPTH = 24
"""Deepest nesting of lists and mappings (a tenant file needs 6)."""
MAX_VALUES = 20_000
"""Most values (scalars, lists, mappings) in a file, each alias counted as the values it repeats."""
MAX_SCALAR_CHARS = 4_096
"""Longest single value, in characters."""

_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map", "merge")
)


class UniqueKeyLoader(_BaseSafeLoader):  # type: ignore[misc, valid-type]
    """Safe YAML loader (plain data only) that rejects duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping ``node`` holds; a ``ConstructorError`` naming the key that appears twice (merge keys
        ``<<`` are not counted)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable keys are reported by the base constructor
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def yaml_files(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files with one of ``suffixes`` (any case: ``.YAML`` too) in ``directory``, by name, skipping hidden
    ones (editor swap files)."""
    return sorted(
        (
            p
            for p in directory.iterdir()
            if p.suffix.lower() in suffixes and not p.name.startswith(".") and p.is_file()
        ),
        key=lambda path: path.name,
    )


def read_yaml_mapping(
    path: Path, error: Callable[[Path, list[tuple[str, str]]], Exception], *, empty: str, mapping: str
) -> dict[str, Any]:
    """The file's top-level mapping; ``error(path, problems)`` is raised for unreadable or ill-formed files.

    ``empty`` is the message for an empty file; ``mapping`` names what the top level must be.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise error(path, [("", "file not found")]) from None
    except OSError as exc:
        raise error(path, [("", f"cannot read file: {exc}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise error(path, [("", f"file is larger than {MAX_FILE_BYTES // 1024} KiB; not read")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"cannot read file: not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise error(path, [("", problem)]) from None
    try:
        data = load_bounded_yaml(text)
    except yaml.YAMLError as exc:
        raise error(path, [("", describe_yaml_error(exc))]) from None
    if data is None:
        raise error(path, [("", empty)])
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise error(path, [("", f"top level must be {mapping}, got {kind}")])
    return data


class YamlBoundsError(yaml.YAMLError):
    """A YAML document outside the bounds this module reads (size, depth, values, tags)."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def load_bounded_yaml(text: str) -> Any:
    """``text``'s single YAML document as plain Python data, within this module's bounds.

    The document is composed into nodes first (aliases stay shared, so composing is cheap), the nodes
    are checked against the bounds without recursion, and only then are Python values built.
    Raises ``yaml.YAMLError`` (a :class:`YamlBoundsError` for a bound) with the line it concerns.
    """
    loader = UniqueKeyLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlBoundsError(f"nested more than {MAX_DEPTH} levels deep") from None
        if node is None:
            return None
        _check_bounds(node)
        try:
            return loader.construct_document(node)
        except (ValueError, OverflowError, RecursionError) as exc:  # e.g. an int beyond Python's limit
            raise YamlBoundsError(f"value cannot be read: {exc}", node.start_mark) from None
    finally:
        loader.dispose()


def _check_bounds(root: yaml.Node) -> None:
    """Raise :class:`YamlBoundsError` for the first node past a bound (depth, count, tag, length)."""
    pending: list[tuple[yaml.Node, int]] = [(root, 1)]
    values = 0
    while pending:
        node, depth = pending.pop()
        values += 1
        if values > MAX_VALUES:
            raise YamlBoundsError(
                f"more than {MAX_VALUES} values once aliases are expanded (an alias bomb?)", node.start_mark
            )
        if depth > MAX_DEPTH:
            raise YamlBoundsError(f"nested more than {MAX_DEPTH} levels deep", node.start_mark)
        if node.tag not in _PLAIN_TAGS:
            raise YamlBoundsError(
                f"YAML tag {node.tag!r} is not allowed: plain data only "
                "(strings, numbers, booleans, null, dates, lists, mappings)",
                node.start_mark,
            )
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_SCALAR_CHARS:
                raise YamlBoundsError(
                    f"a value of {len(node.value)} characters; at most {MAX_SCALAR_CHARS} are read",
                    node.start_mark,
                )
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                pending.append((key, depth + 1))
                pending.append((value, depth + 1))


_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3
_SHORT.maxstring = 60
_SHORT.maxother = 60


def short_repr(value: Any) -> str:
    """A bounded repr of ``value`` (nesting, lengths and item counts cut), for error messages."""
    return _SHORT.repr(value)


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML error as ``YAML syntax error at line L, column C: problem (context)``, 1-based."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if context and context_mark is not None:
        problem = f"{problem} ({context} started at {_position(context_mark)})"
    elif context:
        problem = f"{problem} ({context})"
    kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
    mark = problem_mark or context_mark
    if mark is None:
        return f"{kind}: {problem}"
    return f"{kind} at {_position(mark)}: {problem}"


def _position(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class ConfigFileError(ValueError):
    """A configuration file that cannot be used, with every problem found in it.

    ``problems`` holds ``(location, message)`` pairs; ``location`` is a dotted field path such as
    ``environments.1.rate_control.max_errors``, or empty for problems with the file as a whole.
    Subclasses name what the file is (``what``), which the rendered message starts with.
    """

    what = "configuration file"

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__(self._render())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problems))

    @property
    def display_path(self) -> str:
        """The file's path relative to the working directory when it lies below it, else as given."""
        try:
            return str(self.path.resolve().relative_to(Path.cwd().resolve()))
        except (ValueError, OSError):
            return str(self.path)

    def _render(self) -> str:
        lines = [f"{self.display_path}: invalid {self.what}:"]
        for location, message in self.problems:
            lines.append(f"  - {location}: {message}" if location else f"  - {message}")
        return "\n".join(lines)


_MESSAGE_BY_TYPE = {
    "extra_forbidden": "unknown field (not allowed)",
    "missing": "required field is missing",
}
_PREFIXES = ("Value error, ", "Assertion failed, ")
_MAX_SHOWN_INPUT = 80


def describe_validation_error(error: Any) -> tuple[str, str]:
    """A pydantic error (one of ``ValidationError.errors()``) as ``(dotted location, message)``.

    The message names the offending value when it is short enough to help.
    """
    location = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind in _MESSAGE_BY_TYPE:
        return location, _MESSAGE_BY_TYPE[kind]
    message: str = error["msg"]
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    shown = _show_input(error.get("input"))
    if shown is not None and shown not in message:
        message = f"{message} (got {shown})"
    return location, message


def _show_input(value: Any) -> str | None:
    """A short repr of an offending input (dates as ISO text), or None when it is too large to help."""
    import datetime as dt

    if isinstance(value, dt.date):
        value = value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        text = repr(value[:_MAX_SHOWN_INPUT] if isinstance(value, str) else value)
        return text if len(text) <= _MAX_SHOWN_INPUT else text[: _MAX_SHOWN_INPUT - 3] + "..."
    text = short_repr(value)
    return text if len(text) <= _MAX_SHOWN_INPUT else None
