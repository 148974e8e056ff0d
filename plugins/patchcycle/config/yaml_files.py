"""Reading the project's YAML facts (tenants, exception registers, control catalogs) one strict way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

_BaseSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UniqueKeyLoader(_BaseSafeLoader):  # type: ignore[misc, valid-type]
    """Safe YAML loader (plain data only) that rejects duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
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
        return super().construct_mapping(node, deep=deep)


def yaml_files(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files with one of ``suffixes`` in ``directory``, by name, skipping hidden ones (editor swap files)."""
    return sorted(
        (
            p
            for p in directory.iterdir()
            if p.suffix in suffixes and not p.name.startswith(".") and p.is_file()
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, [("", f"cannot read file: {exc}")]) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        raise error(path, [("", describe_yaml_error(exc))]) from None
    if data is None:
        raise error(path, [("", empty)])
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise error(path, [("", f"top level must be {mapping}, got {kind}")])
    return data


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
