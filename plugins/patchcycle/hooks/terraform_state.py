"""S3, for the platform's Terraform state bucket: a tenant scope's state file and its pipeline's plans.

Read only, through the platform's connection (the one the evidence writer uses, ``patchcycle_evidence``,
unless ``[patchcycle] terraform_state_conn_id`` names another): the bucket is the roots' S3 backend
(``include/terraform/tenants/<tenant>/backend.tf``), versioned, so each read records the object version
it read. GetObject (Amazon S3 API Reference, GetObject: ``VersionId``, ``LastModified``, ``ETag``;
``NoSuchKey`` when there is no object).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

from patchcycle.hooks.aws_session import CallerFromFrames

NOT_FOUND = frozenset({"NoSuchKey", "404"})


class TerraformStateHook(CallerFromFrames, S3Hook):
    """The state bucket, through the Amazon provider's S3 hook (the connection decides the endpoint)."""

    def read(self, bucket: str, key: str) -> tuple[bytes, dict[str, Any]] | None:
        """GetObject, read whole: the object's bytes and what identifies the version read (``version_id``,
        ``last_modified``, ``etag``); None when there is no such key."""
        try:
            response = self.get_conn().get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
                return None
            raise
        modified = response.get("LastModified")
        facts = {
            "bucket": bucket,
            "key": key,
            "version_id": response.get("VersionId"),
            "last_modified": modified.isoformat() if modified is not None else None,
            "etag": response.get("ETag"),
        }
        return response["Body"].read(), facts
