"""A local Airflow pointed at fleetsim: configuration, connections, metadata DB, and fleetsim's process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Airflow's ``[aws] session_factory`` for every run (plugins/patchcycle/hooks/aws_session.py).
SESSION_FACTORY = "patchcycle.hooks.aws_session.SharedModelSessionFactory"
EXECUTION_ROLE = "PatchcycleExecution"


def aws_connection(url: str, region: str, role_account: str | None = None) -> str:
    """An Airflow AWS connection (JSON form) whose every call goes to fleetsim.

    Against AWS the same connection carries no endpoint: credentials (or the worker's role) and a
    ``role_arn`` into the tenant's account are all it needs.
    """
    extra: dict[str, Any] = {
        "region_name": region,
        "endpoint_url": url,
        # The STS client used for role_arn ignores the global endpoint_url; it needs its own.
        "service_config": {"sts": {"endpoint_url": url}},
    }
    if role_account:
        extra["role_arn"] = f"arn:aws:iam::{role_account}:role/{EXECUTION_ROLE}"
    return json.dumps({"conn_type": "aws", "login": "fleetsim", "password": "fleetsim", "extra": extra})


# fleetsim accepts each tenant's own Falcon API client: client id = tenant id, this secret (its default).
FLEETSIM_FALCON_SECRET = "fleetsim-falcon-secret"


def azure_connection(url: str, tenant_id: str | None = None) -> str:
    """An Azure connection for fleetsim: ARM at its URL and a static bearer token (loopback only); with
    ``tenant_id``, Microsoft Graph at fleetsim's directory of that tenant (``graph_url``).

    Against Azure: login = client id, password = client secret, extra ``tenantId`` (or none of them,
    for a managed identity through DefaultAzureCredential), and no ``base_url`` nor ``graph_url``.
    """
    extra = {"base_url": url, "static_token": "fleetsim"}
    if tenant_id:
        extra["graph_url"] = f"{url}/graph/{tenant_id}"
    return json.dumps({"conn_type": "azure", "extra": extra})


def gcp_connection(url: str) -> str:
    """A Google Cloud connection for fleetsim: the REST endpoint at its URL, anonymous credentials.

    Against Google Cloud: the Google provider's usual fields (key_path / keyfile_dict, or ADC) and no
    ``api_endpoint``.
    """
    return json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"api_endpoint": url, "anonymous": True}}
    )


def falcon_connection(url: str, client_id: str) -> str:
    """A Falcon API client connection: host = API base URL, login/password = client id/secret."""
    return json.dumps(
        {"conn_type": "http", "host": url, "login": client_id, "password": FLEETSIM_FALCON_SECRET}
    )


def pagerduty_connection(url: str, tenant_id: str) -> str:
    """A PagerDuty Events API v2 integration: host = the Events API, password = the routing key."""
    key = (tenant_id.replace("_", "") * 32)[:32]  # any 32-character key; fleetsim records which
    return json.dumps({"conn_type": "http", "host": url, "password": key})


def dynatrace_connection(url: str) -> str:
    """A Dynatrace environment: host = its URL (SaaS or Managed), password = an API token
    (problems.read, metrics.read); fleetsim's token is its scenario default."""
    return json.dumps({"conn_type": "http", "host": url, "password": "dt0c01.FLEETSIM.TOKEN"})


def backup_system_connection(url: str) -> str:
    """The tenant backup system's API (attestations of Arc machines' backups): host and API token."""
    return json.dumps({"conn_type": "http", "host": url, "password": "fleetsim-backup-token"})


def tenant_connections(url: str, tenants_dir: Path | None = None) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for every tenant's clouds, Falcon, backup system and evidence bucket."""
    sys.path.insert(0, str(REPO / "plugins"))
    from patchcycle.config.loader import load_tenants

    tenant_set = load_tenants(tenants_dir)
    env: dict[str, str] = {}
    for tenant in tenant_set.tenants:
        for account in tenant.clouds.aws.accounts if tenant.clouds.aws else []:
            conn_id = tenant.aws_connection_id(account)
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = aws_connection(
                url, account.regions[0], account.account_id
            )
        for sub in tenant.clouds.azure.subscriptions if tenant.clouds.azure else []:
            env[f"AIRFLOW_CONN_{tenant.azure_connection_id(sub).upper()}"] = azure_connection(url, tenant.id)
        if tenant.clouds.azure:
            env[f"AIRFLOW_CONN_{tenant.backup_attestation_connection_id().upper()}"] = (
                backup_system_connection(url)
            )
        for project in tenant.clouds.gcp.projects if tenant.clouds.gcp else []:
            env[f"AIRFLOW_CONN_{tenant.gcp_connection_id(project).upper()}"] = gcp_connection(url)
        if (dynatrace_conn := tenant.dynatrace_connection_id()) is not None:
            env[f"AIRFLOW_CONN_{dynatrace_conn.upper()}"] = dynatrace_connection(url)
        if (pagerduty_conn := tenant.pagerduty_connection_id()) is not None:
            env[f"AIRFLOW_CONN_{pagerduty_conn.upper()}"] = pagerduty_connection(url, tenant.id)
        if (falcon_conn := tenant.falcon_connection_id()) is not None:
            env[f"AIRFLOW_CONN_{falcon_conn.upper()}"] = falcon_connection(url, tenant.id)
        if tenant.falcon is not None and tenant.falcon.rollout is not None:
            # The roll-out's install secrets: no CID (the roll-out reads it from the API client), a token.
            install = tenant.falcon.rollout.install_connection_id(tenant.id)
            env[f"AIRFLOW_CONN_{install.upper()}"] = json.dumps(
                {"conn_type": "generic", "password": f"fleetsim-install-token-{tenant.id}"}
            )
            if tenant.clouds.azure:
                # The API client CrowdStrike's Arc extension installs with: fleetsim's Falcon takes the
                # tenant's own client id with its secret (fleetsim/falcon/api.py, "API clients").
                client = tenant.falcon.rollout.install.azure.api_client_connection(tenant.id)
                env[f"AIRFLOW_CONN_{client.upper()}"] = json.dumps(
                    {"conn_type": "generic", "login": tenant.id, "password": FLEETSIM_FALCON_SECRET}
                )
        ev = tenant.evidence
        env[f"AIRFLOW_CONN_{ev.connection_id.upper()}"] = aws_connection(url, ev.region)
        # IAM Identity Center lives in the platform account too (the access review reads it).
        env["AIRFLOW_CONN_PATCHCYCLE_IDENTITY"] = aws_connection(url, ev.region)
    return env


def exceptions_for(tenants_dir: Path, folder: Path) -> Path:
    """``folder`` holding the shipped exception registers of the tenants in ``tenants_dir`` only.

    A register named after no tenant is a configuration error (``tenant_config_check``), so a run on
    another set of tenants gets the registers that belong to its tenants and no others.
    """
    from patchcycle.config.exceptions import EXCEPTIONS_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():  # an earlier run's tenants, in a reused home
        stale.unlink()
    tenants = {path.stem for path in Path(tenants_dir).iterdir() if path.suffix.lower() in (".yaml", ".yml")}
    for register in EXCEPTIONS_DIR.iterdir():
        if register.stem in tenants and register.suffix.lower() in (".yaml", ".yml"):
            (folder / register.name).write_bytes(register.read_bytes())
    return folder


def airflow_env(
    home: Path, fleetsim_url: str, *, poll_seconds: float = 1.0, tenants_dir: Path | None = None
) -> dict[str, str]:
    """The environment of every Airflow command of a local run."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__PATCHCYCLE__POLL_SECONDS": str(poll_seconds),
            "AIRFLOW__PATCHCYCLE__RETRY_DELAY_SECONDS": "1",
            # Every AWS hook's sessions share one cache of botocore's service models (as deployments do).
            "AIRFLOW__AWS__SESSION_FACTORY": SESSION_FACTORY,
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            # Nothing in a local run may reach a real cloud, whatever the user's shell has set.
            "AWS_ACCESS_KEY_ID": "fleetsim",
            "AWS_SECRET_ACCESS_KEY": "fleetsim",
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.pop("AWS_PROFILE", None)
    if tenants_dir:
        env["PATCHCYCLE_TENANTS_DIR"] = str(tenants_dir)
        env.setdefault("PATCHCYCLE_EXCEPTIONS_DIR", str(exceptions_for(tenants_dir, home / "exceptions")))
    env.update(tenant_connections(fleetsim_url, tenants_dir))
    env.update(smtp_connection(fleetsim_url))
    env["AIRFLOW_CONN_PATCHCYCLE_FEEDS"] = feeds_connection(fleetsim_url)
    return env


def feeds_connection(url: str) -> str:
    """The ``patchcycle_feeds`` connection for fleetsim's KEV and EPSS feeds (``fleetsim.feeds``).

    In production the extras name CISA's and FIRST's URLs (or are absent: the public ones are the
    defaults, ``patchcycle.feeds.FeedUrls``)."""
    extra = {"kev_url": f"{url}/feeds/kev.json", "epss_url": f"{url}/feeds/epss_scores.csv.gz"}
    return json.dumps({"conn_type": "http", "extra": extra})


def smtp_connection(fleetsim_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_PATCHCYCLE_SMTP`` for fleetsim's mail relay (plain SMTP on loopback), if it answers."""
    try:
        port = fleetsim_get(fleetsim_url, "/fleetsim/mail")["smtp_port"]
    except OSError:
        return {}
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {
            "disable_ssl": True,
            "disable_tls": True,
            "from_email": "patchcycle@platform.example.com",
            "retry_limit": 1,
        },
    }
    return {"AIRFLOW_CONN_PATCHCYCLE_SMTP": json.dumps(conn)}


