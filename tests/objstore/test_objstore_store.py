"""SERVED_STORAGE=s3 against a real S3-compatible server (moto): publish, download and verify, the
cache's limit and grace period, a stale writer refused, and kill -9 during an upload.

Each "machine" is an ``ObjectStore`` with a data home of its own; they share only the
bucket and the control database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import signal
import sys
import time
from pathlib import Path

import duckdb
import pytest

from shared import processes, served_remote, served_storage
from shared.served import ServedDataError, table_dir, version_files, version_path
from shared.served_remote import PublishConflict
from shared.served_storage import ObjectStore
from tests.objstore.objstore_support import S3Proxy, objstore_env, objstore_settings, publish_rows
from tests.serving.artifact_support import bytecode_cache_env, s3_client

pytestmark = pytest.mark.usefixtures("aws_env")
KEY = "demo.public.orders"
ROOT = Path(__file__).resolve().parents[2]


def machine(tmp_path: Path, name: str, db: str, proxy: S3Proxy, bucket: str, **extra: str) -> ObjectStore:
    return ObjectStore(objstore_settings(tmp_path / name, db, proxy.url, bucket, **extra))


def count(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM data").fetchone()[0])


def test_publish_records_size_and_sha256_and_another_machine_downloads_on_first_use(
    tmp_path: Path, shared_db: str, proxy: S3Proxy, bucket: str
) -> None:
    writer, reader = (machine(tmp_path, n, shared_db, proxy, bucket) for n in ("writer", "reader"))
    m = publish_rows(writer, KEY, 1000)

    pub = served_remote.load_version(shared_db, KEY, m.version)
    assert pub is not None
    local = version_path(writer.root, m)
    assert [f.name for f in pub.files] == version_files(m) == [local.name]
    assert pub.files[0].size == pub.bytes == local.stat().st_size
    assert pub.files[0].sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
    assert pub.sha256 == served_remote.version_digest(pub.files)
    listed = s3_client(proxy.url).list_objects_v2(Bucket=bucket, Prefix="served/objects/")["Contents"]
    assert [o["Key"] for o in listed] == [f"served/objects/{pub.files[0].sha256}"]

    assert reader.current(KEY) == m  # known from the control database, nothing downloaded yet
    assert not table_dir(reader.root, KEY).exists()
    assert reader.serve(KEY) == m
    assert reader.downloads == 1
    assert count(version_path(reader.root, m)) == 1000
    assert reader.serve(KEY) == m
    assert reader.downloads == 1
    assert reader.keys() == [KEY]


def test_a_partition_run_elsewhere_starts_from_the_current_version_and_a_stale_writer_is_refused(
    tmp_path: Path, shared_db: str, proxy: S3Proxy, bucket: str
) -> None:
    a, b = (machine(tmp_path, n, shared_db, proxy, bucket) for n in ("a", "b"))
    first = publish_rows(a, KEY, 100)
    second = publish_rows(b, KEY, 50, tag="more", copy_previous=True)  # b never had the table: fetches the base
    assert second.previous_version == first.version
    assert second.row_count == 150
    assert count(version_path(b.root, second)) == 150

    with a.write_version(KEY, copy_previous=True) as pending:  # a starts from ``second`` …
        pending.con.execute("INSERT INTO data VALUES (999, 'x')")
        third = publish_rows(b, KEY, 1, tag="b", copy_previous=True)  # … while b publishes again
        with pytest.raises(PublishConflict):
            a.publish(pending, strategy="full", row_count=151, columns=[])
        stale = table_dir(a.root, KEY) / f"v-{pending.version}.duckdb"
    assert not stale.exists()
    assert a.current(KEY, fresh=True) == third
    assert count(a.local_path(third)) == 151


def test_a_corrupted_download_is_refused_and_fetched_again(tmp_path: Path, shared_db: str, proxy: S3Proxy, bucket: str) -> None:
    writer, reader = (machine(tmp_path, n, shared_db, proxy, bucket) for n in ("writer", "reader"))
    m = publish_rows(writer, KEY, 2000)
    proxy.corrupt_next = 1
    assert reader.serve(KEY) == m
    assert (proxy.corrupted, reader.refused, reader.downloads) == (1, 1, 1)
    path = version_path(reader.root, m)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(version_path(writer.root, m).read_bytes()).hexdigest()
    assert count(path) == 2000

    # Every download of the next version is corrupted: refused each time, never opened; the
    # replica keeps serving the version it has, and takes the new one once a download is good.
    newer = publish_rows(writer, KEY, 10, tag="new")
    proxy.corrupt_next = 100
    reader.refresh()
    assert reader.serve(KEY) == m
    assert reader.refused == 1 + reader.cfg.download_attempts
    assert not version_path(reader.root, newer).exists()
    assert not list(table_dir(reader.root, KEY).glob(".dl-*"))
    proxy.corrupt_next = 0
    assert reader.serve(KEY) == newer
    assert count(version_path(reader.root, newer)) == 10

    fresh = machine(tmp_path, "fresh", shared_db, proxy, bucket, SERVED_DOWNLOAD_ATTEMPTS="2")
    proxy.corrupt_next = 100
    with pytest.raises(ServedDataError, match="sha256"):  # nothing to fall back on
        fresh.serve(KEY)


def test_the_cache_stays_within_its_limit_and_keeps_superseded_versions_for_the_grace_period(
    tmp_path: Path, shared_db: str, proxy: S3Proxy, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served_storage, "RECENT_USE_S", 0.0)
    writer = machine(tmp_path, "writer", shared_db, proxy, bucket)
    keys = [f"demo.public.t{i}" for i in range(4)]
    sizes = [publish_rows(writer, k, 20_000, tag=k).bytes for k in keys]
    limit = int(max(sizes) * 2.5)
    reader = machine(tmp_path, "reader", shared_db, proxy, bucket, SERVED_CACHE_MAX_BYTES=str(limit))
    for _round in range(2):
        for k in keys:
            m = reader.serve(k)
            assert m is not None
            assert version_path(reader.root, m).exists()
            assert reader.cache_bytes() <= limit
    assert reader.downloads == 8  # two tables fit: every use of four in turn downloads again

    # A superseded version stays (within the limit) until its grace period is over.
    roomy = machine(tmp_path, "roomy", shared_db, proxy, bucket)
    old = roomy.serve(keys[0])
    new = publish_rows(writer, keys[0], 10, tag="v2")
    roomy.refresh()
    assert roomy.serve(keys[0]) == new
    assert old is not None
    roomy.evict()
    assert version_path(roomy.root, old).exists()
    later = dt.datetime.fromisoformat(new.published_at).timestamp() + roomy.grace_s + 1
    evicted = roomy.evict(now=later)
    assert evicted == {(keys[0], old.file)}
    assert not version_path(roomy.root, old).exists()
    assert version_path(roomy.root, new).exists()
    # A continuation pins the superseded version: still listed, it can be downloaded again.
    assert (roomy.version(keys[0], old.version), roomy.version(keys[0], new.version)) == (old, new)
    assert roomy.version(keys[0], "20000101T000000000000-0000") is None

    # A version a query holds is never evicted, whatever the limit.
    roomy.in_use = lambda: {(keys[0], new.file)}
    roomy.cfg = dataclasses.replace(roomy.cfg, cache_max_bytes=0)
    assert roomy.evict() == set()
    assert version_path(roomy.root, new).exists()


def test_kill_9_during_an_upload_leaves_the_previous_version_served(
    tmp_path: Path, shared_db: str, proxy: S3Proxy, bucket: str
) -> None:
    writer = machine(tmp_path, "writer", shared_db, proxy, bucket)
    before = publish_rows(writer, KEY, 500)
    env = {
        **os.environ,
        **objstore_env(writer.root.parent, shared_db, proxy.url, bucket),
        "PYTHONPATH": str(ROOT),
        **bytecode_cache_env(),
    }
    proxy.hold.set()
    child = processes.start(
        [sys.executable, "-m", "tests.objstore.objstore_writer", KEY, "600000"],
        env=env,
        cwd=ROOT,
        log_path=tmp_path / "writer.log",
    )
    try:
        assert proxy.held.wait(timeout=120), (tmp_path / "writer.log").read_text()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        processes.stop(child)
        proxy.release.set()
    assert child.returncode == -signal.SIGKILL
    uploads = s3_client(proxy.url).list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert len(uploads) == 1  # the upload had started: its first part was on the wire

    reader = machine(tmp_path, "reader", shared_db, proxy, bucket)
    assert writer.current(KEY, fresh=True) == before
    assert reader.serve(KEY) == before
    assert count(version_path(reader.root, before)) == 500
    orphans = sorted(p.name for p in table_dir(writer.root, KEY).glob("v-*.duckdb") if p.name != before.file)
    assert len(orphans) == 1  # the killed writer's finished file, never published

    after = publish_rows(writer, KEY, 7, tag="after")  # the next writer cleans up and publishes
    assert reader.current(KEY, fresh=True) == after
    assert sorted(p.name for p in table_dir(writer.root, KEY).glob("v-*.duckdb")) == sorted([before.file, after.file])

    # Housekeeping past the grace period: the abandoned upload is aborted, the superseded
    # version forgotten, and only the current version's object stays in the bucket.
    report = writer.purge(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    assert report["uploads_aborted"] >= 1
    assert report["versions_forgotten"] == 1
    client = s3_client(proxy.url)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    pub = served_remote.load_version(shared_db, KEY, after.version)
    assert pub is not None
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="served/").get("Contents", [])]
    assert keys == [f"served/objects/{pub.files[0].sha256}"]


def test_a_replica_keeps_serving_what_it_knows_while_the_control_database_is_away(
    tmp_path: Path, shared_db: str, proxy: S3Proxy, bucket: str
) -> None:
    writer, reader = (machine(tmp_path, n, shared_db, proxy, bucket) for n in ("writer", "reader"))
    m = publish_rows(writer, KEY, 300)
    assert reader.serve(KEY) == m
    reader.url = "sqlite:///" + str(tmp_path / "gone" / "no-such-dir" / "control.db")  # unreachable from now on
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "no-such-dir").write_text("a file where the database's folder should be")
    time.sleep(reader.cfg.poll_interval_s + 0.1)
    assert reader.serve(KEY) == m
    assert reader.keys() == [KEY]
    assert count(version_path(reader.root, m)) == 300
