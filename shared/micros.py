"""Arrow values at the precision the platform serves: microseconds.

Served timestamps and times are DuckDB TIMESTAMP, TIMESTAMPTZ and TIME (microseconds), while
Snowflake's default precision is nanoseconds (TIMESTAMP_NTZ(9), TIME(9)) and file sources hold
TIMESTAMP_NS. Every Arrow value the engine writes or compares with served values (slices, the
change scan's keys) goes through ``to_micros`` first, so a value is cut the same way everywhere.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def to_micros(batch: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
    """``batch`` with timestamps and times of nanoseconds cut to the microseconds served, floored
    (the microsecond the value falls in), as the source places the value in its windows.

    Why not DuckDB's CAST: it rounds. 2025-01-01 23:59:59.9999995 was served as 2025-01-02
    00:00:00, a value of the next day: a daily partition holding it was refused at every run (the
    source counted it in its day, the served window did not), a full copy showed the next day, and
    a cursor rounded up made a watermark past rows the source had not yet given. Snowflake's
    default timestamp and time precision is nanoseconds (TIMESTAMP_NTZ(9), TIME(9)), and file
    sources hold TIMESTAMP_NS.
    """
    for i, field in enumerate(batch.schema):
        typ = field.type
        if not (pa.types.is_timestamp(typ) or pa.types.is_time64(typ)) or typ.unit != "ns":
            continue
        micros = pa.timestamp("us", tz=typ.tz) if pa.types.is_timestamp(typ) else pa.time64("us")
        floored = pc.cast(pc.floor_temporal(batch.column(i), unit="microsecond"), micros)
        batch = batch.set_column(i, field.with_type(micros), floored)
    return batch
