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
        """``InstancesClient`` (list, get, stop, start, detach and attach disks)."""
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
        """``DisksClient`` (snapshot a disk, create a disk from a snapshot)."""
        from google.cloud import compute_v1

        return compute_v1.DisksClient(**self.client_kwargs())

    @cached_property
    def snapshots(self) -> Any:
        """``SnapshotsClient`` (list and get snapshots)."""
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

    # -- restoring an instance's boot disk from a snapshot ------------------------------------------
    # Compute Engine has no single "restore" call: stop the instance, create a disk from the snapshot,
    # detach the old boot disk, attach the new one as boot, start. Each call below starts one step and
    # returns its zonal operation's name at once; callers poll :meth:`zone_operation`. Each sends a
    # requestId derived from ``request_key``, so a retried step returns the first operation.

    def _request_id(self, *parts: str) -> str:
        return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, "/".join((self.project, *parts))))

    @cached_property
    def zone_operations(self) -> Any:
        """``ZoneOperationsClient`` (reads the zonal operations the restore steps start)."""
        from google.cloud import compute_v1

        return compute_v1.ZoneOperationsClient(**self.client_kwargs())

    def _start_step(self, what: str, method: Any, request: Any) -> str:
        """Send one step's request; the name of the operation it started."""
        try:
            return method(request=request, timeout=CALL_TIMEOUT_SECONDS).name
        except CALL_ERRORS as exc:
            raise self.failed(what, exc) from exc

    def stop_instance(self, zone: str, instance: str, request_key: str) -> str:
        """Stop an instance (STOPPING, then TERMINATED); returns the operation's name."""
        from google.cloud import compute_v1

        request = compute_v1.StopInstanceRequest(
            project=self.project,
            zone=zone,
            instance=instance,
            request_id=self._request_id(zone, instance, "stop", request_key),
        )
        return self._start_step(
            f"stopping instance {zone}/{instance}", self.instances_client.stop_unary, request
        )

    def start_instance(self, zone: str, instance: str, request_key: str) -> str:
        """Start a stopped instance (STAGING, then RUNNING); returns the operation's name."""
        from google.cloud import compute_v1

        request = compute_v1.StartInstanceRequest(
            project=self.project,
            zone=zone,
            instance=instance,
            request_id=self._request_id(zone, instance, "start", request_key),
        )
        return self._start_step(
            f"starting instance {zone}/{instance}", self.instances_client.start_unary, request
        )

    def create_disk_from_snapshot(
        self, zone: str, disk: str, snapshot: str, labels: dict[str, str], request_key: str
    ) -> str:
        """Create a zonal disk from one of the project's snapshots; returns the operation's name."""
        from google.cloud import compute_v1

        request = compute_v1.InsertDiskRequest(
            project=self.project,
            zone=zone,
            disk_resource=compute_v1.Disk(
                name=disk,
                source_snapshot=f"projects/{self.project}/global/snapshots/{snapshot}",
                labels=dict(labels),
            ),
            request_id=self._request_id(zone, disk, "insert", request_key),
        )
        return self._start_step(
            f"creating disk {zone}/{disk} from snapshot {snapshot}", self.disks.insert_unary, request
        )

    def detach_boot_disk(self, zone: str, instance: str, device_name: str, request_key: str) -> str:
        """Detach a stopped instance's boot disk (by device name); returns the operation's name."""
        from google.cloud import compute_v1

        request = compute_v1.DetachDiskInstanceRequest(
            project=self.project,
            zone=zone,
            instance=instance,
            device_name=device_name,
            request_id=self._request_id(zone, instance, "detach", request_key),
        )
        return self._start_step(
            f"detaching disk {device_name} of instance {zone}/{instance}",
            self.instances_client.detach_disk_unary,
            request,
        )

    def attach_boot_disk(
        self, zone: str, instance: str, disk: str, device_name: str, request_key: str
    ) -> str:
        """Attach a disk to a stopped instance as its boot disk; returns the operation's name."""
        from google.cloud import compute_v1

        request = compute_v1.AttachDiskInstanceRequest(
            project=self.project,
            zone=zone,
            instance=instance,
            attached_disk_resource=compute_v1.AttachedDisk(
                source=f"projects/{self.project}/zones/{zone}/disks/{disk}",
                boot=True,
                device_name=device_name,
                auto_delete=False,
            ),
            request_id=self._request_id(zone, instance, "attach", disk, request_key),
        )
        return self._start_step(
            f"attaching disk {zone}/{disk} to instance {instance} as boot",
            self.instances_client.attach_disk_unary,
            request,
        )

    def zone_operation(self, zone: str, name: str) -> dict[str, Any]:
        """A zonal operation: ``status`` (PENDING | RUNNING | DONE), ``error`` (``errors``) when it failed."""
        try:
            return message_dict(
                self.zone_operations.get(
                    project=self.project, zone=zone, operation=name, timeout=CALL_TIMEOUT_SECONDS
                )
            )
        except CALL_ERRORS as exc:
            raise self.failed(f"reading operation {zone}/{name}", exc) from exc

    def instance(self, zone: str, name: str) -> dict[str, Any]:
        """One instance (``status``, ``disks`` with the boot disk's ``source``, ...)."""
        try:
            return message_dict(
                self.instances_client.get(
                    project=self.project, zone=zone, instance=name, timeout=CALL_TIMEOUT_SECONDS
                )
            )
        except CALL_ERRORS as exc:
            raise self.failed(f"reading instance {zone}/{name}", exc) from exc
