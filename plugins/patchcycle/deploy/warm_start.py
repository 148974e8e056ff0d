"""What a Celery worker loads once, before it forks its pool, so that every task forked from it starts warm.

Imported by the worker through Celery's ``imports`` setting (``patchcycle.deploy.celery_worker``). It
imports every hook, operator, trigger and report module (and with them boto3, the Azure and Google SDKs,
reportlab and pandas), and reads botocore's models of the AWS services the hooks call into the shared
loader (``patchcycle.hooks.aws_session.SHARED_LOADER``), which forked tasks then read from memory.

Nothing here reaches a network: making a boto3 client reads only the model files on disk. A module that
fails to import fails the worker's start, with the module named (a broken deployment is found at start,
not by the first task that needs it).
"""

from __future__ import annotations

import importlib
import pkgutil

# Packages whose modules tasks import when they run (the UI is the api-server's; the CLI is a user's).
TASK_PACKAGES: tuple[str, ...] = (
    "patchcycle.hooks",
    "patchcycle.operators",
    "patchcycle.sensors",
    "patchcycle.triggers",
    "patchcycle.reports",
    "patchcycle.domain",
    "patchcycle.config",
)
# The AWS services the hooks make clients for (patchcycle.hooks.aws, patchcycle.hooks.s3; STS for roles).
AWS_SERVICES: tuple[str, ...] = ("s3", "ssm", "ec2", "rds", "sts", "sso-admin", "identitystore")


def task_modules() -> list[str]:
    """Every module of the packages tasks use, in name order."""
    names: list[str] = []
    for package_name in TASK_PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        names.extend(info.name for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."))
    return sorted(set(names))


def load_aws_models(services: tuple[str, ...] = AWS_SERVICES) -> None:
    """Read each service's botocore model (and endpoint rules) into the shared loader."""
    import boto3

    from patchcycle.hooks.aws_session import shared_core_session

    session = boto3.session.Session(botocore_session=shared_core_session(), region_name="us-east-1")
    for service in services:
        session.client(service, aws_access_key_id="warm-start", aws_secret_access_key="warm-start")


def warm() -> list[str]:
    """Import every task module and load the AWS models; return the modules imported."""
    modules = task_modules()
    for name in modules:
        importlib.import_module(name)
    load_aws_models()
    return modules


WARMED = warm()
