"""Answer a human-in-the-loop task of a local run (``airflow dags test``) as a named user, through Airflow's
own public REST API: ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails``
with a JWT from ``POST /auth/token`` (the simple auth manager's user), in a process of its own sharing the
run's metadata database. ``dags test`` keeps a run alive while a HITL task waits "until a response recorded
from outside -- the Required Actions UI or the HITL REST API of an api-server sharing this metadata DB";
this is that API, served in-process instead of by an api-server.

``python -m devtools.hitl_local <dag_id> <run_id> <task_id> <user> <option>...`` prints the API's answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def respond_hitl_local(
    env: dict[str, str], dag_id: str, run_id: str, task_id: str, user: str, options: list[str]
) -> dict[str, Any]:
    """Answer the waiting HITL task as ``user`` (an admin of the simple auth manager); the API's answer."""
    with tempfile.TemporaryDirectory() as folder:
        run_env = {
            **env,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(Path(folder) / "passwords.json"),
        }
        done = subprocess.run(
            [sys.executable, "-m", "devtools.hitl_local", dag_id, run_id, task_id, user, *options],
            env=run_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"answering {dag_id}/{run_id}/{task_id} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    """Log in as the user, answer the task, print the answer."""
    from airflow.api_fastapi.app import create_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from fastapi.testclient import TestClient

    dag_id, run_id, task_id, user, *options = argv
    with TestClient(create_app("core")) as client:
        password = SimpleAuthManager.get_passwords()[user]
        token = client.post("/auth/token", json={"username": user, "password": password})
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        answer = client.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": options, "params_input": {}},
            headers=headers,
        )
        answer.raise_for_status()
        print(json.dumps(answer.json(), default=str))


if __name__ == "__main__":
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    main(sys.argv[1:])
