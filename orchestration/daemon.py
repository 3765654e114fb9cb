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

Run: ``python -m orchestration.daemon run -w workspace.yaml`` (any ``dagster-daemon``
arguments). ``liveness-check`` and the other subcommands work as they do under
``dagster-daemon``.
"""

from __future__ import annotations

import sys

from shared.settings import Settings, SettingsError, get_settings

LOWEST_S, HIGHEST_S = 0.5, 300.0


def backfill_interval_s(settings: Settings) -> float:
    """The configured pass interval, refused outside ``LOWEST_S``..``HIGHEST_S`` with the setting's name."""
    value = settings.dagster.backfill_interval_s
    if not LOWEST_S <= value <= HIGHEST_S:
        raise SettingsError(f"setting DAGSTER_BACKFILL_INTERVAL_S={value} is outside {LOWEST_S}..{HIGHEST_S} seconds")
    return value


def main() -> None:
    from dagster._daemon import controller
    from dagster._daemon.cli import main as dagster_daemon

    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = backfill_interval_s(get_settings())  # type: ignore[assignment]  # read as the loop starts
    sys.argv[0] = "dagster-daemon"
    dagster_daemon()


if __name__ == "__main__":
    main()
