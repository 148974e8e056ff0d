"""The Patchcycle page's FastAPI app, mounted by the api-server at :data:`~patchcycle.ui.URL_PREFIX`.

``GET /``: every tenant the user may read, from each tenant's evidence store, read the way the portfolio
roll-up reads it (tenants from ``config/loader.py``, the tenant's S3 evidence hook, the latest cycle by
:func:`~patchcycle.domain.fleet_status.latest_packs`), as server-rendered HTML.
``GET /tenants/<tenant>/packs/<key>``: a pack's ``evidence.json`` or ``report.pdf``, streamed from the
tenant's evidence store, so the browser never needs cloud credentials.

Behind Airflow's own auth: every route depends on ``get_user`` of
``airflow/api_fastapi/core_api/security.py``, the dependency of Airflow's own API and UI routes (the JWT
from the ``Authorization: Bearer`` header, else the ``_token`` cookie the UI's login sets), so a request
without a valid token is refused (the page redirects it to Airflow's login). What a user sees is what
Airflow's auth manager lets them read: a tenant appears, and its packs are served, only to a user
authorised to read the runs of the tenant's cycle DAG ``patch_cycle__<tenant>`` (``is_authorized_dag``
GET with ``DagAccessEntity.RUN``: the check of ``GET /api/v2/dags/{dag_id}/dagRuns``), since a pack is
the record of such a run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from patchcycle.config.exceptions import load_tenant_exception_register
from patchcycle.config.loader import load_tenants
from patchcycle.config.models import Tenant
from patchcycle.domain.fleet_status import (
    PAGE_FILES,
    LatestPacks,
    PackUnreadable,
    TenantStatus,
    latest_packs,
    pack_file_parts,
    tenant_status,
)
from patchcycle.ui import URL_PREFIX

if TYPE_CHECKING:
    from patchcycle.hooks.s3 import EvidenceBucketHook

TenantFilter = Callable[[BaseUser, Tenant], bool]
MEDIA_TYPES = {"evidence.json": "application/json", "report.pdf": "application/pdf"}
READERS = 8
"""Tenants whose evidence stores are read at once (each read waits on S3)."""
CHUNK = 64 * 1024

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def tenant_access() -> TenantFilter:
    """Whether a user may read a tenant's page row and packs: Airflow's auth manager, asked whether the
    user may read the runs of the tenant's cycle DAG (a FastAPI dependency, so tests can replace it).

    Multi-team deployments would also pass the DAG's team (``DagDetails.team_name``); Patchcycle's DAGs
    carry none.
    """
    auth_manager = get_auth_manager()

    def may_read(user: BaseUser, tenant: Tenant) -> bool:
        return auth_manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=tenant.dag_id), user=user
        )

    return may_read


TenantAccessDep = Annotated[TenantFilter, Depends(tenant_access)]


def _evidence_hook(tenant: Tenant) -> EvidenceBucketHook:
    from patchcycle.hooks.s3 import EvidenceBucketHook

    return EvidenceBucketHook(aws_conn_id=tenant.evidence.connection_id, region_name=tenant.evidence.region)


def _describe(exc: BaseException) -> str:
    """An error in one line: the cloud's error code and message when it gave them."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        text = f"{error.get('Code')}: {error.get('Message') or ''}".rstrip(": ")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else f"{text[:297]}..."


def read_tenant_status(tenant: Tenant, as_of: dt.date) -> TenantStatus:
    """One tenant's row, read from its evidence store and exception register. Whatever cannot be read
    becomes a problem on the row that names the tenant, the store and the key; it never stops the page."""
    bucket = tenant.evidence.bucket
    problems: list[str] = []
    latest: LatestPacks | None = None
    # Anything can go wrong per tenant (no connection, no bucket, no network, bad JSON); the page must
    # still show every other tenant, so each failure is caught here and shown on this tenant's row.
    try:
        hook = _evidence_hook(tenant)
        keys = hook.keys(bucket, "cycles/")
    except Exception as exc:
        problems.append(f"{tenant.id}: evidence store s3://{bucket}/cycles/ unreadable: {_describe(exc)}")
    else:

        def read(key: str) -> Any:
            try:
                document = json.loads(hook.get(bucket, key))
            except Exception as exc:
                raise PackUnreadable(key, _describe(exc)) from exc
            if not isinstance(document, dict) or not isinstance(document.get("cycle"), dict):
                raise PackUnreadable(key, "not an evidence document (no cycle object)")
            return document

        try:
            latest = latest_packs(keys, read)
        except PackUnreadable as exc:
            problems.append(f"{tenant.id}: evidence pack s3://{bucket}/{exc.key} unreadable: {exc.reason}")
    try:
        register = load_tenant_exception_register(tenant.id)
    except Exception as exc:
        register = None
        problems.append(f"{tenant.id}: exception register unreadable: {_describe(exc)}")

    def row(packs: LatestPacks | None) -> TenantStatus:
        return tenant_status(
            tenant_id=tenant.id,
            display_name=tenant.display_name,
            dag_id=tenant.dag_id,
            latest=packs,
            register=register,
            as_of=as_of,
            problems=problems,
        )

    try:
        return row(latest)
    except Exception as exc:  # a pack of a shape no builder writes: said, with its key
        key = latest.cycle.key if latest and latest.cycle else "?"
        problems.append(f"{tenant.id}: evidence pack s3://{bucket}/{key} unreadable: {_describe(exc)}")
        return row(None)


