"""What the verify task decides itself, around the domain's per-host merge (tests/domain/
test_verification.py): the kernel a host should run after its reboot, and reading OS Config ids."""

from __future__ import annotations

from patchcycle.operators.verify import VerifyStageOperator, inventory_instance_id

PLAN = {
    "approved": {
        "rhel_9": [
            {"id": "kernel-a", "released": "2026-10-01", "kernel_release": "5.14.0-427.el9.x86_64"},
            {"id": "kernel-b", "released": "2026-11-01", "kernel_release": "5.14.0-503.el9.x86_64"},
            {"id": "openssl", "released": "2026-11-10"},
        ],
        "windows_2022": [{"id": "KB5046615", "released": "2026-11-12"}],
    }
}


def test_a_host_sent_the_full_plan_should_run_the_plans_newest_kernel() -> None:
    row = {"os_family": "rhel_9", "install_variant": "full", "kernel": "5.14.0-362.el9.x86_64"}
    assert VerifyStageOperator._expected_kernel(PLAN, row) == "5.14.0-503.el9.x86_64"


def test_a_host_whose_kernel_update_was_held_should_still_run_its_own() -> None:
    row = {"os_family": "rhel_9", "install_variant": "no_kernel", "kernel": "5.14.0-362.el9.x86_64"}
    assert VerifyStageOperator._expected_kernel(PLAN, row) == "5.14.0-362.el9.x86_64"


def test_without_a_planned_kernel_the_running_one_is_expected_or_none_is_judged() -> None:
    assert VerifyStageOperator._expected_kernel(PLAN, {"os_family": "windows_2022"}) is None
    row = {"os_family": "windows_2022", "kernel": "10.0.20348"}
    assert VerifyStageOperator._expected_kernel(PLAN, row) == "10.0.20348"


def test_the_instance_id_is_read_from_an_inventory_name() -> None:
    name = "projects/alpha-prod/locations/us-central1-a/instances/4711/inventory"
    assert inventory_instance_id({"name": name}) == "4711"
