"""Partition keys in sync requests: format checks with the valid format in the message, and ranges.

Why Dagster's own key list is the final word: the asset's partitions definition (start,
end offset, static values) lives in the code location, so a key is accepted only if
Dagster lists it, and a range is the slice of that list between its ends. The format
check first gives a malformed key a precise answer ("use YYYY-MM-DD") instead of "not found".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from serving.lib.errors import BadRequest
from shared.registry import RegisteredTable

FORMATS = {
    "daily": ("%Y-%m-%d", "YYYY-MM-DD, e.g. 2025-03-01"),
    "monthly": ("%Y-%m-%d", "YYYY-MM-01 (first day of the month), e.g. 2025-03-01"),
    "hourly": ("%Y-%m-%d-%H:%M", "YYYY-MM-DD-HH:00, e.g. 2025-03-01-13:00"),
}


def valid_format(reg: RegisteredTable) -> str:
    if reg.partition_kind == "static":
        return "one of " + ", ".join(reg.partition_values)
    return FORMATS[reg.partition_kind][1] if reg.partition_kind in FORMATS else "no partitions"


def check_format(reg: RegisteredTable, key: str) -> None:
    """400 naming the valid format when ``key`` cannot be a partition key of ``reg``."""
    fmt = FORMATS.get(reg.partition_kind)
    ok = True
    if reg.partition_kind == "static":
        ok = key in reg.partition_values
    elif fmt is not None:
        try:
            parsed = dt.datetime.strptime(key, fmt[0])
            ok = parsed.strftime(fmt[0]) == key
            if reg.partition_kind == "monthly":
                ok = ok and parsed.day == 1
            if reg.partition_kind == "hourly":
                ok = ok and parsed.minute == 0
        except ValueError:
            ok = False
    if not ok:
        raise BadRequest(f"partition key {key!r} is malformed for {reg.partition_kind} partitions of {reg.key}; "
                         f"valid format: {valid_format(reg)}", rule="invalid_partition",
                         details={"partition": key, "valid_format": valid_format(reg)})


def resolve(reg: RegisteredTable, known: Sequence[str], *, partitions: Sequence[str] | None,
            start: str | None, end: str | None) -> list[str]:
    """The partition keys a request names, checked against Dagster's list ``known``."""
    if partitions is not None and start is not None:
        raise BadRequest("give either partitions or partition_range, not both", rule="invalid_partition")
    names = list(partitions) if partitions is not None else [k for k in (start, end) if k is not None]
    for key in names:
        check_format(reg, key)
    index = {k: i for i, k in enumerate(known)}
    outside = [k for k in names if k not in index]
    if outside:
        span = f"{known[0]} .. {known[-1]}" if known else "none yet"
        raise BadRequest(f"partition {outside[0]!r} does not exist for {reg.key}; its partitions are {span}",
                         rule="invalid_partition", details={"partitions": outside, "valid_format": valid_format(reg)})
    if partitions is not None:
        if not partitions:
            raise BadRequest("partitions must not be empty", rule="invalid_partition")
        return list(dict.fromkeys(partitions))
    assert start is not None
    assert end is not None
    lo, hi = index[start], index[end]
    if lo > hi:
        raise BadRequest(f"partition_range start {start!r} is after its end {end!r}", rule="invalid_partition")
    return list(known[lo:hi + 1])
