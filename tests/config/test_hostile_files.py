"""Hostile and broken files in the tenants and exceptions folders: each costs exactly its own error.

A corpus of malformed files (the findings of a review: deep nesting, huge numbers, alias bombs, binary
ids that impersonate another tenant, shared accounts...) and a generated family (every field of a
good tenant file replaced by each of a set of wrong values) are dropped beside two good tenants. For
every variant: the good tenants load exactly as they do alone, the variant is either a valid tenant or
one error naming its own file, and nothing else is raised. Reading is bounded (limits in
``patchcycle.config.yaml_files``), so no variant can run long; pytest-timeout bounds the module.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchcycle.config.exceptions import (
    ExceptionRegisterError,
    check_exception_registers,
    load_tenant_exception_register,
)
from patchcycle.config.loader import load_tenants
from patchcycle.config.yaml_files import MAX_FILE_BYTES
from tests.config.tenant_files import own_resources

pytestmark = pytest.mark.timeout(300)

HERE = Path(__file__).resolve().parent
COMPLETE = HERE / "fixtures" / "good" / "cu_complete.yaml"
GOOD = ("cu_good_a", "cu_good_b")
EVIL = "cu_evil"


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return yaml.safe_load(COMPLETE.read_text())


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory, base: dict[str, Any]) -> dict[str, Any]:
    """The good tenants as they load with nothing else in the folder."""
    folder = tmp_path_factory.mktemp("alone")
    write_good(folder, base)
    loaded = load_tenants(folder)
    assert loaded.ok, loaded.errors
    return {tenant.id: tenant for tenant in loaded.tenants}


def write_good(folder: Path, base: dict[str, Any]) -> None:
    for number, tenant_id in enumerate(GOOD, start=1):
        data = {**own_resources(base, number), "id": tenant_id}
        (folder / f"{tenant_id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def evil_base(base: dict[str, Any]) -> dict[str, Any]:
    return {**own_resources(base, 9), "id": EVIL}


def alias_bomb(levels: int = 9) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghij"[: levels - 1]:
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    return "\n".join(lines) + "\n"


def corpus(base: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """``(label, file content)`` of hand-written hostile files, all named ``cu_evil.yaml``."""
    good = yaml.safe_dump(evil_base(base), sort_keys=False)
    impostor = base64.b64encode(GOOD[0].encode()).decode()
    yield "3,000-deep nested list", ("x: " + "[" * 3000 + "]" * 3000 + "\n").encode()
    yield "3,000-deep nested mapping", ("x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n").encode()
    yield (
        "5,000-digit integer",
        good.replace("display_name:", "huge: " + "9" * 5000 + "\ndisplay_name:", 1).encode(),
    )
    yield "alias bomb", alias_bomb().encode()
    yield (
        "alias bomb inside a tenant",
        (good + "display_name_extra: " + "\n").encode() + alias_bomb().encode(),
    )
    yield "recursive alias", b"id: cu_evil\nx: &x [*x]\n"
    yield (
        "binary id impersonating a good tenant",
        f"{good}".replace(f"id: {EVIL}", f"id: !!binary {impostor}").encode(),
    )
    yield "python object tag", b"id: !!python/object/apply:os.system ['true']\n"
    yield "local tag", b"id: !evil cu_evil\n"
    yield "set tag", b"id: cu_evil\nfrequency: !!set {a, b}\n"
    yield "integer id", good.replace(f"id: {EVIL}", "id: 12345", 1).encode()
    yield "list id", good.replace(f"id: {EVIL}", f"id: [{GOOD[0]}]", 1).encode()
    yield "larger than the size limit", b"id: cu_evil\n# " + b"x" * MAX_FILE_BYTES + b"\n"
    yield (
        "one megabyte display name",
        good.replace("display_name:", "display_name: " + "A" * 1_000_000 + "\n_was:", 1).encode(),
    )
    yield (
        "600-character display name",
        yaml.safe_dump({**evil_base(base), "display_name": "A" * 600}).encode(),
    )
    yield "not UTF-8", b"id: cu_evil\ndisplay_name: \xff\xfe\n"
    yield "two documents", (good + "---\n" + good).encode()
    yield "empty", b""
    yield "a list at the top", b"- id: cu_evil\n"
    yield "tabs for indentation", b"id: cu_evil\nclouds:\n\taws: {}\n"
    yield "duplicate key", (good + f"id: {EVIL}\n").encode()
    yield "NUL bytes", b"id: cu_evil\x00\n"
    yield "id of another tenant", good.replace(f"id: {EVIL}", f"id: {GOOD[0]}", 1).encode()


def with_window(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = evil_base(base)
    prod = next(env for env in data["environments"] if env.get("change_window"))
    prod["change_window"].update(changes)
    return data


def invalid_facts(base: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(label, tenant data)`` that parse as YAML but must be refused."""
    yield "localtime as the window's time zone", with_window(base, timezone="localtime")
    yield "Factory as the window's time zone", with_window(base, timezone="Factory")
    yield (
        "min_minutes_left longer than the window",
        with_window(base, start="01:00", end="03:00", min_minutes_left=200),
    )
    region = evil_base(base)
    region["clouds"]["aws"]["accounts"][0]["regions"] = ["us-east-9"]
    yield "a region AWS does not have", region


