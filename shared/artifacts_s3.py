"""S3-compatible artifact backend, so several API replicas share one artifact store.

Layout in the bucket: ``<prefix>objects/<sha256>`` for published objects and
``<prefix>tmp/<random>`` while an upload is in flight. An upload streams to the
temporary key as a multipart upload (parts of ``PART_SIZE``, so memory stays bounded),
then is copied server-side to its content key and the temporary key is removed.
An aborted upload aborts its multipart upload, so nothing partial is ever readable.
Credentials come from boto3's usual chain (environment, profile, instance role).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

from shared.artifacts_objects import CHUNK, StorageError, StoredObject, check_key
from shared.settings import ArtifactSettings

PART_SIZE = 8 << 20  # S3 needs >= 5 MiB for every part but the last


def _started(key: str, fallback: float) -> float:
    stamp = key.rsplit("/", 1)[-1].split("-", 1)[0]
    return float(stamp) if stamp.isdigit() else fallback


class _S3Writer:
    def __init__(self, store: S3Store) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        # The start time is in the name: some S3-compatible servers report no usable "Initiated".
        self._tmp = f"{store.prefix}tmp/{int(time.time())}-{secrets.token_hex(12)}"
        self.size = 0

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._buf += data
        self.size += len(data)
        if len(self._buf) >= PART_SIZE:
            self._flush_part()

    def _flush_part(self) -> None:
        c = self._store.client
        if self._upload_id is None:
            self._upload_id = c.create_multipart_upload(Bucket=self._store.bucket, Key=self._tmp)["UploadId"]
        number = len(self._parts) + 1
        r = c.upload_part(Bucket=self._store.bucket, Key=self._tmp, UploadId=self._upload_id,
                          PartNumber=number, Body=bytes(self._buf))
        self._parts.append({"ETag": r["ETag"], "PartNumber": number})
        self._buf.clear()

    def commit(self) -> StoredObject:
        c, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is None:
                c.put_object(Bucket=bucket, Key=self._tmp, Body=bytes(self._buf))
            else:
                if self._buf:
                    self._flush_part()
                c.complete_multipart_upload(Bucket=bucket, Key=self._tmp, UploadId=self._upload_id,
                                            MultipartUpload={"Parts": self._parts})
                self._upload_id = None
            digest = self._hash.hexdigest()
            # Managed copy: server-side, multipart for large objects; refreshes LastModified.
            c.copy({"Bucket": bucket, "Key": self._tmp}, bucket, self._store.key_of(digest))
            c.delete_object(Bucket=bucket, Key=self._tmp)
            return StoredObject(key=digest, sha256=digest, size=self.size)
        except Exception as e:
            self.abort()
            raise StorageError("artifact upload to object storage failed") from e

    def abort(self) -> None:
        c, bucket = self._store.client, self._store.bucket
        self._buf.clear()
        try:
            if self._upload_id is not None:
                c.abort_multipart_upload(Bucket=bucket, Key=self._tmp, UploadId=self._upload_id)
                self._upload_id = None
            c.delete_object(Bucket=bucket, Key=self._tmp)
        except Exception:  # noqa: S110 - best effort; housekeeping removes stale temporaries
            pass


class S3Store:
    name = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "artifacts/") -> None:
        if not bucket:
            raise StorageError("ARTIFACT_S3_BUCKET is required for ARTIFACT_STORAGE=s3")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, cfg: ArtifactSettings) -> S3Store:
        return cls.connect(cfg.s3_endpoint_url, cfg.s3_region, cfg.s3_bucket, cfg.s3_prefix)

    @classmethod
    def connect(cls, endpoint_url: str, region: str, bucket: str, prefix: str) -> S3Store:
        """A store on ``bucket`` through boto3's usual credential chain (also used for served versions)."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32),
        )
        return cls(client, bucket, prefix)

    def touch(self, key: str) -> bool:
        """Refresh an object's LastModified (a server-side copy onto itself); False if it is absent.

        A writer that reuses an existing object touches it first, so a cleanup that removes
        old unreferenced objects cannot remove it before the writer's row refers to it.
        """
        from botocore.exceptions import ClientError

        name = self.key_of(key)
        try:
            self.client.copy_object(Bucket=self.bucket, Key=name, CopySource={"Bucket": self.bucket, "Key": name},
                                    MetadataDirective="REPLACE")
        except ClientError:
            return False
        return True

    def key_of(self, key: str) -> str:
        return f"{self.prefix}objects/{check_key(key)}"

    def open_writer(self) -> _S3Writer:
        return _S3Writer(self)

    def read(self, key: str, start: int = 0, end: int | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key_of(key)}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            body = self.client.get_object(**kwargs)["Body"]
        except self.client.exceptions.NoSuchKey as e:
            raise StorageError("object not found") from e
        return self._iter(body, chunk)

    @staticmethod
    def _iter(body: Any, chunk: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk)
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key_of(key))
        except ClientError:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key_of(key))

    def _list(self, sub: str) -> Iterator[tuple[str, float]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + sub)
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"], obj["LastModified"].timestamp()

    def list_objects(self) -> Iterator[tuple[str, float]]:
        base = f"{self.prefix}objects/"
        for key, mtime in self._list("objects/"):
            name = key[len(base):]
            if len(name) == 64 and all(ch in "0123456789abcdef" for ch in name):
                yield name, mtime

    def remove_stale_temps(self, older_than: float) -> int:
        removed = 0
        for key, mtime in list(self._list("tmp/")):
            if mtime < older_than:
                self.client.delete_object(Bucket=self.bucket, Key=key)
                removed += 1
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.prefix}tmp/")
        for up in uploads.get("Uploads", []):
            if _started(up["Key"], up["Initiated"].timestamp()) < older_than:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                removed += 1
        return removed
