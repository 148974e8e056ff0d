"""The kernel support table read as policy: does a sensor version run in full on a kernel?"""

from __future__ import annotations

import pytest

from patchcycle.domain.falcon import sensor_build, sensor_supports_kernel, supporting_versions

RECORD = {
    "release": "5.15.0-126-generic",
    "base_package_supported_sensor_versions": ["7.10.16303", "7.11.16405"],
    "ztl_supported_sensor_versions": ["7.14.16703"],
    "ztl_module_supported_sensor_versions": ["7.15.16807"],
}


@pytest.mark.parametrize(
    ("agent_version", "supported"),
    [
        ("7.10.16303.0", True),  # base package, as a device record reports the version
        ("7.11.16405", True),  # the table's own form
        ("7.14.16703.0", True),  # Zero Touch Linux (channel file)
        ("7.15.16807.0", True),  # ZTL kernel module
        ("7.14.16704.0", False),  # another build
        ("7.1.16703.0", False),  # no prefix matching: 7.1 is not 7.14
        ("7.14", False),
        ("", False),
        (None, False),
    ],
)
def test_sensor_supports_kernel_in_any_list(agent_version: str | None, supported: bool) -> None:
    assert sensor_supports_kernel(RECORD, agent_version) is supported


def test_a_record_without_lists_supports_nothing() -> None:
    assert sensor_supports_kernel({"release": "6.8.0-1-generic"}, "7.14.16703.0") is False
    assert sensor_supports_kernel({"ztl_supported_sensor_versions": None}, "7.14.16703.0") is False


def test_table_entries_with_a_fourth_part_still_match() -> None:
    assert sensor_supports_kernel({"ztl_supported_sensor_versions": ["7.14.16703.0"]}, "7.14.16703") is True


def test_sensor_build_and_supporting_versions() -> None:
    assert sensor_build(" 7.14.16703.0 ") == "7.14.16703"
    assert supporting_versions(RECORD) == ["7.10.16303", "7.11.16405", "7.14.16703", "7.15.16807"]
    assert supporting_versions({"base_package_supported_sensor_versions": ["7.9.1", "7.10.1"]}) == [
        "7.9.1",
        "7.10.1",
    ]
