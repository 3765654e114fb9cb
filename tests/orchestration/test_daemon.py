"""The daemon entry point: Dagster's own daemon, its backfill loop passing every ``DAGSTER_BACKFILL_INTERVAL_S``.

The e2e tests run it as the platform's daemon (every backfill there goes through it); these
check the setting's bounds and the one Dagster behaviour it relies on: the backfill loop
reads ``DEFAULT_DAEMON_INTERVAL_SECONDS`` when it starts (not when Dagster is imported), so
a Dagster upgrade that stops doing so fails here rather than silently bringing back the
30 s pass.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from dagster._core.errors import DagsterAssetBackfillDataLoadError
from dagster._core.execution import asset_backfill
from dagster._daemon import backfill, controller

from orchestration import daemon
from shared.settings import Settings, SettingsError


def test_the_setting_defaults_to_two_seconds_and_refuses_values_out_of_bounds() -> None:
    assert daemon.backfill_interval_s(Settings.from_env({})) == 2.0
    assert daemon.backfill_interval_s(Settings.from_env({"DAGSTER_BACKFILL_INTERVAL_S": "0.5"})) == 0.5
    for bad in ("0", "-1", "301"):
        with pytest.raises(SettingsError, match="DAGSTER_BACKFILL_INTERVAL_S"):
            daemon.backfill_interval_s(Settings.from_env({"DAGSTER_BACKFILL_INTERVAL_S": bad}))


def test_main_sets_the_interval_then_runs_dagsters_own_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def dagster_daemon() -> None:
        seen["interval"] = controller.DEFAULT_DAEMON_INTERVAL_SECONDS
        seen["argv"] = list(sys.argv)

    monkeypatch.setattr("dagster._daemon.cli.main", dagster_daemon)
    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", controller.DEFAULT_DAEMON_INTERVAL_SECONDS)
    original = asset_backfill._check_validity_of_asset_backfill_data_and_should_process_backfill
    monkeypatch.setattr(asset_backfill, "_check_validity_of_asset_backfill_data_and_should_process_backfill", original)
    monkeypatch.setattr(daemon, "get_settings", lambda: Settings.from_env({"DAGSTER_BACKFILL_INTERVAL_S": "3"}))
    monkeypatch.setattr(sys, "argv", ["daemon.py", "run", "-w", "workspace.yaml"])
    daemon.main()
    assert seen == {"interval": 3.0, "argv": ["dagster-daemon", "run", "-w", "workspace.yaml"]}
    installed = asset_backfill._check_validity_of_asset_backfill_data_and_should_process_backfill
    assert installed is not original
    assert installed.__wrapped__ is original  # type: ignore[attr-defined]  # Dagster's own check, wrapped


class _Backfills:
    """What the check's workspace context offers: the instance, and its one backfill."""

    def __init__(self, age_s: float) -> None:
        self.instance = self
        self.timestamp = time.time() - age_s

    def get_backfill(self, backfill_id: str) -> Any:
        return type("Backfill", (), {"backfill_timestamp": self.timestamp})()


def _missing_asset(*_: Any) -> bool:
    raise DagsterAssetBackfillDataLoadError("Asset AssetKey(['demo', 't']) existed at storage-time, but no longer does.")


def test_a_young_backfill_whose_asset_the_daemon_does_not_see_yet_waits_a_pass() -> None:
    check = daemon.patient(_missing_asset)
    assert check(_Backfills(age_s=5), "b1", None, None, None, None) is False  # skipped: tried again next pass
    with pytest.raises(DagsterAssetBackfillDataLoadError):  # past the grace it fails, as Dagster would
        check(_Backfills(age_s=daemon.NEW_ASSET_GRACE_S + 1), "b1", None, None, None, None)
    assert daemon.patient(lambda *_: True)(_Backfills(age_s=5), "b1") is True  # valid targets: Dagster's answer
    assert daemon.patient(lambda *_: False)(_Backfills(age_s=5), "b1") is False


def test_dagster_still_checks_backfill_targets_through_the_wrapped_name() -> None:
    """The backfill iteration calls the check by its module-global name, so the wrapper installed
    on the module is the one it calls (an upgrade that renames or inlines it fails here)."""
    import inspect

    source = inspect.getsource(asset_backfill.execute_asset_backfill_iteration)
    assert "_check_validity_of_asset_backfill_data_and_should_process_backfill(" in source


def test_dagsters_backfill_loop_sleeps_the_interval_set_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    passes = 0

    def one_pass(*_: Any, **__: Any) -> Any:
        nonlocal passes
        passes += 1
        yield from ()

    waits: list[float] = []

    class Shutdown(threading.Event):
        """Records each sleep the loop asks for."""

        def wait(self, timeout: float | None = None) -> bool:
            waits.append(float(timeout or 0))
            return False

    monkeypatch.setattr(backfill, "execute_backfill_iteration", one_pass)
    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", 3)  # after Dagster was imported
    loop = backfill.execute_backfill_iteration_loop(None, None, Shutdown())  # type: ignore[arg-type]
    marks = [next(loop) for _ in range(6)]  # two passes: start, end, and the yield after each sleep
    assert passes == 2
    assert marks.count(None) == 2
    assert len(waits) == 2
    assert all(2.5 < w <= 3 for w in waits), waits  # the interval less the pass's own time
