"""Owner-only modes under the data home, whatever the umask (the whole platform under umask 0022
is checked in tests/e2e/test_perimeter.py)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import cli
from shared.filemodes import loose_entries, private_dir, restrict_process, secure_home, secure_tree
from shared.settings import get_settings


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_private_dir_makes_every_missing_folder_0700(tmp_path: Path, umask_022: None) -> None:
    target = private_dir(tmp_path / "a" / "b" / "c")
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert _mode(folder) == 0o700, folder
    assert os.umask(0o022) == 0o022, "the process umask is left as it was"


def test_secure_tree_repairs_an_old_home_and_keeps_owner_bits(tmp_path: Path, umask_022: None) -> None:
    home = tmp_path / "home"
    (home / "served" / "t").mkdir(parents=True)
    (home / "served" / "t" / "v-1.duckdb").write_bytes(b"x")
    tool = home / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    (home / "link").symlink_to(outside)
    assert len(loose_entries(home)) >= 4
    secure_tree(home)
    assert loose_entries(home) == []
    assert _mode(home / "served") == 0o700
    assert _mode(home / "served" / "t" / "v-1.duckdb") == 0o600
    assert _mode(tool) == 0o700
    assert _mode(outside) == 0o644, "a symlink's target outside the home is not touched"


def test_secure_home_restricts_the_umask_for_everything_made_afterwards(tmp_path: Path, umask_022: None) -> None:
    home = secure_home(tmp_path / "home")
    (home / "later.db").write_bytes(b"x")
    (home / "later").mkdir()
    assert _mode(home) == 0o700
    assert _mode(home / "later.db") == 0o600
    assert _mode(home / "later") == 0o700
    assert restrict_process() == 0o077


def test_cli_entry_point_makes_an_owner_only_home(tmp_path: Path, umask_022: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "fresh"
    monkeypatch.setenv("AGENTS_DATA_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert cli.main(["migrate"]) == 0
    finally:
        get_settings.cache_clear()
    assert (home / "control.db").exists()
    assert loose_entries(home) == []


def test_the_api_app_factory_restricts_the_umask(tmp_path: Path, umask_022: None) -> None:
    from serving.app import create_app
    from shared.settings import Settings

    create_app(Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path), "JWT_SECRET": "s" * 40}))
    assert os.umask(0o022) == 0o077
