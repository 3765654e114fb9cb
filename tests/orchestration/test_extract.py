"""Extraction is bounded by a slice: no query asks for more than about ``slice_rows`` rows, and only a few
Arrow batches are alive at once however large the table is."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from orchestration.sync import extract
from orchestration.sync.extract import Extraction, Slice, key_range_slices
from shared.snowflake import table_columns
from tests.orchestration.conftest import Source, connector

ROWS, SLICE = 30_000, 2_500


@pytest.mark.parametrize("workers", [1, 2])
def test_slices_bound_rows_and_batches_alive(source: Source, workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    name = source.table("BIG")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(18,0) NOT NULL, PAYLOAD VARCHAR)")
    source.sql(f"INSERT INTO {name} SELECT n, REPEAT('x', 100) "
               f"FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => {ROWS})))")
    table = source.register("BIG")
    connect = connector(source.port, source.database)
    with connect() as con:
        cols = table_columns(con, source.database, "S", "BIG")
        slices, total = key_range_slices(con, table, cols[0], base=Slice("all"), slice_rows=SLICE)
    assert total == ROWS
    assert len(slices) >= ROWS // SLICE

    alive: set[int] = set()
    peak = 0
    original = Extraction._fetch

    def tracked(self: Extraction, con: Any, piece: Slice) -> Iterator[Any]:
        for batch, last in original(self, con, piece):
            alive.add(id(batch))
            weakref.finalize(batch, alive.discard, id(batch))
            yield batch, last
            del batch

    monkeypatch.setattr(extract.Extraction, "_fetch", tracked)
    extraction = Extraction(connect, table, [c.name for c in cols], slices, workers=workers)
    seen = 0
    for _piece, batch in extraction:
        seen += batch.num_rows
        del batch
        peak = max(peak, len(alive))
    assert seen == ROWS
    assert max(s.rows for s in extraction.stats) <= SLICE * 1.2
    assert peak <= workers  # one permit per batch alive: being written, queued, or being fetched
    assert all(s.query_id for s in extraction.stats)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_slices_last_batch_arrives_with_its_cursor_closed(source: Source, workers: int) -> None:
    """A worker waiting for a permit holds no result: the cursor (with the text it received and the
    decoded buffer) is closed before the slice's last batch is handed over."""
    name = source.table("CLOSED")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(18,0) NOT NULL, PAYLOAD VARCHAR)")
    source.sql(f"INSERT INTO {name} SELECT n, REPEAT('x', 10) FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => 4000)))")
    table = source.register("CLOSED")
    plain = connector(source.port, source.database)
    cursors: dict[int, Any] = {}  # id of the batch -> the cursor that produced it

    @contextmanager
    def connect() -> Iterator[Any]:
        with plain() as con:
            real_cursor = con.cursor

            def cursor() -> Any:
                cur = real_cursor()
                fetch = cur.fetch_arrow_batches

                def batches() -> Iterator[Any]:
                    for batch in fetch():
                        cursors[id(batch)] = cur
                        yield batch

                cur.fetch_arrow_batches = batches
                return cur

            con.cursor = cursor
            yield con

    with plain() as con:
        cols = table_columns(con, source.database, "S", "CLOSED")
        slices, _ = key_range_slices(con, table, cols[0], base=Slice("all"), slice_rows=1000)
    seen = 0
    for _piece, batch in Extraction(connect, table, [c.name for c in cols], slices, workers=workers):
        assert cursors[id(batch)].is_closed(), "the slice's cursor is still open while its last batch is written"
        seen += batch.num_rows
        del batch
    assert seen == 4000
