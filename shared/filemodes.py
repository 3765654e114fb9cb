"""Owner-only files under the data home, whatever umask the process was started with.

Why: AGENTS_DATA_HOME holds the control database (audit SQL, token hashes), the served
DuckDB files, query results, artifacts, the signing secret and, by default, the Dagster
home. With a common umask of 0022 every one of them would be readable by any local
user. Files are created by many hands (DuckDB, SQLite, Dagster, pyarrow, our own code),
so the one rule that covers them all is the process umask: every entry point (the CLI,
the API app factory, the Dagster code location as it loads, and so every run worker)
calls :func:`restrict_process` first, and children inherit it. :func:`secure_tree`
repairs a home created before this rule (or by a process that skipped it) at start.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

OWNER_ONLY_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
_GROUP_OTHER = 0o077


def restrict_process() -> int:
    """Set this process's umask to owner-only (0700 folders, 0600 files); returns the old one."""
    return os.umask(OWNER_ONLY_UMASK)


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` with mode 0700 for every folder it creates, and 0700 for ``path`` itself.

    ``Path.mkdir(mode=)`` applies the mode to the last folder only and through the umask,
    so each missing parent is created here one by one, under an owner-only umask.
    """
    target = Path(path)
    old = os.umask(OWNER_ONLY_UMASK)
    try:
        missing = []
        current = target
        while not current.exists() and current != current.parent:
            missing.append(current)
            current = current.parent
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=DIR_MODE)
    finally:
        os.umask(old)
    with contextlib.suppress(PermissionError):
        os.chmod(target, DIR_MODE)
    return target


def secure_tree(root: str | os.PathLike[str]) -> int:
    """Remove group and other permission bits from ``root`` and everything under it that
    this user owns (symlinks are not followed); returns how many entries were changed.

    Owner bits are kept (an executable stays executable for its owner). Entries of other
    users, and entries that vanish meanwhile, are skipped: a start must not fail on them.
    """
    base = Path(root)
    if not base.exists():
        return 0
    uid = os.getuid()
    changed = 0

    def fix(path: str) -> None:
        nonlocal changed
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode) or st.st_uid != uid or not st.st_mode & _GROUP_OTHER:
            return
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~_GROUP_OTHER)
            changed += 1

    fix(str(base))
    for folder, dirs, files in os.walk(base, followlinks=False):
        for name in (*dirs, *files):
            fix(os.path.join(folder, name))
    return changed


def loose_entries(root: str | os.PathLike[str]) -> list[str]:
    """Entries under ``root`` (itself included) that grant any permission to group or others."""
    base = Path(root)
    found = [str(base)] if base.exists() and os.lstat(base).st_mode & _GROUP_OTHER else []
    for folder, dirs, files in os.walk(base, followlinks=False):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                if not stat.S_ISLNK(st.st_mode) and st.st_mode & _GROUP_OTHER:
                    found.append(f"{path} {stat.filemode(st.st_mode)}")
    return found


def secure_home(home: str | os.PathLike[str]) -> Path:
    """The start-up step of every entry point: owner-only umask, the home as a 0700 folder,
    and existing entries repaired."""
    restrict_process()
    path = private_dir(home)
    secure_tree(path)
    return path
