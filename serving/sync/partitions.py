"""Partition keys in sync requests: checked with ``shared.partitions`` (the sync engine's rules),
then resolved against Dagster's own key list.

Why both: ``shared.partitions.validate_partition_key`` gives a malformed key a precise
answer naming the valid format ("daily partitions use YYYY-MM-DD …") before Dagster is
asked; Dagster's key list is the final word on which keys exist, and a range is the
slice of that list between its two ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from serving.lib.errors import BadRequest
from shared import partitions as shared_partitions
from shared.registry import RegisteredTable

is_partitioned = shared_partitions.is_partitioned


def valid_format(reg: RegisteredTable) -> str:
    kind = shared_partitions.time_kind(reg)
    if kind is None:
        return "one of " + ", ".join(reg.partition_values)
    return f"{shared_partitions.HUMAN_FORMATS[kind]} ({kind}, UTC)"


def check_key(reg: RegisteredTable, key: str) -> None:
    """400 ``invalid_partition`` naming the valid format when ``key`` is not a partition of ``reg``."""
    try:
        shared_partitions.validate_partition_key(reg, key)
    except shared_partitions.PartitionKeyError as e:
        raise BadRequest(str(e), rule="invalid_partition",
                         details={"partition": key, "valid_format": valid_format(reg)}) from e


def resolve(reg: RegisteredTable, known: Sequence[str], *, partitions: Sequence[str] | None,
            start: str | None, end: str | None) -> list[str]:
    """The partition keys a request names, checked against Dagster's list ``known``."""
    if partitions is not None and start is not None:
        raise BadRequest("give either partitions or partition_range, not both", rule="invalid_partition")
    if partitions is not None and not partitions:
        raise BadRequest("partitions must not be empty", rule="invalid_partition")
    names = list(partitions) if partitions is not None else [k for k in (start, end) if k is not None]
    for key in names:
        check_key(reg, key)
    index = {k: i for i, k in enumerate(known)}
    outside = [k for k in names if k not in index]
    if outside:
        span = f"{known[0]} .. {known[-1]}" if known else "none yet"
        raise BadRequest(f"partition {outside[0]!r} does not exist in Dagster for {reg.key}; its partitions are {span}",
                         rule="invalid_partition", details={"partitions": outside, "valid_format": valid_format(reg)})
    if partitions is not None:
        return list(dict.fromkeys(partitions))
    assert start is not None
    assert end is not None
    lo, hi = index[start], index[end]
    if lo > hi:
        raise BadRequest(f"partition_range start {start!r} is after its end {end!r}", rule="invalid_partition")
    return list(known[lo:hi + 1])
