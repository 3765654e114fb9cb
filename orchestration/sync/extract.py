"""Arrow extraction from Snowflake in slices, never through Python rows or pandas.

Why slices: real Snowflake returns a result in chunks, but the local stand-in sends each
result as one base64 Arrow block, so the only way to bound memory everywhere is to ask
for bounded results of about ``slice_rows`` rows: small partitions packed together, a big
partition or an unpartitioned table cut into key ranges. Slices are fetched by ``workers`` connections at once so
the source serialising one slice overlaps the client decoding and writing another; at
most ``workers`` batches are alive at any time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal, localcontext
from typing import Any

import pyarrow as pa

from orchestration.sync.memory import bound_native_memory
from orchestration.sync.sql import qi, qlist, qname
from orchestration.sync.types import duckdb_type
from shared.changes import DECIMALS, bind
from shared.partitions import HOURLY, Window
from shared.registry import RegisteredTable
from shared.snowflake import SourceColumn, bound

Connect = Callable[[], AbstractContextManager[Any]]
_DONE = object()


@dataclasses.dataclass(frozen=True)
class Slice:
    """One bounded source query: a WHERE clause with bound values."""

    label: str
    where: str = "TRUE"
    params: tuple[Any, ...] = ()


@dataclasses.dataclass
class SliceStats:
    label: str
    query_id: str | None
    rows: int
    execute_s: float
    fetch_s: float


def sf_type(col: SourceColumn) -> str:
    """The Snowflake type to CAST bound values to when comparing with ``col``."""
    kind = col.data_type.upper()
    if duckdb_type(col) in ("BIGINT", "HUGEINT") or kind.startswith("DECIMAL") or kind == "NUMBER":
        return f"NUMBER({col.precision or 38},{col.scale or 0})"
    return {"TEXT": "VARCHAR", "TIMESTAMP": "TIMESTAMP_NTZ", "DATETIME": "TIMESTAMP_NTZ"}.get(kind, kind)


def select_sql(table: RegisteredTable, columns: Sequence[str], where: str = "TRUE") -> str:
    return f"SELECT {qlist(columns)} FROM {qname(table.database, table.schema, table.table)} WHERE {where}"


def window_slices(col: SourceColumn, windows: Sequence[Window], kind: str) -> list[Slice]:
    """One slice per partition: ``[start, end)`` of a time window, or ``= value`` for static partitions."""
    out = []
    for w in windows:
        if w.value is not None:
            out.append(Slice(label=w.key, where=f"{qi(col.name)} = %s", params=(w.value,)))
            continue
        assert w.start is not None
        assert w.end is not None
        if col.data_type == "DATE" and kind != HOURLY:
            lo, hi, cast = w.start.date().isoformat(), w.end.date().isoformat(), "DATE"
        elif col.data_type in ("TIMESTAMP_TZ", "TIMESTAMP_LTZ"):
            lo, hi, cast = bind(w.start), bind(w.end), "TIMESTAMP_TZ"
        else:  # naive timestamps hold UTC wall-clock time
            lo, hi, cast = bind(w.start.replace(tzinfo=None)), bind(w.end.replace(tzinfo=None)), "TIMESTAMP_NTZ"
        c = qi(col.name)
        where = f"{c} >= CAST(%s AS {cast}) AND {c} < CAST(%s AS {cast})"
        out.append(Slice(label=w.key, where=where, params=(lo, hi)))
    return out


def window_counts(con: Any, table: RegisteredTable, windows: Sequence[Slice]) -> list[int]:
    """Source rows of every partition slice, in one query (one COUNT_IF per partition)."""
    return window_census(con, table, windows)[0]


def window_census(con: Any, table: RegisteredTable, windows: Sequence[Slice],
                  cursor: str | None = None) -> tuple[list[int], list[int]]:
    """Source rows of every partition slice and, with ``cursor``, those of them without a cursor
    (zeros without), in one query (one or two COUNT_IF per partition)."""
    if not windows:
        return [], []
    counts = [f"COUNT_IF({w.where})" for w in windows]
    params = [p for w in windows for p in w.params]
    select_params = list(params)
    if cursor:
        counts += [f"COUNT_IF(({w.where}) AND {qi(cursor)} IS NULL)" for w in windows]
        select_params += params
    where = " OR ".join(f"({w.where})" for w in windows)
    cur = con.cursor()
    try:
        sql = f"SELECT {', '.join(counts)} FROM {qname(table.database, table.schema, table.table)} WHERE {where}"
        cur.execute(bound(sql, select_params + params), select_params + params)
        row = cur.fetchone()
    finally:
        cur.close()
    values = [int(v or 0) for v in row] if row else [0] * len(counts)
    n = len(windows)
    return values[:n], (values[n:] if cursor else [0] * n)


def pack_windows(windows: Sequence[Slice], counts: Sequence[int], slice_rows: int) -> tuple[list[Slice], list[Slice]]:
    """Group consecutive partitions into slices of at most ``slice_rows`` rows.

    Returns (packed slices, partitions too big for one slice). A backfill run of 30 small
    daily partitions then costs a couple of queries instead of thirty.
    """
    packed: list[Slice] = []
    oversized: list[Slice] = []
    group: list[Slice] = []
    rows = 0

    def flush() -> None:
        if group:
            where = " OR ".join(f"({w.where})" for w in group)
            label = group[0].label if len(group) == 1 else f"{group[0].label}..{group[-1].label}"
            packed.append(Slice(label=label, where=where, params=tuple(p for w in group for p in w.params)))
            group.clear()

    for w, n in zip(windows, counts, strict=True):
        if n > slice_rows:
            oversized.append(w)
            continue
        if group and rows + n > slice_rows:
            flush()
            rows = 0
        group.append(w)
        rows += n
    flush()
    return packed, oversized


def _boundaries(lo: Any, hi: Any, n: int) -> list[Any]:
    """``n - 1`` increasing cut points between lo and hi (equal width)."""
    cuts: list[Any]
    if isinstance(lo, dt.datetime | dt.date) and not isinstance(lo, dt.datetime):
        span = (hi - lo).days
        cuts = [lo + dt.timedelta(days=span * i // n) for i in range(1, n)]
    elif isinstance(lo, dt.datetime):
        cuts = [lo + (hi - lo) * i / n for i in range(1, n)]
    elif isinstance(lo, int):
        cuts = [lo + (hi - lo) * i // n for i in range(1, n)]
    else:
        low, high = Decimal(str(lo)), Decimal(str(hi))
        with localcontext(DECIMALS):  # exact: 28 digits rounded the cuts of a NUMBER(38,2) past its maximum
            cuts = [low + (high - low) * i / n for i in range(1, n)]
            if not isinstance(lo, float):  # on the column's own scale: a value of its type, between lo and hi
                cuts = [c.quantize(low) for c in cuts]
    return sorted(set(cuts))


def key_range_slices(
    con: Any, table: RegisteredTable, col: SourceColumn | None, *, base: Slice, slice_rows: int
) -> tuple[list[Slice], int]:
    """Split ``base`` into ranges of ``col`` of about ``slice_rows`` rows; returns (slices, source rows).

    Ranges are open at both ends and NULLs get their own slice, so rows written between
    the statistics query and the slices are never lost.
    """
    target = qname(table.database, table.schema, table.table)
    value = qi(col.name) if col else ""
    if col is not None and duckdb_type(col) == "DOUBLE":
        # NaN and the infinities have no width to cut (they order outside every finite value,
        # NaN above +inf, in Snowflake and DuckDB alike); the open-ended first and last ranges hold them.
        value = f"CASE WHEN {value} > CAST('-inf' AS FLOAT) AND {value} < CAST('inf' AS FLOAT) THEN {value} END"
    stats = "COUNT(*)" + (f", MIN({value}), MAX({value})" if col else "")
    cur = con.cursor()
    try:
        sql = f"SELECT {stats} FROM {target} WHERE {base.where}"
        cur.execute(bound(sql, base.params), base.params)
        row = cur.fetchone()
    finally:
        cur.close()
    count = int(row[0])
    if col is None or count <= slice_rows or row[1] is None or row[1] == row[2]:
        return [base], count
    cuts = _boundaries(row[1], row[2], math.ceil(count / slice_rows))
    c, cast = qi(col.name), sf_type(col)
    bounds: list[tuple[Any, Any]] = list(zip([None, *cuts], [*cuts, None], strict=True))
    out = []
    for i, (lo, hi) in enumerate(bounds):
        parts, params = [f"({base.where})"], list(base.params)
        if lo is not None:
            parts.append(f"{c} >= CAST(%s AS {cast})")
            params.append(bind(lo))
        if hi is not None:
            parts.append(f"{c} < CAST(%s AS {cast})")
            params.append(bind(hi))
        out.append(Slice(label=f"{base.label}#{i + 1}", where=" AND ".join(parts), params=tuple(params)))
    if col.nullable:
        out.append(Slice(label=f"{base.label}#null", where=f"({base.where}) AND {c} IS NULL", params=base.params))
    return out, count


def _result_batches(cur: Any) -> int | None:
    """How many batches the executed query's result has (a Snowflake cursor), else None."""
    get = getattr(cur, "get_result_batches", None)
    found = get() if get is not None else None
    return len(found) if found is not None else None


