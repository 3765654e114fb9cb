"""A writer process for the kill -9 test: publishes one version of a table with ``SERVED_STORAGE=s3``.

Usage: ``python -m tests.objstore.objstore_writer KEY ROWS`` with the settings in the environment.
"""

from __future__ import annotations

import sys

from shared.served_storage import open_store
from shared.settings import Settings
from tests.objstore.objstore_support import publish_rows

if __name__ == "__main__":
    manifest = publish_rows(open_store(Settings.from_env()), sys.argv[1], int(sys.argv[2]), tag="killed")
    print(manifest.version, flush=True)
