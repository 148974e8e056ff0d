"""The workers' Celery configuration: Airflow's defaults plus the warm start, and what the warm start loads
(in a fresh interpreter, as a worker would before it forks its pool)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

from devtools import stack
from patchcycle.deploy import celery_worker

REPO = Path(__file__).resolve().parents[2]


def test_the_configuration_is_airflows_with_the_warm_start_imported() -> None:
    config = celery_worker.CELERY_CONFIG
    assert {k: v for k, v in config.items() if k != "imports"} == {
        k: v for k, v in DEFAULT_CELERY_CONFIG.items() if k != "imports"
    }
    assert config["imports"][-1] == celery_worker.WARM_START == "patchcycle.deploy.warm_start"


def test_the_deployment_names_it() -> None:
    option = stack.FIXED_SETTINGS["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"]
    module, _, name = option.rpartition(".")
    assert module == celery_worker.__name__ and getattr(celery_worker, name) is celery_worker.CELERY_CONFIG


PROBE = """
import json, sys
import patchcycle.deploy.warm_start as warm
from botocore.loaders import JSONFileLoader
from patchcycle.hooks.aws_session import SHARED_LOADER, shared_core_session
import boto3

read = []
class Counting(JSONFileLoader):
    def load_file(self, path):
        found = super().load_file(path)
        if found is not None:
            read.append(path)
        return found
SHARED_LOADER.file_loader = Counting()
session = boto3.session.Session(botocore_session=shared_core_session(), region_name="eu-west-1")
for service in warm.AWS_SERVICES:
    session.client(service, aws_access_key_id="k", aws_secret_access_key="s")
print(json.dumps({"warmed": warm.WARMED, "modules": sorted(sys.modules), "read_after": read}))
"""


def test_the_warm_start_imports_every_task_module_and_the_sdks_and_loads_the_aws_models() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO / 'plugins'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    modules = set(found["modules"])
    for name in (
        "patchcycle.operators.patch",
        "patchcycle.hooks.azure_arc",
        "patchcycle.hooks.gcp_osconfig",
        "patchcycle.reports.pdf",
        "patchcycle.triggers.waits",
        "boto3",
        "azure.mgmt.hybridcompute",
        "google.auth",
        "reportlab",
    ):
        assert name in modules, name
    assert set(found["warmed"]) <= modules
    assert not any(name.startswith(("patchcycle.ui", "fleetsim")) for name in found["warmed"])
    # Clients of every service the hooks use, in another region, read no model file again.
    assert found["read_after"] == []
