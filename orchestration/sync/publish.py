"""Steps 4 and 5 of a materialization: profile the checked version, write its manifest, publish it.

Why last: publishing (the manifest, then CURRENT) is the one moment readers switch to the
new version, so it happens only after every check passed; the profile is for people and
can never fail or block a sync.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from typing import Any

from orchestration.sync import load
from orchestration.sync.sql import qi
from orchestration.sync.verdicts import Checked
from orchestration.sync.write import Written
from shared import partitions as sp
from shared.classify import classify_table
from shared.profile import profile_markdown
from shared.served import Manifest

# The profile shown in Dagster's metadata is computed on at most this many rows (a seeded
# uniform sample, ``sample_sql``): its cost stays bounded however large the table grows, so
# a one-partition run stays proportional to its partition. The API profiles full tables.
PROFILE_SAMPLE_ROWS = 100_000


def profile(w: Written) -> str | None:
    """The profile of what this run wrote: its partitions when older rows were kept, else the table."""
    t_profile = time.perf_counter()
    scope: tuple[str, list[Any], str] | None = None
    windows = w.planned.windows
    if w.written_table is not None:  # the partitions this run wrote, copied once (write.py)
        scope = ("TRUE", [], "partition " + ", ".join(win.key for win in windows[:3])
                 + (f" and {len(windows) - 3} more" if len(windows) > 3 else ""))
    markdown = profile_scope(w.con, w.req.table.key, w.req.logger, scope=scope,
                             relation=qi(w.written_table) if w.written_table else qi("data"))
    w.timings["profile_s"] = time.perf_counter() - t_profile
    return markdown


def classify(w: Written) -> dict[str, dict[str, Any]]:
    """Personal-data verdicts of every column of the new version, from a seeded sample of its rows.

    Unlike the profile, a classification that cannot be made fails the sync: serving a
    column without one would serve it unclassified (the API would mask it anyway).

    A partition run that kept the previous version's rows samples only the partitions it
    wrote, so its cost follows the window and not the table, and merges that with the
    previous version's verdicts (``merge_verdicts``): the rows it kept were classified
    when they were published, a column the run adds (drift) is classified here before it
    is served, and a partition run can only add personal-data evidence, never clear it (a
    full run judges the whole table again).
    """
    t0 = time.perf_counter()
    names, types = [c.name for c in w.columns], [c.type for c in w.columns]
    before = (w.previous.extra.get("classification") if w.previous is not None else None) or {}
    if w.drift is not None and w.drift.renamed:  # a column renamed in case keeps its rows' verdict
        renames = {a.name: b.name for a, b in w.drift.renamed}
        before = {renames.get(name, name): verdict for name, verdict in before.items()}
    if w.written_table is not None and before:
        verdicts = merge_verdicts(before, classify_table(w.con, qi(w.written_table), names, types=types))
    else:
        verdicts = classify_table(w.con, qi("data"), names, types=types)
    w.timings["classify_s"] = time.perf_counter() - t0
    return verdicts


def merge_verdicts(kept: dict[str, dict[str, Any]], written: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per column of ``written`` (the new version's columns): the verdict on the rows kept or the
    one on the rows written, whichever is personal, else the more confident; a column the kept
    rows never had takes the written rows' verdict."""
    out = {}
    for name, new in written.items():
        old = kept.get(name)
        if old is None:
            out[name] = new
            continue
        rank_old = (bool(old.get("personal")), float(old.get("confidence") or 0.0))
        rank_new = (bool(new.get("personal")), float(new.get("confidence") or 0.0))
        out[name] = new if rank_new > rank_old else old
    return out


def _stale_partitions(w: Written) -> list[str]:
    """Partitions recorded as not served (``partitions.served_partitions``): the kept version's,
    less the windows this run wrote, plus those a new column left NULL in (``plan``)."""
    previous = w.previous if w.has_data else None
    same_layout = previous is not None and previous.extra.get("partitioning") == sp.layout(w.req.table)
    kept = set(previous.extra.get("stale_partitions") or []) if previous is not None and same_layout else set()
    return sorted((kept - {win.key for win in w.planned.windows}) | set(w.planned.unread_partitions))


