"""Compute Engine, spoken to only here: the project's instances (ids, labels, IPs) and the persistent-disk
snapshot taken before an instance is patched.

Thin seams over ``google-cloud-compute`` (REST only). Configured only by an Airflow
``google_cloud_platform`` connection (see :mod:`patchcycle.hooks.gcp_base`). Snapshots are returned as
plain dicts as the REST API writes them (``name``, ``status`` CREATING | UPLOADING | READY | FAILED |
DELETING, ``labels``, ``sourceDisk``, ``creationTimestamp``, ``diskSizeGb``, ...).

Creating a snapshot does not wait for it: ``DisksClient.create_snapshot_unary`` returns the zonal
operation at once, and callers poll :meth:`DiskSnapshotHook.snapshots_labelled` (one call for a whole
stage) until every snapshot is READY. Not ``DisksClient.create_snapshot``: its ExtendedOperation polls
through a ``ZoneOperationsClient`` the transport builds with the default host (compute.googleapis.com)
and the credentials only, dropping ``client_options`` (``transports/base.py``,
``_zone_operations_client``), so it would wait on the wrong endpoint and block a worker slot anyway.
"""

from __future__ import annotations

import uuid
from functools import cached_property
from typing import Any

from patchcycle.hooks.gcp_base import (
    CALL_ERRORS,
    CALL_TIMEOUT_SECONDS,
    GcpConflict,
    GoogleRestHook,
    message_dict,
)

# Compute Engine list calls return at most 500 results per page (maxResults 0..500).
COMPUTE_LIST_MAX_RESULTS = 500
# Namespace of the requestId sent with each create: a retried create of the same snapshot is ignored
# by Compute Engine (it returns the first operation) instead of failing or creating twice.
_REQUEST_ID_NAMESPACE = uuid.UUID("5b0f7cbe-52a4-4c55-9d7e-7f4b5e2f6a10")


def label_filter(labels: dict[str, str]) -> str:
    """A Compute list filter matching resources that carry all ``labels``."""
    for key, value in labels.items():
        if '"' in key or '"' in value or " " in key:
            raise ValueError(f"label {key!r}={value!r} cannot be used in a Compute filter")
    return " ".join(f'(labels.{key} = "{value}")' for key, value in sorted(labels.items()))


class DiskSnapshotHook(GoogleRestHook):
    """The instances of one project and snapshots of their persistent disks."""

    @cached_property
    def instances_client(self) -> Any:
        from google.cloud import compute_v1

        return compute_v1.InstancesClient(**self.client_kwargs())

    def instances(self, zone: str) -> list[dict[str, Any]]:
        """Every instance of a zone: ``id``, ``name``, ``zone`` (URL), ``status``, ``labels``,
        ``networkInterfaces`` (``networkIP``), ``disks`` (``boot``, ``source``), ``metadata``, ..."""
        from google.cloud import compute_v1

        request = compute_v1.ListInstancesRequest(
            project=self.project, zone=zone, max_results=COMPUTE_LIST_MAX_RESULTS
        )
        try:
            pages = self.instances_client.list(request=request, timeout=CALL_TIMEOUT_SECONDS)
            return [message_dict(instance) for instance in pages]
        except CALL_ERRORS as exc:
            raise self.failed(f"listing the instances of zone {zone}", exc) from exc

    @cached_property
    def disks(self) -> Any:
        from google.cloud import compute_v1

        return compute_v1.DisksClient(**self.client_kwargs())

    @cached_property
    def snapshots(self) -> Any:
        from google.cloud import compute_v1

        return compute_v1.SnapshotsClient(**self.client_kwargs())

    def create_snapshot(self, zone: str, disk: str, name: str, labels: dict[str, str]) -> str:
        """Start a snapshot of a zonal disk; returns its name at once (it is CREATING, not READY).

        Idempotent: a snapshot of that name that exists already (an earlier attempt's) is taken as this
        one, and a retried request carries the same requestId. A GCE instance's boot disk is named like
        the instance unless it was created otherwise.
        """
        from google.cloud import compute_v1

        request = compute_v1.CreateSnapshotDiskRequest(
            project=self.project,
            zone=zone,
            disk=disk,
            snapshot_resource=compute_v1.Snapshot(name=name, labels=dict(labels)),
            request_id=str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"{self.project}/{zone}/{disk}/{name}")),
        )
        try:
            self.disks.create_snapshot_unary(request=request, timeout=CALL_TIMEOUT_SECONDS)
        except CALL_ERRORS as exc:
            error = self.failed(f"snapshotting disk {zone}/{disk} as {name}", exc)
            if isinstance(error, GcpConflict):
                return name  # it exists: an earlier attempt created it
            raise error from exc
        return name

    def snapshots_labelled(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every snapshot of the project carrying all ``labels`` (e.g. one cycle stage's backups)."""
        from google.cloud import compute_v1

        request = compute_v1.ListSnapshotsRequest(
            project=self.project, filter=label_filter(labels), max_results=COMPUTE_LIST_MAX_RESULTS
        )
        try:
            pages = self.snapshots.list(request=request, timeout=CALL_TIMEOUT_SECONDS)
            return [message_dict(snapshot) for snapshot in pages]
        except CALL_ERRORS as exc:
            raise self.failed(f"listing snapshots labelled {labels}", exc) from exc

    def snapshot(self, name: str) -> dict[str, Any]:
        """One snapshot by name; :class:`~patchcycle.hooks.gcp_base.GcpNotFound` when there is none."""
        try:
            return message_dict(
                self.snapshots.get(project=self.project, snapshot=name, timeout=CALL_TIMEOUT_SECONDS)
            )
        except CALL_ERRORS as exc:
            raise self.failed(f"reading snapshot {name}", exc) from exc
