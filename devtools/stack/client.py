"""The Airflow 3 public REST API client the tests, benchmarks and UI checks drive the stack with."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowClient:
    """The Airflow 3 public REST API (``/api/v2``), authenticated with a JWT from ``/auth/token``."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def _authenticate(self) -> None:
        resp = self._http.post("/auth/token", json=self._credentials)
        resp.raise_for_status()
        self._token = resp.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._token is None:
            self._authenticate()
        for attempt in (1, 2):
            resp = self._http.request(
                method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs
            )
            if resp.status_code == 401 and attempt == 1:
                self._authenticate()  # expired token
                continue
            break
        if resp.is_error:
            raise httpx.HTTPStatusError(
                f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}",
                request=resp.request,
                response=resp,
            )
        return resp

    def _paged(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.request(
                "GET", path, params={**(params or {}), "limit": 100, "offset": len(items)}
            ).json()
            items.extend(page[key])
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    # The server and its components.
    def version(self) -> dict[str, Any] | None:
        resp = self._http.get("/api/v2/version")
        return resp.json() if resp.status_code == 200 else None

    def health(self) -> dict[str, Any]:
        return self._http.get("/api/v2/monitor/health").json()

    # DAGs.
    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", f"/api/v2/dags/{dag_id}").json()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                return None
            raise

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused}).json()

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self.set_paused(dag_id, False)

    # Runs.
    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        *,
        logical_date: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body).json()

    def create_backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        *,
        conf: dict[str, Any] | None = None,
        max_active_runs: int = 1,
        reprocess_behavior: str = "none",
        run_backwards: bool = False,
    ) -> dict[str, Any]:
        body = {
            "dag_id": dag_id,
            "from_date": from_date,
            "to_date": to_date,
            "dag_run_conf": conf or {},
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess_behavior,
            "run_backwards": run_backwards,
        }
        return self.request("POST", "/api/v2/backfills", json=body).json()

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/backfills/{backfill_id}").json()

    def dag_runs(self, dag_id: str, *, run_type: str | None = None) -> list[dict[str, Any]]:
        params = {"run_type": run_type} if run_type else {}
        return self._paged(f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs", params)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()

    def wait_for_runs(
        self,
        dag_id: str,
        *,
        count: int,
        run_type: str | None = None,
        timeout: float,
        interval: float = 3.0,
        on_poll: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Poll until ``count`` runs (of ``run_type``) exist and all are terminal; the runs, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            runs = sorted(self.dag_runs(dag_id, run_type=run_type), key=lambda r: r["logical_date"] or "")
            if on_poll:
                on_poll(runs)
            if len(runs) >= count and all(r["state"] in TERMINAL_RUN_STATES for r in runs):
                return runs
            if time.monotonic() > deadline:
                states = {r["dag_run_id"]: r["state"] for r in runs}
                raise TimeoutError(f"{dag_id}: runs not terminal within {timeout:.0f}s: {states}")
            time.sleep(interval)

    def wait_for_run(
        self, dag_id: str, run_id: str, *, timeout: float, interval: float = 3.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (run := self.dag_run(dag_id, run_id))["state"] not in TERMINAL_RUN_STATES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}/{run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(interval)
        return run

    # Task instances.
    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._paged(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``task_id`` (``task_id[i]`` for mapped ones) -> state."""
        return {
            ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"]
            for ti in self.task_instances(dag_id, run_id)
        }

    def task_instances_in(self, *states: str) -> list[dict[str, Any]]:
        """Task instances of every DAG and run in any of ``states`` (e.g. ``running``, ``deferred``)."""
        return self._paged(
            "/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances", {"state": list(states)}
        )

    # Human-in-the-loop.
    def hitl_details(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's Human-in-the-loop requests (one per waiting or answered HITL task)."""
        return self._paged(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails", "hitl_details")

    def respond_hitl(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: list[str],
        params_input: dict[str, Any] | None = None,
        *,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Answer a waiting HITL task (an approval, say) as the client's user; the task resumes."""
        return self.request(
            "PATCH",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails",
            json={"chosen_options": chosen_options, "params_input": params_input or {}},
        ).json()
