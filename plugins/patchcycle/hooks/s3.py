"""S3, for the evidence bucket: conditional writes, reads, listing and pre-signed links."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError


class EvidenceBucketHook(S3Hook):
    """The evidence bucket, through the Amazon provider's S3 hook (so the connection decides the endpoint)."""

    def put_once(
        self, bucket: str, key: str, data: bytes, content_type: str, retain_until: dt.datetime | None = None
    ) -> None:
        """Create the object only if the key is new (``If-None-Match: *``); KMS-encrypted at rest, and
        locked in compliance mode until ``retain_until`` (nobody, root included, can delete it before)."""
        extra: dict[str, Any] = {}
        if retain_until is not None:
            extra = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": retain_until}
        self.get_conn().put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            IfNoneMatch="*",
            ServerSideEncryption="aws:kms",
            **extra,
        )

    def get(self, bucket: str, key: str) -> bytes:
        return self.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()

    def get_or_none(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.get(bucket, key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def keys(self, bucket: str, prefix: str) -> list[str]:
        return sorted(self.list_keys(bucket_name=bucket, prefix=prefix) or [])

    def presigned_get(self, bucket: str, key: str, expires_in: int) -> str | None:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        return self.generate_presigned_url("get_object", params=params, expires_in=expires_in)
