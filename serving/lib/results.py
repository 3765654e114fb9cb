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
import msgspec
import pyarrow as pa

from serving.lib import formats
from shared.served import Manifest

# JSON rows are fetched and encoded in batches of about BATCH_BYTES (between 1 and MAX_BATCH_ROWS rows), so
# one batch holds the GIL for about a millisecond and the size check comes early.
FIRST_BATCH_ROWS, MAX_BATCH_ROWS, BATCH_BYTES = 16, 4096, 256 << 10
STREAM_BATCH_ROWS = 2048  # Arrow batches of result files: one DuckDB vector, so a batch never holds more


@dataclasses.dataclass(frozen=True)
class TableRead:
    """A table a result was read from: its served version and when that version was synced."""

    table: str
    version: str
    synced_at: str

    def as_dict(self) -> dict[str, str]:
        return {"table": self.table, "version": self.version, "synced_at": self.synced_at}


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
    """Rows as one pre-encoded JSON array (``msgspec.Raw``), refused (413) at the first batch past ``max_bytes``."""

    max_bytes: int

    def read(self, cur: Any, run: Any, *, sql: str, params: Any, rows_cap: int, tables: list[TableRead]) -> Read:
        _execute(cur, sql, params)
        columns = [{"name": d[0], "type": str(d[1])} for d in cur.description or []]
        rows, count, truncated, run.reusable = fetch_json(cur, rows_cap, self.max_bytes)
        return Read(columns, rows, count, truncated)


@dataclasses.dataclass(frozen=True)
class ArrowBatches:
    """Arrow record batches handed to ``consume`` (an ``ArrowStream``) while the query runs; its return
    value comes back as ``QueryResult.consumed``."""

    consume: Callable[[ArrowStream], Any]
    batch_rows: int = STREAM_BATCH_ROWS

    def read(self, cur: Any, run: Any, *, sql: str, params: Any, rows_cap: int, tables: list[TableRead]) -> Read:
        rel = cur.sql(sql, params=params) if params else cur.sql(sql)
        columns = [{"name": n, "type": str(t)} for n, t in zip(rel.columns, rel.types, strict=True)]
        stream = ArrowStream(rel.to_arrow_reader(self.batch_rows), columns=columns, tables=tables, max_rows=rows_cap, run=run)
        consumed = self.consume(stream)
        return Read(columns, [], stream.row_count, stream.truncated, consumed)


Output = Tuples | JsonRows | ArrowBatches
TUPLES = Tuples()


def fetch_json(cur: Any, rows_cap: int, max_bytes: int) -> tuple[msgspec.Raw, int, bool, bool]:
    """(rows as one JSON array, row count, truncated, result read to the end), fetched in growing batches.

    Each batch is encoded as soon as it is fetched and counted, so a result is refused
    (413 ``result_too_large``) at the first batch past ``max_bytes``; the Python rows of
    one batch are all that is ever held besides the encoded bytes.
    """
    parts: list[bytes] = []
    size, count, batch = 2, 0, FIRST_BATCH_ROWS
    truncated = finished = False
    while True:
        want = min(batch, rows_cap + 1 - count)
        got = cur.fetchmany(want)
        if count + len(got) > rows_cap:
            truncated = True
            del got[rows_cap - count:]
        elif len(got) < want:
            finished = True
        if got:
            enc = formats.encode_json(got)[1:-1]
            size += len(enc) + (1 if parts else 0)
            formats.check_size(size, max_bytes)
            parts.append(enc)
            count += len(got)
            batch = max(1, min(MAX_BATCH_ROWS, BATCH_BYTES * len(got) // max(1, len(enc))))
        if truncated or finished:
            break
    return msgspec.Raw(b"[" + b",".join(parts) + b"]"), count, truncated, finished


def table_reads(manifests: Iterable[Manifest]) -> list[TableRead]:
    return [TableRead(m.table_key, m.version, m.published_at) for m in manifests]
