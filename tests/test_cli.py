"""The CLI's instance setup and first-start sync requests (the real ``agents-data up`` runs in
tests/e2e/test_readme_up.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shared import cli
from shared.registry import build_registration
from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def _settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path)})


def test_dagster_home_follows_the_storage_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    target = cli.prepare_dagster_home(settings) / "dagster.yaml"
    assert target.read_bytes() == (REPO / "dagster.yaml").read_bytes()
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://u@h/db")
    cli.prepare_dagster_home(settings)
    assert target.read_bytes() == (REPO / "dagster.postgres.yaml").read_bytes(), "setting DAGSTER_PG_URL later takes effect"
    monkeypatch.delenv("DAGSTER_PG_URL")
    cli.prepare_dagster_home(settings)
    assert target.read_bytes() == (REPO / "dagster.yaml").read_bytes()


def test_a_hand_edited_instance_file_is_kept_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path)
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    target = cli.prepare_dagster_home(settings) / "dagster.yaml"
    target.write_text(target.read_text() + "\n# tuned by ops\n")
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://u@h/db")
    cli.prepare_dagster_home(settings)
    assert target.read_text().endswith("# tuned by ops\n")
    assert "edited by hand" in capsys.readouterr().err


NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(("extra", "expected"), [
    ({}, {}),
    ({"partitioning": {"kind": "daily", "column": "ts", "start": "2026-11-01"}},
     {"partition_range": {"start": "2026-11-01", "end": "2026-11-29"}}),
    ({"partitioning": {"kind": "monthly", "column": "ts", "start": "2026-01-01"}},
     {"partition_range": {"start": "2026-01-01", "end": "2026-10-01"}}),
    ({"partitioning": {"kind": "static", "column": "region", "values": ["eu", "us"]}}, {"partitions": ["eu", "us"]}),
    ({"strategy": "snapshot"}, {"partitions": ["2026-11-30"]}),
])
def test_first_sync_requests_cover_the_whole_table(extra: dict, expected: dict) -> None:  # type: ignore[type-arg]
    reg = build_registration({"table_name": "t", "schema_name": "s", **extra}, default_database="d")
    if reg.strategy == "snapshot":
        import dataclasses

        reg = dataclasses.replace(reg, registered_at="2026-11-01")
    assert cli.first_sync_request(reg, NOW) == {"table_name": "T", "schema_name": "S", "database": "D", **expected}


def test_a_table_with_no_complete_partition_gets_no_request() -> None:
    reg = build_registration({"table_name": "t", "schema_name": "s",
                              "partitioning": {"kind": "daily", "column": "ts", "start": "2026-11-30"}},
                             default_database="d")
    assert cli.first_sync_request(reg, NOW) is None


def test_a_live_table_gets_no_first_sync() -> None:
    reg = build_registration({"table_name": "t", "schema_name": "s", "live": True}, default_database="d")
    assert cli.first_sync_request(reg, NOW) is None