def mutations(base: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every leaf and branch of a good tenant replaced by each of a set of wrong values."""
    wrong: list[Any] = [
        None,
        "",
        "x" * 4000,
        -1,
        10**30,
        float("nan"),
        float("inf"),
        True,
        [],
        {},
        [[[[[]]]]],
        {"unexpected": 1},
        dt.date(1900, 1, 1),
    ]
    data = evil_base(base)

    def paths(node: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if prefix:
            yield prefix
        if isinstance(node, dict):
            for key, value in node.items():
                yield from paths(value, (*prefix, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from paths(value, (*prefix, index))

    for path in paths(data, ()):
        if path == ("id",):
            continue
        for value in wrong:
            variant = copy.deepcopy(data)
            node = variant
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
            yield f"{'.'.join(map(str, path))} = {str(value)[:20]!r}", variant


def assert_isolated(folder: Path, alone: dict[str, Any]) -> Any:
    """The good tenants load exactly as alone; the evil file is at most one error, naming itself."""
    loaded = load_tenants(folder)
    assert {tenant.id: tenant for tenant in loaded.tenants if tenant.id in GOOD} == alone
    assert [error.path.name for error in loaded.errors] in ([], [f"{EVIL}.yaml"])
    return loaded


def test_hand_written_hostile_files_cost_only_their_own_error(
    tmp_path: Path, base: dict[str, Any], alone: dict[str, Any]
) -> None:
    write_good(tmp_path, base)
    tried = 0
    for label, content in corpus(base):
        (tmp_path / f"{EVIL}.yaml").write_bytes(content)
        loaded = assert_isolated(tmp_path, alone)
        assert [t.id for t in loaded.tenants if t.id not in GOOD] == [], label
        assert len(loaded.errors) == 1, label
        assert str(loaded.errors[0]).startswith(str(tmp_path / f"{EVIL}.yaml")) or f"{EVIL}.yaml" in str(
            loaded.errors[0]
        ), label
        tried += 1
    assert tried >= 20


def test_the_bounds_say_what_was_refused(tmp_path: Path, base: dict[str, Any]) -> None:
    write_good(tmp_path, base)
    expected = {
        "3,000-deep nested list": "nested more than",
        "alias bomb": "alias",
        "5,000-digit integer": "characters; at most",
        "binary id impersonating a good tenant": "tag:yaml.org,2002:binary",
        "python object tag": "is not allowed",
        "larger than the size limit": "larger than",
        "not UTF-8": "not UTF-8",
        "600-character display name": "display_name",
    }
    for label, content in corpus(base):
        if label not in expected:
            continue
        (tmp_path / f"{EVIL}.yaml").write_bytes(content)
        (error,) = load_tenants(tmp_path).errors
        assert expected[label] in str(error), (label, str(error))


def test_facts_that_parse_but_cannot_be_right_are_refused(
    tmp_path: Path, base: dict[str, Any], alone: dict[str, Any]
) -> None:
    write_good(tmp_path, base)
    for label, data in invalid_facts(base):
        (tmp_path / f"{EVIL}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        loaded = assert_isolated(tmp_path, alone)
        assert len(loaded.errors) == 1, f"accepted: {label}"


def test_every_field_replaced_by_a_wrong_value_costs_at_most_its_own_file(
    tmp_path: Path, base: dict[str, Any], alone: dict[str, Any]
) -> None:
    write_good(tmp_path, base)
    tried = 0
    accepted = []
    for label, data in mutations(base):
        (tmp_path / f"{EVIL}.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        loaded = assert_isolated(tmp_path, alone)
        tried += 1
        if not loaded.errors:
            accepted.append(label)
    print(f"tenant file mutations: {tried} tried, {tried - len(accepted)} refused, {len(accepted)} accepted")
    assert tried > 1000
    # Accepted only where the value is a legitimate choice: an optional section left out (None), a
    # section or list with defaults left empty ({} or []), or a boolean switched on (True). No wrong
    # number, text, date or shape is accepted anywhere.
    harmless = ("= 'None'", "= '{}'", "= '[]'", "= 'True'")
    assert [label for label in accepted if not label.endswith(harmless)] == []
    assert not [label for label in accepted if label.endswith("= 'True'") and "hours" in label]


def test_a_tenant_claiming_another_tenants_account_stops_both(tmp_path: Path, base: dict[str, Any]) -> None:
    write_good(tmp_path, base)
    thief = evil_base(base)
    victim = yaml.safe_load((tmp_path / f"{GOOD[0]}.yaml").read_text())
    thief["clouds"]["aws"]["accounts"][0]["account_id"] = victim["clouds"]["aws"]["accounts"][0]["account_id"]
    (tmp_path / f"{EVIL}.yaml").write_text(yaml.safe_dump(thief, sort_keys=False))
    loaded = load_tenants(tmp_path)
    assert [tenant.id for tenant in loaded.tenants] == [GOOD[1]]
    assert sorted(error.path.name for error in loaded.errors) == sorted([f"{GOOD[0]}.yaml", f"{EVIL}.yaml"])
    for error in loaded.errors:
        assert "AWS account" in str(error) and "also claimed by" in str(error)


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("evidence bucket", lambda data, other: data["evidence"].update(bucket=other["evidence"]["bucket"])),
        (
            "connection",
            lambda data, other: data["clouds"]["aws"]["accounts"][0].update(connection_id=f"aws_{GOOD[0]}"),
        ),
        (
            "GCP project",
            lambda data, other: data["clouds"]["gcp"]["projects"][0].update(
                project_id=other["clouds"]["gcp"]["projects"][0]["project_id"]
            ),
        ),
        (
            "Azure subscription",
            lambda data, other: data["clouds"]["azure"]["subscriptions"][0].update(
                subscription_id=other["clouds"]["azure"]["subscriptions"][0]["subscription_id"].upper()
            ),
        ),
    ],
)
def test_what_belongs_to_one_tenant_cannot_be_shared(
    tmp_path: Path, base: dict[str, Any], what: str, change: Any
) -> None:
    write_good(tmp_path, base)
    other = yaml.safe_load((tmp_path / f"{GOOD[0]}.yaml").read_text())
    data = evil_base(base)
    change(data, other)
    (tmp_path / f"{EVIL}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    loaded = load_tenants(tmp_path)
    assert [tenant.id for tenant in loaded.tenants] == [GOOD[1]]
    assert all(what in str(error) for error in loaded.errors)


def test_an_upper_case_suffix_is_read_not_skipped(tmp_path: Path, base: dict[str, Any]) -> None:
    (tmp_path / f"{EVIL}.YAML").write_text(yaml.safe_dump(evil_base(base), sort_keys=False))
    assert [tenant.id for tenant in load_tenants(tmp_path).tenants] == [EVIL]


# --- exception registers -------------------------------------------------------------------------


def register(tenant_id: str, **entry: Any) -> str:
    acceptance = {
        "id": "EXC-2026-001",
        "hosts": ["gen-prd-app-01"],
        "justification": "Vendor application certified only on the current glibc.",
        "compensating_control": "Host isolated in a segmented VLAN.",
        "requested_by": "App owner",
        "approver": "C. Iso",
        "approver_role": "CISO",
        "approved_on": dt.date(2026, 10, 15),
        "expires_on": dt.date(2027, 1, 31),
        "risk_rating": "High",
        **entry,
    }
    return yaml.safe_dump({"tenant_id": tenant_id, "exceptions": [acceptance]}, sort_keys=False)


def test_a_broken_register_stops_only_its_own_tenant(tmp_path: Path, base: dict[str, Any]) -> None:
    (tmp_path / f"{GOOD[0]}.yaml").write_text(register(GOOD[0]))
    for label, content in corpus(base):
        (tmp_path / f"{EVIL}.yaml").write_bytes(content)
        assert load_tenant_exception_register(GOOD[0], tmp_path).exceptions[0].id == "EXC-2026-001", label
        assert load_tenant_exception_register(GOOD[1], tmp_path).exceptions == [], label
        with pytest.raises(ExceptionRegisterError) as caught:
            load_tenant_exception_register(EVIL, tmp_path)
        assert caught.value.path.name == f"{EVIL}.yaml", label
        errors = check_exception_registers([*GOOD, EVIL], tmp_path)
        assert [error.path.name for error in errors] == [f"{EVIL}.yaml"], label


def test_a_register_cannot_claim_another_tenant_with_a_binary_id(tmp_path: Path) -> None:
    impostor = base64.b64encode(GOOD[0].encode()).decode()
    (tmp_path / f"{EVIL}.yaml").write_text(
        register(EVIL).replace(f"tenant_id: {EVIL}", f"tenant_id: !!binary {impostor}")
    )
    with pytest.raises(ExceptionRegisterError, match="binary"):
        load_tenant_exception_register(EVIL, tmp_path)
    assert load_tenant_exception_register(GOOD[0], tmp_path).exceptions == []


def test_a_mistyped_register_name_is_reported_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "cu_good_x.yaml").write_text(register("cu_good_x"))
    (error,) = check_exception_registers(GOOD, tmp_path)
    assert error.path.name == "cu_good_x.yaml"
    assert "no tenant 'cu_good_x'" in str(error) and GOOD[0] in str(error)


def test_a_wildcard_host_is_refused_not_matched_literally(tmp_path: Path) -> None:
    (tmp_path / f"{GOOD[0]}.yaml").write_text(register(GOOD[0], hosts=["*"]))
    with pytest.raises(ExceptionRegisterError, match="matched exactly, not as patterns"):
        load_tenant_exception_register(GOOD[0], tmp_path)
