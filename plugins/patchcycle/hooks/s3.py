"""S3, for the evidence bucket: conditional writes, reads, listing and pre-signed links."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

from patchcycle.hooks.aws_session import CallerFromFrames


class EvidenceBucketHook(CallerFromFrames, S3Hook):
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
        """GetObject, read whole: the object's bytes; ``ClientError`` (``NoSuchKey``...) if it fails."""
        return self.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()

    def get_streaming(self, bucket: str, key: str) -> dict[str, Any]:
        """GetObject unread: ``Body`` (botocore's StreamingBody, to pass on in chunks), ``ContentLength``
        and ``ContentType``; raises ``ClientError`` (``NoSuchKey``...) before any byte is sent."""
        return self.get_conn().get_object(Bucket=bucket, Key=key)

    def get_or_none(self, bucket: str, key: str) -> bytes | None:
        """Like :meth:`get`, but None when the key does not exist (``NoSuchKey`` or 404)."""
        try:
            return self.get(bucket, key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def keys(self, bucket: str, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted (the provider's ``list_keys``: ListObjectsV2, all pages)."""
        return sorted(self.list_keys(bucket_name=bucket, prefix=prefix) or [])

    def signing_credentials(self) -> tuple[bool, dt.datetime | None]:
        """Whether the credentials that sign this hook's links are temporary (a session token: an assumed
        role, an instance profile, SSO), and when they expire if botocore knows.

        S3 user guide, "Sharing objects with presigned URLs": a URL signed with temporary credentials
        "expires when the token expires, even if you created the URL with a later expiration time".
        """
        credentials = self.get_session().get_credentials()
        if credentials is None:
            return False, None
        temporary = bool(credentials.get_frozen_credentials().token)
        # RefreshableCredentials keep their expiry privately; no public accessor exists in botocore.
        expiry = getattr(credentials, "_expiry_time", None)
        return temporary, expiry if temporary and isinstance(expiry, dt.datetime) else None

    def presigned_get(self, bucket: str, key: str, expires_in: int) -> str | None:
        """A pre-signed GetObject URL valid for ``expires_in`` seconds; None if signing fails (the provider
        logs why)."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        return self.generate_presigned_url("get_object", params=params, expires_in=expires_in)
