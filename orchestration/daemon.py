"""The Dagster daemon (``dagster-daemon run``), with its backfill loop waking every ``DAGSTER_BACKFILL_INTERVAL_S``.

Why: Dagster's backfill daemon sleeps 30 s between passes, and ``dagster.yaml`` has no
setting for it. Every backfill (an agent's refresh of a partitioned table, a sync of
partitions, a backfill started in the UI) waits up to one pass to have its runs launched
and up to one more to be marked finished once they are done: a refresh of one late day
took about a minute, nearly all of it sleeping. The loop reads Dagster's module constant
``DEFAULT_DAEMON_INTERVAL_SECONDS`` when it starts, so setting it before the daemon runs is
all this does; everything else is Dagster's own command line. The only other reader of
that constant is the asset daemon's default interval, which ``dagster.yaml`` pins
(``auto_materialize.minimum_interval_seconds``), so it is unchanged.

A pass costs one query of the run storage for backfills in progress; at the 2 s default
that is noise beside the run coordinator's own 1 s dequeue loop.

Why backfills get a grace (``NEW_ASSET_GRACE_S``): the daemon keeps its own copy of the code
location and sees a reload (a table just registered through the API) a moment after the
webserver does. Dagster fails an asset backfill at once when its asset is missing from that
copy ("existed at storage-time, but no longer does"), so a backfill started right after a
registration could fail for nothing. For a backfill younger than the grace, that check now
skips the pass instead (the next pass, with the daemon's copy caught up, runs it); an older
one fails as Dagster would. The grace is Dagster's own longest workspace refresh interval.

Run: ``python -m orchestration.daemon run -w workspace.yaml`` (any ``dagster-daemon``
arguments). ``liveness-check`` and the other subcommands work as they do under
``dagster-daemon``.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from shared.settings import Settings, SettingsError, get_settings

LOWEST_S, HIGHEST_S = 0.5, 300.0
NEW_ASSET_GRACE_S = 60.0  # Dagster's RELOAD_WORKSPACE_INTERVAL: the longest the daemon's copy of the code may lag

log = logging.getLogger(__name__)


def backfill_interval_s(settings: Settings) -> float:
    """The configured pass interval, refused outside ``LOWEST_S``..``HIGHEST_S`` with the setting's name."""
    value = settings.dagster.backfill_interval_s
    if not LOWEST_S <= value <= HIGHEST_S:
        raise SettingsError(f"setting DAGSTER_BACKFILL_INTERVAL_S={value} is outside {LOWEST_S}..{HIGHEST_S} seconds")
    return value


def patient(check: Callable[..., bool]) -> Callable[..., bool]:
    """Dagster's validity check of an asset backfill's targets, skipping the pass (False) instead of
    failing while the backfill is younger than ``NEW_ASSET_GRACE_S`` (see the module docstring)."""
    from dagster._core.errors import DagsterAssetBackfillDataLoadError

    @functools.wraps(check)
    def patient_check(workspace_context: Any, backfill_id: str, *args: Any, **kwargs: Any) -> bool:
        try:
            return check(workspace_context, backfill_id, *args, **kwargs)
        except DagsterAssetBackfillDataLoadError as e:
            backfill = workspace_context.instance.get_backfill(backfill_id)
            age = time.time() - backfill.backfill_timestamp if backfill is not None else NEW_ASSET_GRACE_S
            if age >= NEW_ASSET_GRACE_S:
                raise
            log.warning("backfill %s: its assets are not in the daemon's code yet (%s); trying again next pass",
                        backfill_id, e)
            return False

    return patient_check


def main() -> None:
    from dagster._core.execution import asset_backfill
    from dagster._daemon import controller
    from dagster._daemon.cli import main as dagster_daemon

    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = backfill_interval_s(get_settings())  # type: ignore[assignment]  # read as the loop starts
    name = "_check_validity_of_asset_backfill_data_and_should_process_backfill"
    setattr(asset_backfill, name, patient(getattr(asset_backfill, name)))  # called by its module-global name
    sys.argv[0] = "dagster-daemon"
    dagster_daemon()


if __name__ == "__main__":
    main()
