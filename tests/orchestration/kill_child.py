"""A fork server for the crash test: import Dagster and the code once, then fork writers to be killed.

Why: importing Dagster and dagster-snowflake costs seconds; forking a warm process makes
ten kill -9s at random points cheap. Protocol on stdin/stdout, one line each:
``fork`` → prints the child's PID (the child materializes both tables in a loop until
killed); ``reap <pid>`` → waits for it; ``exit``. The first line printed is ``READY``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import dagster as dg

from orchestration.assets import build_table_asset
from orchestration.resources import ServedDataResource, snowflake_resource
from shared.registry import RegisteredTable
from shared.settings import Settings


def _writers(cfg: dict) -> list[tuple[dg.AssetsDefinition, dict[str, Any], dict[str, str] | None]]:
    settings = Settings.from_env(cfg["env"])
    resources = {"snowflake": snowflake_resource(settings, env={}),
                 "served": ServedDataResource(home=settings.home, control_url=settings.control_url, slice_rows=cfg["slice_rows"])}
    tags = {"dagster/asset_partition_range_start": cfg["range"][0], "dagster/asset_partition_range_end": cfg["range"][1]}
    return [(build_table_asset(table=RegisteredTable(**cfg["full"])), resources, None),
            (build_table_asset(table=RegisteredTable(**cfg["part"])), resources, tags)]


def _loop(writers: list[tuple[dg.AssetsDefinition, dict[str, Any], dict[str, str] | None]]) -> None:
    while True:
        for asset, resources, tags in writers:
            dg.materialize([asset], resources=resources, tags=tags)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    for key in ("full", "part"):
        for field in ("partition_values", "primary_key"):
            cfg[key][field] = tuple(cfg[key][field])
    writers = _writers(cfg)
    # Warm Dagster's lazy imports with one real run so a forked writer starts writing at once.
    _loop_once = writers[1]
    dg.materialize([_loop_once[0]], resources=_loop_once[1], tags=_loop_once[2])
    print("READY", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "fork":
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                log = os.open(cfg["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(log, 1)
                os.dup2(log, 2)
                try:
                    _loop(writers)
                finally:
                    os._exit(1)
            print(pid, flush=True)
        elif cmd[0] == "reap":
            os.waitpid(int(cmd[1]), 0)
            print("REAPED", flush=True)
        else:
            return


if __name__ == "__main__":
    main()
