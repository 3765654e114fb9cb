"""Starting a version from the current one: a reflink where the filesystem shares blocks, else a
byte copy flushed in the background; either way a file of its own. Publishing reports its stages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared import served
from shared.served import Column, copy_version_file, publish, read_current, version_path, write_version

KEY = "db.s.t"


def _publish_rows(root: Path, *, copy_previous: bool, rows: int) -> served.PendingVersion:
    with write_version(root, KEY, copy_previous=copy_previous) as pending:
        if not copy_previous:
            pending.con.execute("CREATE TABLE data (id BIGINT)")
        pending.con.execute(f"INSERT INTO data SELECT range FROM range({rows})")
        publish(root, pending, strategy="full", row_count=0, columns=[Column("id", "BIGINT")])
    return pending


def test_a_copied_version_is_its_own_file_whichever_way_it_was_made(tmp_path: Path) -> None:
    base, copy = tmp_path / "base.bin", tmp_path / "copy.bin"
    content = os.urandom(1 << 16) * 4
    base.write_bytes(content)
    mode = copy_version_file(base, copy)
    assert mode in ("clone", "copy")
    assert copy.read_bytes() == content
    with open(copy, "r+b") as fh:  # the writer changes its file, never the one readers hold
        fh.write(b"\0" * 16)
    assert base.read_bytes() == content


def test_without_reflink_the_bytes_are_copied_and_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[Path] = []
    monkeypatch.setattr(served, "_clone", lambda src, dst: False)
    monkeypatch.setattr(served, "_start_writeback", flushed.append)
    base, copy = tmp_path / "base.bin", tmp_path / "copy.bin"
    base.write_bytes(b"abc" * 1000)
    assert copy_version_file(base, copy) == "copy"
    assert copy.read_bytes() == b"abc" * 1000
    assert flushed == [copy]


def test_a_reflinked_version_is_not_copied_byte_by_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def clone(src: Path, dst: Path) -> bool:
        dst.write_bytes(src.read_bytes())
        return True

    def no_copy(*a: object, **k: object) -> None:
        raise AssertionError("a reflinked version must not be copied again")

    monkeypatch.setattr(served, "_clone", clone)
    monkeypatch.setattr(served.shutil, "copyfile", no_copy)
    monkeypatch.setattr(served, "_start_writeback", no_copy)
    _publish_rows(tmp_path, copy_previous=False, rows=3)
    pending = _publish_rows(tmp_path, copy_previous=True, rows=2)
    assert pending.copied == "clone"
    manifest = read_current(tmp_path, KEY)
    assert manifest is not None
    import duckdb

    with duckdb.connect(str(version_path(tmp_path, manifest)), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM data").fetchone() == (5,)


def test_the_background_flush_of_a_removed_file_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "gone.bin"
    served._start_writeback(path)  # a failed run removed its file before the flush started
    assert not path.exists()


def test_publish_reports_its_checkpoint_and_fsync_and_a_copy_says_how_it_was_made(tmp_path: Path) -> None:
    first = _publish_rows(tmp_path, copy_previous=False, rows=3)
    assert first.copied == ""
    assert set(first.timings) == {"checkpoint_s", "fsync_s"}
    second = _publish_rows(tmp_path, copy_previous=True, rows=2)
    assert second.copied in ("clone", "copy")
    assert all(v >= 0 for v in second.timings.values())
    manifest = read_current(tmp_path, KEY)
    assert manifest is not None
    assert manifest.previous_version == first.version
