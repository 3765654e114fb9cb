"""Quoted Snowflake names through every strategy with real materializations on the stand-in.

A table and columns Snowflake only has quoted (space, mixed and lower case, reserved words,
unicode, ``$``) are read by their exact names, served under the key's encoded folder and
asset key, and equal the source.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.sensors import evaluate_source_changes
from shared import partitions as sp
from shared.served import table_dir
from shared.settings import Settings
from tests.orchestration.conftest import Source, current, failure_message, materialize, rows

TABLE = "Order Lines"
COLS = ["Line Id", "select", "group", "Order", "MixedCase", "lower", "Café$", "Day"]


def _create(source: Source, table: str = TABLE) -> None:
    ddl = ", ".join(f'"{c}" {"DATE" if c == "Day" else "NUMBER(10,0)"}' for c in COLS)
    source.sql(f'CREATE TABLE {source.database}.S."{table}" ({ddl})')
    values = ", ".join(f"({i}, {i % 2}, {i % 3}, {i * 10}, 1, 2, 3, '2025-01-0{1 + i % 3}')" for i in range(1, 10))
    source.sql(f'INSERT INTO {source.database}.S."{table}" VALUES {values}')


def _source(source: Source) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in COLS)
    return [tuple(r) for r in source.sql(f'SELECT {cols} FROM {source.database}.S."{TABLE}" ORDER BY 1')]


def _served(settings: Settings, table: Any) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in COLS)
    return rows(settings, table, f"SELECT {cols} FROM data ORDER BY 1")


@pytest.mark.parametrize("raw", [
    {},
    {"strategy": "incremental", "incremental_key": '"Order"', "primary_key": ['"Line Id"']},
    {"partitioning": {"kind": "daily", "column": '"Day"', "start": "2025-01-01"}, "primary_key": '"Line Id"'},
    {"partitioning": {"kind": "static", "column": '"select"', "values": ["0", "1"]}},
    {"strategy": "snapshot"},
], ids=["full", "incremental", "daily", "static", "snapshot"])
def test_quoted_names_sync_under_every_strategy(source: Source, sync_settings: Settings, raw: dict[str, Any]) -> None:
    _create(source)
    table = source.register(f'"{TABLE}"', **raw)
    assert table.table == TABLE
    assert table.asset_key_path[2] == "0_order_32__lines"
    if table.strategy == "snapshot":
        keys = [sp.latest_key(table)]
    elif table.partition_kind == "daily":
        keys = ["2025-01-01", "2025-01-02", "2025-01-03"]
    elif table.partition_kind == "static":
        keys = ["0", "1"]
    else:
        keys = [None]  # type: ignore[list-item]
    for key in keys:
        result = materialize(table, sync_settings, partition_key=key)
        assert result.success, failure_message(result)
    assert _served(sync_settings, table) == _source(source)
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert table_dir(sync_settings.served_path, table.key).name == "0_order_32__lines"
    assert [c.name for c in manifest.columns if c.name in COLS] == COLS


def test_the_source_change_sensor_tells_names_differing_in_case_apart(source: Source) -> None:
    import datetime as dt

    lower = source.register('"lower_t"')
    upper = source.register("LOWER_T")
    assert lower.key != upper.key
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    sigs = {(lower.database, lower.schema, "lower_t"): "a|1", (upper.database, upper.schema, "LOWER_T"): "b|1"}
    first = evaluate_source_changes([lower, upper], None, sigs, now=now)
    sigs[(lower.database, lower.schema, "lower_t")] = "a|2"
    second = evaluate_source_changes([lower, upper], first.cursor, sigs, now=now)
    assert [r.asset_selection[0].path[-1] for r in second.run_requests or []] == ["0lower__t"]
