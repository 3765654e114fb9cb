"""The tools a user would pick instead of this platform, each in its own virtual environment.

Why separate environments: the peers' dependencies (dlt, Datasette, their SQLAlchemy and
connector versions) must never touch the product's lock file. ``python_for(name)`` creates
the environment on first use with ``uv`` (under ``BENCH_PEERS_HOME``, default
``~/.cache/agents-data/bench-peers``), installs the pinned requirements below, and returns
its interpreter. The peers' scripts live in ``bench/peers/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Pinned so a report can be reproduced; the connector matches the product's (the stand-in
# speaks its protocol; 5.x's new core driver does not log in to it).
PEERS: dict[str, list[str]] = {
    "dlt": ["dlt[duckdb,sql_database]==1.31.0", "snowflake-sqlalchemy==1.11.1", "sqlalchemy>=2.0,<2.1",
            "snowflake-connector-python==4.8.1", "pyarrow>=18"],
    "datasette": ["datasette==0.65.5"],
}
SCRIPTS = Path(__file__).resolve().parent / "peers"


def home() -> Path:
    return Path(os.environ.get("BENCH_PEERS_HOME") or Path.home() / ".cache" / "agents-data" / "bench-peers")


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]  # the README installs uv with pip


def python_for(name: str) -> Path:
    """The interpreter of peer ``name``'s environment, created and installed if missing."""
    venv = home() / name
    python = venv / "bin" / "python"
    marker = venv / ".requirements"
    wanted = "\n".join(PEERS[name])
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*_uv(), "venv", "-q", "--clear", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([*_uv(), "pip", "install", "-q", "--python", str(python), *PEERS[name]], check=True)
    marker.write_text(wanted)
    return python


def version_of(name: str, package: str) -> str:
    out = subprocess.run([str(python_for(name)), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()