class Extraction:
    """Iterate ``(slice, arrow batch)`` for every slice; per-slice statistics land in ``stats``.

    With several workers, a semaphore of ``workers`` permits bounds the batches alive at
    once (being fetched, queued, or being written): a worker takes a permit before it asks
    for a batch and the consumer returns it once the batch is written.
    """

    def __init__(self, connect: Connect, table: RegisteredTable, columns: Sequence[str], slices: Sequence[Slice],
                 *, workers: int = 2) -> None:
        self.connect, self.table, self.columns = connect, table, list(columns)
        self.slices = list(slices)
        self.workers = max(1, min(workers, len(self.slices)))
        self.stats: list[SliceStats] = []
        self._stop = threading.Event()
        self._permits = threading.Semaphore(self.workers)
        bound_native_memory()

    def _acquire(self) -> bool:
        while not self._stop.is_set():
            if self._permits.acquire(timeout=0.2):
                return True
        return False

    def _fetch(self, con: Any, piece: Slice) -> Iterator[tuple[pa.Table | pa.RecordBatch, bool]]:
        """Yield ``(batch, last)`` for one slice; ``last``: no batch follows.

        Why ``last``: a Snowflake cursor holds its result until it is closed (the encoded
        text it received and the decoded buffer: about 18 MB for a 50,000-row slice of the
        benchmark table). Knowing the number of result batches, the last one is handed over
        with the cursor already closed, so a worker waiting for a permit holds nothing. A
        cursor that cannot tell (a file source) is closed once its batches run out.
        """
        cur = con.cursor()
        try:
            t0 = time.perf_counter()
            sql = select_sql(self.table, self.columns, piece.where)
            cur.execute(bound(sql, piece.params), piece.params)
            t1 = time.perf_counter()
            left = _result_batches(cur)
            batches = iter(cur.fetch_arrow_batches())
            rows = 0
            while (batch := next(batches, None)) is not None:
                rows += batch.num_rows
                left = None if left is None else left - 1
                if left == 0:
                    del batches  # the result's iterator and the cursor go before the batch is handed over
                    self.stats.append(SliceStats(piece.label, cur.sfqid, rows, t1 - t0, time.perf_counter() - t1))
                    cur.close()
                    yield batch, True
                    return
                yield batch, False
                del batch
            self.stats.append(SliceStats(piece.label, cur.sfqid, rows, t1 - t0, time.perf_counter() - t1))
        finally:
            cur.close()

    def _worker(self, todo: queue.SimpleQueue[Slice], out: queue.Queue[Any]) -> None:
        try:
            with self.connect() as con:
                while not self._stop.is_set():
                    try:
                        piece = todo.get_nowait()
                    except queue.Empty:
                        break
                    if not self._acquire():
                        return
                    for batch, last in self._fetch(con, piece):
                        out.put((piece, batch))  # never blocks: at most `workers` batches hold permits
                        del batch  # the consumer holds it now; kept here, it would outlive its permit
                        if last:
                            break  # its permit went with it, and no batch follows
                        if not self._acquire():
                            return
                    else:
                        self._permits.release()  # the permit taken for a batch that did not come
        except BaseException as e:  # handed to the consumer, which re-raises it
            out.put(e)
        finally:
            out.put(_DONE)

    def __iter__(self) -> Iterator[tuple[Slice, pa.Table | pa.RecordBatch]]:
        """Consumers drop each batch (``del``) once written: a permit returns when the batch is freed."""
        if self.workers == 1:
            with self.connect() as con:
                for piece in self.slices:
                    for batch, _last in self._fetch(con, piece):
                        yield piece, batch
                        del batch
            return
        todo: queue.SimpleQueue[Slice] = queue.SimpleQueue()
        for piece in self.slices:
            todo.put(piece)
        out: queue.Queue[Any] = queue.Queue()
        threads = [threading.Thread(target=self._worker, args=(todo, out), daemon=True) for _ in range(self.workers)]
        for t in threads:
            t.start()
        running = len(threads)
        try:
            while running:
                item = out.get()
                if item is _DONE:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
                    del item  # drop the batch before handing its permit back
                    self._permits.release()
        finally:
            self._stop.set()
            for t in threads:
                t.join(timeout=30)