def publish_version(w: Written, checked: Checked, *, classification: dict[str, dict[str, Any]] | None = None
                    ) -> Manifest:
    """Write the manifest (partitions, watermark, figures) and make the version CURRENT."""
    t2 = time.perf_counter()
    req, planned = w.req, w.planned
    # The kept partitions; another layout's keys are none of this one's (``partitions.served_partitions``).
    parts = sp.served_partitions(req.table, w.previous) if w.has_data else {}
    stamp = dt.datetime.now(dt.UTC).isoformat()
    # When the source was read, not when this version is published (``served.read_time``): what
    # agents are told their data is as fresh as.
    read_at = planned.read_at.isoformat()
    for i, win in enumerate(planned.windows):
        rows = checked.served_by_window.get(win.key, w.rows_written)  # a snapshot's one window holds what this run wrote
        parts[win.key] = {"rows": rows, "run_id": req.run_id, "materialized_at": stamp, "read_at": read_at}
        if planned.window_nulls:  # what the change scan compares the source's rows without a cursor with
            parts[win.key]["cursor_nulls"] = planned.window_nulls[i]
    extra: dict[str, Any] = {
        "mode": planned.mode, "watermark_type": w.watermark_type, "drift": checked.drift, "source_read_at": read_at,
        # What the rows were merged and deduplicated on: a later run under another registration
        # cannot continue from them (``changes.written_under``).
        "cursor_column": req.table.cursor_column, "primary_key": list(req.table.primary_key),
        "partitioning": sp.layout(req.table), "partition_scope": sp.scope(req.table),
        "stale_partitions": _stale_partitions(w),
        "cursor_nulls": w.cursor_nulls, "cursor_beyond_watermark": w.cursor_beyond,
        "lookback_rows": w.lookback_rows, "cursor_newest": w.cursor_newest,
        "source_rows": planned.source_rows, "rows_written": w.rows_written,
        "duplicates_removed": checked.duplicates_removed, "kept_newer_served": checked.kept_newer,
        "snapshot_column": w.snap_col, "slices": len(planned.slices),
        "source_query_ids": [s.query_id for s in w.slices][:100],
    }
    if classification is not None:
        extra["classification"] = classification
    if w.written_table is not None:  # a temp table is never in the file; dropping it frees its memory now
        w.con.execute(f"DROP TABLE IF EXISTS {qi(w.written_table)}")
        w.written_table = None
    manifest = req.served.publish(
        w.pending, strategy=req.table.strategy, row_count=load.count_rows(w.con), columns=w.columns,
        partitions=parts, watermark=w.watermark, run_id=req.run_id, extra=extra,
    )
    w.timings["publish_s"] = time.perf_counter() - t2
    w.timings.update({f"publish_{k}": v for k, v in w.pending.timings.items()})
    return manifest


def profile_scope(con: Any, key: str, log: Any, *, scope: tuple[str, list[Any], str] | None = None,
                  relation: str = '"data"') -> str | None:
    """The profile of what this materialization serves, as Markdown; None if it fails, since a
    profile is for people and must never fail or block a sync.

    ``scope`` (predicate, params, label) narrows it to the partitions this run wrote, so a
    partition run profiles its partition, not the table. Past ``PROFILE_SAMPLE_ROWS`` rows
    it profiles a seeded sample of exactly that many rows (``sample_sql``).
    """
    try:
        where, params, label = scope or ("TRUE", [], "all")
        scoped = int(con.execute(f"SELECT count(*) FROM {relation} WHERE {where}", params).fetchone()[0])
        rows = f"SELECT * FROM {relation} WHERE {where}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _profile_scope AS {sample_sql(rows, scoped)}", params)
        if scoped > PROFILE_SAMPLE_ROWS and load.count_rows(con, "_profile_scope") < PROFILE_SAMPLE_ROWS:
            # The thinned pass fell short (odds about 3 in 10 million): sample the rows themselves.
            con.execute(f"CREATE OR REPLACE TEMP TABLE _profile_scope AS {sample_sql(rows, scoped, thin=False)}", params)
        what = f"{label} ({scoped:,} rows)" if scoped <= PROFILE_SAMPLE_ROWS else \
            f"a {PROFILE_SAMPLE_ROWS:,}-row sample of {label} ({scoped:,} rows)"
        return profile_markdown(con, "_profile_scope", title=f"{key}: profile of {what}")
    except Exception as e:
        log.warning(f"{key}: could not profile the new version ({type(e).__name__}: {e})")
        return None
    finally:
        with contextlib.suppress(Exception):
            con.execute("DROP TABLE IF EXISTS _profile_scope")


def sample_sql(rows: str, count: int, *, thin: bool = True) -> str:
    """A query for a seeded uniform sample of ``min(count, PROFILE_SAMPLE_ROWS)`` of ``rows`` (a query).

    Why two stages: a reservoir sample over all rows costs about five times a Bernoulli pass
    over them (measured on the 1M-row benchmark table), so a Bernoulli pass first keeps a
    little more than the sample size (5 standard deviations more), and the reservoir then
    draws the exact size from those. Every row is still equally likely to be drawn: a uniform
    subset of a Bernoulli sample is a uniform subset of the rows.
    """
    if count <= PROFILE_SAMPLE_ROWS:
        return rows
    if thin:
        percent = min(100.0, 100.0 * (PROFILE_SAMPLE_ROWS + 5 * math.sqrt(PROFILE_SAMPLE_ROWS)) / count)
        rows = f"SELECT * FROM ({rows}) USING SAMPLE {percent!r} PERCENT (bernoulli, 0)"
    return f"SELECT * FROM ({rows}) USING SAMPLE reservoir({PROFILE_SAMPLE_ROWS} ROWS) REPEATABLE (0)"
