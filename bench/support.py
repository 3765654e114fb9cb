"""What every benchmark here needs: a table published as served data, and progress on stderr.

Why one module: each benchmark publishes its own synthetic table the way orchestration
does (``shared/served.py``), and the steps must stay the same for their figures to compare.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def publish_select(served: Path, key: str, select_sql: str, rows: int) -> Path:
    """Publish ``CREATE TABLE data AS <select_sql>`` as the served version of ``key``; returns its DuckDB file."""
    from shared.served import Column, publish, version_path, write_version

    with write_version(served, key, copy_previous=False) as pending:
        pending.con.execute(f"CREATE TABLE data AS {select_sql}")
        cols = pending.con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_name = 'data' ORDER BY ordinal_position").fetchall()
        manifest = publish(served, pending, strategy="full", row_count=rows,
                           columns=[Column(name=c, type=t) for c, t in cols])
    return version_path(served, manifest)