def migrate_db(env: dict[str, str]) -> None:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)


@contextmanager
def running_fleetsim(scenario: Path, workdir: Path, timeout: float = 60.0) -> Iterator[str]:
    """Start ``python -m fleetsim serve`` on a free loopback port; yield its URL; stop it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "fleetsim.ready.json"
    ready.unlink(missing_ok=True)
    log = open(workdir / "fleetsim.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetsim",
            "serve",
            "--scenario",
            str(scenario),
            "--port",
            "0",
            "--ready-file",
            str(ready),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"fleetsim exited ({proc.returncode}); see {workdir / 'fleetsim.log'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"fleetsim did not start within {timeout:.0f}s")
            time.sleep(0.1)
        yield json.loads(ready.read_text())["url"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def fleetsim_s3(url: str, region: str = "us-east-1") -> Any:
    """boto3's S3 client on fleetsim (any keys do: fleetsim's S3 is moto's)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="fleetsim",
        aws_secret_access_key="fleetsim",
    )


def fleetsim_get(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}{path}", timeout=30) as resp:  # noqa: S310 - loopback
        return json.load(resp)


def run_cycle(
    env: dict[str, str], dag_id: str, logical_date: str, conf: dict[str, Any], log_path: Path
) -> int:
    """Run one DAG with ``airflow dags test`` (triggers run inline); return the exit code.

    The command runs in a fork of a warm Airflow process (``devtools.warm_airflow``): the same CLI entry
    point with the same arguments and environment, without paying Airflow's start again for each run.
    """
    from devtools.warm_airflow import warm_airflow

    argv = ["dags", "test", dag_id, logical_date, "--conf", json.dumps(conf)]
    return warm_airflow(env, REPO).run(argv, env, REPO, log_path)