def _roots(request: Request) -> tuple[str, str]:
    """(this app's root path, the Airflow UI's root path) as the browser sees them."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return root, root.removesuffix(URL_PREFIX)


def create_app() -> FastAPI:  # noqa: C901 - mccabe counts the nested route handlers into the factory; each handler is small
    """The page's app (no OpenAPI documents: it is a UI, not an API)."""
    app = FastAPI(title="Patchcycle", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def fleet_page(request: Request, user: GetUserDep, may_read: TenantAccessDep) -> HTMLResponse:
        now = dt.datetime.now(dt.UTC)
        tenant_set = load_tenants()
        tenants = sorted((t for t in tenant_set.tenants if may_read(user, t)), key=lambda t: t.id)
        with ThreadPoolExecutor(max_workers=max(1, min(READERS, len(tenants)))) as pool:
            rows = list(pool.map(lambda t: read_tenant_status(t, now.date()), tenants))
        root, ui_root = _roots(request)

        def run_href(dag_id: str, run_id: str) -> str:
            # The UI's route of a DAG run (what its own links use), ids encoded as the UI encodes them.
            return f"{ui_root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"

        def file_href(row: TenantStatus, key: str) -> str:
            return f"{root}/tenants/{quote(row.tenant_id, safe='')}/packs/{quote(key)}"

        html = _templates.get_template("fleet.html").render(
            rows=rows,
            config_errors=[str(error) for error in tenant_set.errors],
            as_of=now.date().isoformat(),
            generated_at=now.strftime("%Y-%m-%d %H:%M UTC"),
            run_href=run_href,
            file_href=file_href,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/tenants/{tenant_id}/packs/{key:path}")
    def pack_file(tenant_id: str, key: str, user: GetUserDep, may_read: TenantAccessDep) -> Response:
        tenant = load_tenants().get(tenant_id)
        if tenant is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant_id!r}")
        if not may_read(user, tenant):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"not authorised to read {tenant.dag_id} runs")
        parts = pack_file_parts(key)
        if parts is None or parts[1] not in PAGE_FILES:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"not a pack's {' or '.join(PAGE_FILES)}: {key}")
        bucket = tenant.evidence.bucket
        try:
            obj = _evidence_hook(tenant).get_streaming(bucket, key)
        except Exception as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"{tenant_id}: s3://{bucket}/{key} not found"
                ) from exc
            raise HTTPException(
                status.HTTP_502_BAD_GATEWAY, f"{tenant_id}: s3://{bucket}/{key} unreadable: {_describe(exc)}"
            ) from exc
        body = obj["Body"]
        name = parts[1]
        filename = f"{tenant_id}-{key.split('/')[1]}-{key.split('/')[3]}-{name}"
        # The PDF downloads: the UI's plugin iframe allows downloads, and a PDF viewer may not run there.
        disposition = "attachment" if name.endswith(".pdf") else "inline"
        headers = {"Content-Disposition": f'{disposition}; filename="{filename}"', "Cache-Control": "private"}
        if obj.get("ContentLength") is not None:
            headers["Content-Length"] = str(obj["ContentLength"])
        return StreamingResponse(
            body.iter_chunks(CHUNK),
            media_type=MEDIA_TYPES[name],
            headers=headers,
            background=BackgroundTask(body.close),
        )

    @app.exception_handler(StarletteHTTPException)
    async def login_first(request: Request, exc: StarletteHTTPException) -> Response:
        # A browser opening the page without a (valid) token goes to Airflow's login and comes back;
        # the pack endpoints answer 401/403 as Airflow's own API does.
        unauthenticated = exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)
        if unauthenticated and request.scope.get("endpoint") is fleet_page:
            root, ui_root = _roots(request)
            login = f"{ui_root}/api/v2/auth/login?{urlencode({'next': f'{root}/'})}"
            return RedirectResponse(login, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
        return await http_exception_handler(request, exc)

    return app
