"""Artifact storage backends: local content-addressed folder and a real S3-compatible server (moto).

The S3 backend runs against ``python -m moto.server`` started as a subprocess on a free
loopback port (not a mock object), stopped by PID.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.artifacts_s3 import PART_SIZE, S3Store
from shared.artifacts_store import ArtifactStore, LocalStore, StorageError, put_file
from tests.serving.artifact_support import moto_server, s3_client


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the whole session (a real HTTP server, not a mock object)."""
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def s3_store(moto_endpoint: str) -> S3Store:
    client = s3_client(moto_endpoint)
    bucket = "art-" + secrets.token_hex(4)
    client.create_bucket(Bucket=bucket)
    return S3Store(client, bucket, "artifacts/")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    return request.getfixturevalue("s3_store")  # type: ignore[no-any-return]


def _write(store: ArtifactStore, data: bytes, chunk: int = 64 * 1024):  # type: ignore[no-untyped-def]
    w = store.open_writer()
    for i in range(0, len(data), chunk):
        w.write(data[i:i + chunk])
    return w.commit()


@pytest.mark.parametrize("size", [0, 1, 1000, PART_SIZE + 12345])
def test_roundtrip_and_checksum(store: ArtifactStore, size: int) -> None:
    data = os.urandom(size)
    obj = _write(store, data)
    assert obj.sha256 == hashlib.sha256(data).hexdigest() == obj.key
    assert obj.size == size
    assert store.exists(obj.key)
    assert b"".join(store.read(obj.key)) == data
    if size > 10:
        assert b"".join(store.read(obj.key, 3, 9)) == data[3:10]
        assert b"".join(store.read(obj.key, size - 5)) == data[-5:]


def test_identical_content_shares_one_object(store: ArtifactStore) -> None:
    a = _write(store, b"same bytes")
    b = _write(store, b"same bytes")
    assert a.key == b.key
    assert [k for k, _ in store.list_objects()] == [a.key]


def test_aborted_upload_leaves_nothing_visible(store: ArtifactStore) -> None:
    w = store.open_writer()
    w.write(os.urandom(PART_SIZE + 10))  # the S3 writer has started a multipart upload
    w.abort()
    assert list(store.list_objects()) == []
    if isinstance(store, LocalStore):
        assert list(store.tmp_dir.iterdir()) == []
    else:
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
        assert store.client.list_objects_v2(Bucket=store.bucket).get("KeyCount", 0) == 0


def test_uncommitted_upload_is_not_listed(store: ArtifactStore) -> None:
    w = store.open_writer()
    w.write(b"half an upload")
    assert list(store.list_objects()) == []
    w.abort()


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "a" * 63, "A" * 64, "g" * 64, "ab/" + "c" * 61, ""])
def test_keys_are_digests_only(store: ArtifactStore, key: str) -> None:
    with pytest.raises(StorageError):
        list(store.read(key))
    with pytest.raises(StorageError):
        store.delete(key)


def test_missing_object(store: ArtifactStore) -> None:
    with pytest.raises(StorageError):
        list(store.read("0" * 64))
    assert not store.exists("0" * 64)
    store.delete("0" * 64)  # idempotent


def test_delete_and_put_file(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "result.csv"
    src.write_bytes(b"a,b\n1,2\n" * 1000)
    obj = put_file(store, src)
    assert obj.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    store.delete(obj.key)
    assert not store.exists(obj.key)
    assert list(store.list_objects()) == []


def test_stale_temporaries_are_removed(store: ArtifactStore) -> None:
    w = store.open_writer()
    w.write(os.urandom(PART_SIZE + 1))  # S3: an open multipart upload; local: a .part file
    assert store.remove_stale_temps(time.time() - 3600) == 0
    assert store.remove_stale_temps(time.time() + 3600) >= 1
    if isinstance(store, LocalStore):
        assert list(store.tmp_dir.iterdir()) == []
    else:
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_local_layout_is_content_addressed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    obj = _write(store, b"hello")
    files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert files == [tmp_path / "artifacts" / "objects" / obj.key[:2] / obj.key]


def test_s3_layout(s3_store: S3Store) -> None:
    obj = _write(s3_store, b"hello")
    keys = [o["Key"] for o in s3_store.client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
    assert keys == [f"artifacts/objects/{obj.key}"]
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=keys[0])
    assert head["ContentLength"] == 5
    assert head["LastModified"] > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def test_api_on_the_s3_backend(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The artifact API on ARTIFACT_STORAGE=s3 against the moto server: upload, ranges, limit, delete, purge."""
    from litestar.testing import TestClient

    from serving.app import create_app
    from shared.artifacts_store import purge_expired_artifacts
    from shared.settings import Settings
    from tests.serving.helpers import admin_token, bearer, create_swarm, mint_token

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = s3_client(moto_endpoint)
    bucket = "api-" + secrets.token_hex(4)
    client.create_bucket(Bucket=bucket)
    home = tmp_path / "home"
    home.mkdir()
    limit = 6 << 20  # crosses no part boundary at the limit, but the +1 upload starts a multipart upload
    settings = Settings.from_env({
        "AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
        "JWT_SECRET": "test-secret-" + "q" * 32, "ADMIN_PASSWORD": "admin-password", "ARTIFACT_MAX_BYTES": str(limit),
        "ARTIFACT_STORAGE": "s3", "ARTIFACT_S3_BUCKET": bucket, "ARTIFACT_S3_ENDPOINT_URL": moto_endpoint,
    })
    with TestClient(create_app(settings)) as c:
        admin = bearer(admin_token(c))
        agent = bearer(mint_token(c, admin, "agent", create_swarm(c, admin, [])["id"])["token"])
        data = os.urandom(limit)  # exactly the limit
        r = c.post("/api/v1/artifacts", headers=agent, files={"file": ("s3.bin", data, "application/octet-stream")})
        assert r.status_code == 201, r.text
        art = r.json()
        assert art["sha256"] == hashlib.sha256(data).hexdigest()
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == [f"artifacts/objects/{art['sha256']}"]
        url = art["content_url"]
        assert c.get(url, headers=agent).content == data
        part = c.get(url, headers={**agent, "Range": "bytes=100-199"})
        assert (part.status_code, part.content) == (206, data[100:200])
        assert c.get(url, headers={**agent, "If-None-Match": f'"{art["sha256"]}"'}).status_code == 304
        big = os.urandom(PART_SIZE + 1)
        assert c.post("/api/v1/artifacts", headers=agent, files={"file": ("b", big, "x/y")}).status_code == 413
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == keys
        assert c.delete(url.removesuffix("/content"), headers=agent).status_code == 204
        assert c.get(url, headers=agent).status_code == 404
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert purge_expired_artifacts(settings, now=later) == 1
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
