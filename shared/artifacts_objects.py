"""What every artifact backend shares: the chunk size, the key rule, the stored object, the error.

Why a module of its own: the local backend (``artifacts_store.py``) and the S3 backend
(``artifacts_s3.py``) both need these, and ``open_store`` picks the backend, so neither
backend module imports the other's home (no import cycle).
"""

from __future__ import annotations

import dataclasses
import re

CHUNK = 1 << 20
KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class StorageError(RuntimeError):
    """The artifact backend failed or holds no such object."""


def check_key(key: str) -> str:
    """A storage key is a lower-case SHA-256 hex digest, nothing else."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise StorageError("invalid storage key")
    return key


@dataclasses.dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int
