"""A fork server for the materialization chaos test: warm Dagster once, fork writers to be killed.

Why fork: importing Dagster costs seconds; a forked warm process starts writing at once,
so fifty ``kill -9`` are cheap. Why hooks here, in the test's own child: the kill can
land at a named point of a materialization (copy, extraction, merge, checks, publish,
and inside publish the file rename and the CURRENT write) with no switch in the product.

Protocol on stdin/stdout, one line each: ``fork <point> <mode> <marker>`` prints the
child's PID. The child materializes every table in a loop until killed. When it first
reaches ``point`` it appends the point's name to ``marker``; with mode ``stop`` it then
waits there to be killed (before the step runs), with ``during`` it carries on (the kill
lands a moment later, inside or after the step). Point ``none`` marks nothing: the test
kills after a random delay. ``reap <pid>`` waits for a child; ``exit`` ends. The first
line printed is ``READY``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import dagster as dg

from orchestration.assets import build_table_asset
from orchestration.resources import ServedDataResource, snowflake_resource
from orchestration.sync import load, verdicts
from shared import served
from shared.registry import RegisteredTable
from shared.settings import Settings

_target: dict[str, Any] = {"point": "none", "mode": "during", "marker": "", "hit": False}


def _reached(point: str) -> None:
    if _target["hit"] or _target["point"] != point:
        return
    _target["hit"] = True
    with open(_target["marker"], "a") as fh:
        fh.write(point + "\n")
    if _target["mode"] == "stop":
        time.sleep(3600)  # killed here


def _hook(point: str, fn: Callable[..., Any], when: Callable[..., bool] = lambda *a, **k: True) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            _reached(point)
        return fn(*args, **kwargs)

    return wrapper


def _install_hooks() -> None:
    served.copy_version_file = _hook("copy", served.copy_version_file)  # a reflink or a byte copy, whichever the disk does
    load.insert_batch = _hook("extract", load.insert_batch)
    load.merge_stage = _hook("merge", load.merge_stage)
    verdicts.evaluate = _hook("checks", verdicts.evaluate)  # looked up by verdicts.check
    served.publish = _hook("publish", served.publish)  # looked up by the served store (shared/served_storage.py)
    served.os.replace = _hook("publish.rename", os.replace, lambda *a, **_: str(a[1]).endswith(".duckdb"))  # type: ignore[attr-defined]
    served._write_atomic = _hook("publish.current", served._write_atomic, lambda *a, **_: a[0].name == served.CURRENT)


def _writers(cfg: dict[str, Any]) -> list[tuple[dg.AssetsDefinition, dict[str, Any], dict[str, str] | None]]:
    settings = Settings.from_env(cfg["env"])
    resources = {"snowflake": snowflake_resource(settings, env={}),
                 "served": ServedDataResource(home=settings.home, control_url=settings.control_url,
                                              slice_rows=cfg["slice_rows"])}
    out = []
    for raw, tags in cfg["tables"]:
        for field in ("partition_values", "primary_key"):
            raw[field] = tuple(raw[field])
        out.append((build_table_asset(table=RegisteredTable(**raw)), resources, tags))
    return out


def _loop(writers: list[tuple[dg.AssetsDefinition, dict[str, Any], dict[str, str] | None]]) -> None:
    while True:
        for asset, resources, tags in writers:
            dg.materialize([asset], resources=resources, tags=tags)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    writers = _writers(cfg)
    dg.materialize([writers[-1][0]], resources=writers[-1][1], tags=writers[-1][2])  # warm lazy imports
    print("READY", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "fork":
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _target.update(point=cmd[1], mode=cmd[2], marker=cmd[3])
                _install_hooks()
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
