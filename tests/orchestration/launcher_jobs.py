"""Jobs the warm-launcher tests run in real forked run workers: one that writes a file, one that waits to be stopped."""


import os
import time
from pathlib import Path

import dagster as dg


@dg.op(config_schema={"path": str})
def write_pid(context: dg.OpExecutionContext) -> None:
    Path(context.op_config["path"]).write_text(str(os.getpid()))


@dg.op(config_schema={"path": str})
def wait_forever(context: dg.OpExecutionContext) -> None:
    Path(context.op_config["path"]).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # bounded: the test stops it long before
        time.sleep(0.05)


@dg.job(executor_def=dg.in_process_executor)
def writes_pid() -> None:
    write_pid()


@dg.job(executor_def=dg.in_process_executor)
def waits() -> None:
    wait_forever()
