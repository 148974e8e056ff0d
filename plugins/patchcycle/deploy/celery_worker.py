"""The Celery configuration of the deployment's workers: Airflow's defaults, plus one module every worker
imports once at start, before it forks its pool (``warm_start``).

Airflow runs each task in a process forked from the worker's pool process (``supervise_task`` forks on
Linux: ``airflow.sdk.execution_time.supervisor``). Whatever the pool process has already imported and
loaded, every task inherits for free; whatever it has not, every task loads again. Patchcycle's
operators import the cloud SDKs inside ``execute`` (so DAG parsing in the scheduler and dag-processor
stays light), which made each task on the worker import boto3, the Azure or Google SDK and read
botocore's service models afresh. Celery's ``imports`` setting ("a sequence of modules to import when
the worker starts", Celery's configuration reference) moves that to the worker's start.

Airflow reads this dict when ``[celery] celery_config_options`` names it (the Celery provider's
documented way to extend its configuration): the deployment sets
``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=patchcycle.deploy.celery_worker.CELERY_CONFIG``. The scheduler
imports this module too (its executor builds the same Celery app); only workers import ``warm_start``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

WARM_START = "patchcycle.deploy.warm_start"

CELERY_CONFIG: dict[str, Any] = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), WARM_START),
}
