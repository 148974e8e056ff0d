"""How Patchcycle's own code is loaded by the deployment's processes (the Celery worker's warm start)."""
