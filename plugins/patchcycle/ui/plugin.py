"""Patchcycle's Airflow plugin: the Patchcycle page, in the UI's navigation.

Airflow imports its plugins in every process that loads them, task processes included (the task runner
integrates plugin macros before each task: ``airflow/sdk/execution_time/task_runner.py``). So this module
imports nothing heavy: the page's FastAPI app (FastAPI, Jinja2, Airflow's security module, boto3) is
built by :class:`PageApp` on its first request, which only the api-server ever serves.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

from patchcycle.ui import URL_PREFIX


class PageApp:
    """The ASGI app the api-server mounts at :data:`~patchcycle.ui.URL_PREFIX`; it builds the page's
    FastAPI app (:func:`patchcycle.ui.app.create_app`) when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    @property
    def app(self) -> Any:
        """The FastAPI app, built now if it was not yet."""
        if self._app is None:
            from patchcycle.ui.app import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one ASGI request with the page's FastAPI app (built on the first request)."""
        await self.app(scope, receive, send)


class PatchcyclePlugin(AirflowPlugin):
    """The Patchcycle page: every tenant's last cycle, what it left, and its evidence, inside the UI."""

    name = "patchcycle"
    fastapi_apps = [{"app": PageApp(), "url_prefix": URL_PREFIX, "name": "Patchcycle"}]
    # A top-level entry of the UI's navigation that shows the page in the UI's plugin iframe
    # (``/plugin/patchcycle``). The href is relative so the browser resolves it against the UI's
    # <base href> ([api] base_url): it stays right when Airflow is served below a path.
    external_views = [
        {
            "name": "Patchcycle",
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "url_route": "patchcycle",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
