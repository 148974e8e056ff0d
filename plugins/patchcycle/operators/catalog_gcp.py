"""Read the plan's GCP catalog: every project and zone of the tenant, zone-wide lists only."""

from __future__ import annotations

from typing import Any

from patchcycle.config.models import Tenant
from patchcycle.domain.plan import CatalogPatch


def read_gcp_catalog(tenant: Tenant, log: Any) -> list[CatalogPatch]:
    """The updates OS Config reports available on the tenant's GCE instances, as catalog entries
    (source ``gcp:osconfig.inventories``; see :mod:`patchcycle.domain.catalog_gcp`).

    Per project and zone: one ``ListInventories`` (``view=FULL``) and one ``ListVulnerabilityReports``,
    each paged (``instances/-``: every instance of the zone at once); no per-instance call. ``log`` is
    the task's event log (``record(event, **fields)``). A failed call raises the hook's ``GcpError``:
    the plan must not be frozen from part of a tenant's fleet.
    """
    from patchcycle.domain.catalog_gcp import catalog_from_osconfig, instance_id
    from patchcycle.hooks.gcp_osconfig import OsConfigHook

    if tenant.clouds.gcp is None:
        return []
    inventories: list[dict[str, Any]] = []
    reports: dict[str, dict[str, Any]] = {}
    for project in tenant.clouds.gcp.projects:
        hook = OsConfigHook(gcp_conn_id=tenant.gcp_connection_id(project), project_id=project.project_id)
        for zone in project.zones:
            found = hook.inventories(zone)
            inventories.extend(found)
            zone_reports = hook.vulnerability_reports(zone)
            for report in zone_reports:
                reports[instance_id(report["name"])] = report
            log.record(
                "plan.catalog_read",
                target=f"gcp:{project.project_id}/{zone}",
                inventories=len(found),
                vulnerability_reports=len(zone_reports),
            )
    catalog = catalog_from_osconfig(inventories, reports)
    log.record("plan.catalog_source", target="gcp:osconfig.inventories", entries=len(catalog))
    return catalog
