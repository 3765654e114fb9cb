"""What a query answers, and the output modes it can answer in.

One guarded execution serves every caller; only the way its rows come back differs:
``Tuples`` (Python rows, the default), ``JsonRows`` (pre-encoded JSON, size-checked batch by
batch) and ``ArrowBatches`` (Arrow record batches handed to a consumer while the cursor is
held, for result files and samples). Each mode reads a cursor on which the engine has
armed the time limit; none of them runs SQL the engine did not choose.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from serving.lib import formats
from shared.served import Manifest, synced_at

# JSON rows are fetched and encoded in batches of about BATCH_BYTES (between 1 and MAX_BATCH_ROWS rows), so
# one batch holds the GIL for about a millisecond and the size check comes early. The first batch is one
# row, whose size sets the next: 16 rows of 1 MB strings held the GIL for 40 ms (duckdb 2.0.1, 2 cores).
FIRST_BATCH_ROWS, MAX_BATCH_ROWS, BATCH_BYTES = 1, 4096, 256 << 10
STREAM_BATCH_ROWS = 2048  # Arrow batches for samples: one DuckDB vector, so a batch never holds more
# Result files: 16 vectors per batch. Per-batch costs (the Python loop, a write call, the size
# check) then stop showing in an export's time; a batch of 1 KB rows is still only 32 MB.
FILE_BATCH_ROWS = 32_768
# A result file's cap is its size (QUERY_MAX_RESULT_BYTES), not its rows: without a row limit
# asked for, a file may hold this many rows (the job record's row count is a 32-bit integer).
FILE_MAX_ROWS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class TableRead:
    """A table a result was read from: its served version and when that version was synced."""

    table: str
    version: str  # "live" for a query run in Snowflake
    synced_at: str  # for a live read: when Snowflake answered
    source_query_id: str | None = None  # Snowflake's query id of a live read

    def as_dict(self) -> dict[str, str]:
        out = {"table": self.table, "version": self.version, "synced_at": self.synced_at}
        if self.source_query_id:
            out["source_query_id"] = self.source_query_id
        return out


@dataclasses.dataclass
class QueryResult:
    columns: list[dict[str, str]]
    rows: list[tuple[Any, ...]]
    row_count: int
    truncated: bool
    tables: list[TableRead]
    duration_ms: float
    sql_hash: str
    consumed: Any = None  # what an ``ArrowBatches`` consumer returned (its ``rows`` are then empty)


class ArrowStream:
    """Record batches of a running query, cut at ``max_rows``; ``truncated`` is known once exhausted."""

    def __init__(self, reader: pa.RecordBatchReader, *, columns: list[dict[str, str]], tables: list[TableRead],
                 max_rows: int, run: Any) -> None:
        self.reader, self.schema, self.columns, self.tables = reader, reader.schema, columns, tables
        self.max_rows, self._run = max_rows, run
        self.row_count = 0
        self.truncated = False

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = self.reader.read_next_batch()
            except StopIteration:
                self._run.reusable = True
                return
            except (OSError, pa.ArrowException, duckdb.Error) as e:
                raise self._run.translate(e) from e
            if batch.num_rows == 0:
                continue
            room = self.max_rows - self.row_count
            if batch.num_rows > room:
                self.truncated = True
                if room > 0:
                    self.row_count += room
                    yield batch.slice(0, room)
                return
            self.row_count += batch.num_rows
            yield batch


@dataclasses.dataclass(frozen=True)
class Read:
    """What an output mode read from the cursor."""

    columns: list[dict[str, str]]
    rows: Any
    row_count: int
    truncated: bool
    consumed: Any = None


def _execute(cur: Any, sql: str, params: Any) -> None:
    cur.execute(sql, params) if params else cur.execute(sql)


@dataclasses.dataclass(frozen=True)
class Tuples:
    """Rows as Python tuples, at most ``rows_cap`` (``max_rows + 1`` fetched to know about truncation)."""

    def read(self, cur: Any, run: Any, *, sql: str, params: Any, rows_cap: int, tables: list[TableRead]) -> Read:
        _execute(cur, sql, params)
        columns = [{"name": d[0], "type": str(d[1])} for d in cur.description or []]
        rows = cur.fetchmany(rows_cap + 1) if rows_cap else []
        if not rows_cap and cur.fetchone() is not None:
            rows = [()]
        run.reusable = 0 < len(rows) <= rows_cap or (rows_cap > 0 and not rows)
        truncated = len(rows) > rows_cap
        if truncated:
            del rows[rows_cap:]
        return Read(columns, rows, len(rows), truncated)


@dataclasses.dataclass(frozen=True)
class JsonRows:
    """Rows as one pre-encoded JSON array (``formats.EncodedArray``), cut at the first row past ``max_bytes``.

    Its ``consumed`` is what cut the rows: ``"row_cap"``, ``"byte_cap"`` or None."""

    max_bytes: int

    def read(self, cur: Any, run: Any, *, sql: str, params: Any, rows_cap: int, tables: list[TableRead]) -> Read:
        _execute(cur, sql, params)
        columns = [{"name": d[0], "type": str(d[1])} for d in cur.description or []]
        rows, count, cut_by, run.reusable = fetch_json(cur, rows_cap, self.max_bytes)
        return Read(columns, rows, count, cut_by is not None, cut_by)


@dataclasses.dataclass(frozen=True)
class ArrowBatches:
    """Arrow record batches handed to ``consume`` (an ``ArrowStream``) while the query runs; its return
    value comes back as ``QueryResult.consumed``."""

    consume: Callable[[ArrowStream], Any]
    batch_rows: int = STREAM_BATCH_ROWS
    capped_by_bytes: bool = False  # a result file: the row cap is the caller's, not QUERY_MAX_ROWS
    parquet: bool = False  # a Parquet file: batches of one row group where the row is narrow enough

    def read(self, cur: Any, run: Any, *, sql: str, params: Any, rows_cap: int, tables: list[TableRead]) -> Read:
        rel = cur.sql(sql, params=params) if params else cur.sql(sql)
        columns = [{"name": n, "type": str(t)} for n, t in zip(rel.columns, rel.types, strict=True)]
        rows = formats.parquet_batch_rows(rel.types, self.batch_rows) if self.parquet else self.batch_rows
        stream = ArrowStream(rel.to_arrow_reader(rows), columns=columns, tables=tables, max_rows=rows_cap, run=run)
        consumed = self.consume(stream)
        return Read(columns, [], stream.row_count, stream.truncated, consumed)


Output = Tuples | JsonRows | ArrowBatches
TUPLES = Tuples()


def fetch_json(cur: Any, rows_cap: int, max_bytes: int) -> tuple[formats.EncodedArray, int, str | None, bool]:
    """(rows as one JSON array in its encoded batches, row count, what cut the rows or None, result read
    to the end).

    Rows are fetched in growing batches, each encoded as soon as it is fetched and counted:
    past ``rows_cap`` rows the answer is cut by ``"row_cap"``; at the first row that would
    take the array past ``max_bytes`` it is cut by ``"byte_cap"`` (the rows before it are
    kept). The Python rows of one batch are all that is ever held besides the encoded bytes.
    """
    parts: list[formats.Piece] = []
    size, count, batch = 2, 0, FIRST_BATCH_ROWS
    exact = formats.exact_columns(d[1] for d in cur.description or [])
    cut_by: str | None = None
    finished = False
    while True:
        want = min(batch, rows_cap + 1 - count)
        got = formats.exact_rows(cur.fetchmany(want), exact)
        if count + len(got) > rows_cap:
            cut_by = "row_cap"
            del got[rows_cap - count:]
        elif len(got) < want:
            finished = True
        if got:
            enc: formats.Piece = memoryview(formats.encode_json(got))[1:-1]  # without its brackets, not copied
            grown = size + len(enc) + (1 if parts else 0)
            if grown > max_bytes:
                enc, kept = _rows_within(got, max_bytes - size - (1 if parts else 0))
                cut_by, finished = "byte_cap", False
                if kept:
                    size += len(enc) + (1 if parts else 0)
                    parts.append(enc)
                    count += kept
                break
            size = grown
            parts.append(enc)
            count += len(got)
            batch = max(1, min(MAX_BATCH_ROWS, BATCH_BYTES * len(got) // max(1, len(enc))))
        if cut_by or finished:
            break
    return formats.EncodedArray(parts), count, cut_by, finished


def _rows_within(rows: list[Any], room: int) -> tuple[bytes, int]:
    """The leading rows of ``rows`` whose encoding (comma-joined) fits in ``room`` bytes, and how many."""
    out: list[bytes] = []
    used = 0
    for row in rows:
        enc = formats.encode_json(row)
        if used + len(enc) + (1 if out else 0) > room:
            break
        used += len(enc) + (1 if out else 0)
        out.append(enc)
    return b",".join(out), len(out)


def table_reads(manifests: Iterable[Manifest]) -> list[TableRead]:
    return [TableRead(m.table_key, m.version, synced_at(m).isoformat()) for m in manifests]
