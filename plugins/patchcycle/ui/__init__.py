"""The Patchcycle page in the Airflow UI: an Airflow plugin served by the api-server, behind Airflow's auth.

:mod:`patchcycle.ui.plugin` registers it (loaded by every Airflow process, so it imports nothing heavy);
:mod:`patchcycle.ui.app` is the FastAPI app the api-server mounts at :data:`URL_PREFIX`, built on its
first request; what the page shows is decided in :mod:`patchcycle.domain.fleet_status`.
"""

URL_PREFIX = "/patchcycle"
"""Where the api-server mounts the page's app (below ``[api] base_url``)."""
