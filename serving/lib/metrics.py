"""Prometheus metrics of the API, with the official client in multiprocess mode.

Why multiprocess mode: with ``API_WORKERS`` > 1, uvicorn's workers are separate processes,
and a scrape answered by one of them must count all of them. Each process writes its
values to files under ``PROMETHEUS_MULTIPROC_DIR`` (``serving.main`` sets and empties it
before the workers start, see :func:`prepare_multiprocess_dir`), and a scrape merges them.
Without that variable (tests building an app in-process) the values live in this process.

Two kinds of figures:

- **Counted here** as requests are served (:class:`Metrics`, one per process): requests by
  route template and status with latency, queries by outcome and rule with duration, rows
  and result bytes by format, query slots in use, 429s by limit, guard cache lookups,
  refresh requests by outcome and time from refresh to visible data.
- **Read from the control database at scrape time** (:class:`ControlDbCollector`): per
  table served version age, rows, last sync duration, freshness status and recent runs;
  sync jobs by outcome and their durations; artifact bytes stored; housekeeping deletions.
  Every replica reports the same values for these (label ``replica`` tells them apart).

``/metrics`` is served according to ``METRICS`` (``serving/health/controllers.py`` for the
admin-token variant, :func:`serve_port` for the internal port).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shared.control.db import session_scope
from shared.settings import Settings

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("agents_data.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
ROW_BUCKETS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
SYNC_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
UNMATCHED = "<unmatched>"


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def prepare_multiprocess_dir(settings: Settings) -> Path:
    """Empty the folder the workers will share and point this process (and its children) at it.

    Must run before ``prometheus_client`` is imported anywhere in the process: the client
    reads the variable when its value module loads. Values of a previous run are removed
    (the documented way to start multiprocess mode).
    """
    path = settings.metrics_dir_path
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


class Metrics:
    """The metric objects counted by this process."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series double the output and no dashboard reads them
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("agents_data_http_requests", "HTTP requests answered, by route template and status.",
                                ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram("agents_data_http_request_duration_seconds",
                                         "Time to answer an HTTP request, by route template.", ["route", "method"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.queries = Counter("agents_data_queries", "Agent queries by outcome (succeeded, refused, timeout, "
                               "cancelled, failed) and the rule that refused or stopped them.",
                               ["outcome", "rule"], registry=r)
        self.query_seconds = Histogram("agents_data_query_duration_seconds", "Time agent queries ran, by outcome.",
                                       ["outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.query_rows = Histogram("agents_data_query_rows", "Rows returned per successful query.",
                                    buckets=ROW_BUCKETS, registry=r)
        self.result_bytes = Counter("agents_data_query_result_bytes", "Bytes of query results, by output format.",
                                    ["format"], registry=r)
        self.slots = Gauge("agents_data_query_slots_in_use", "Agent query slots held now (all workers).",
                           multiprocess_mode="livesum", registry=r)
        self.heavy_waiting = Gauge("agents_data_heavy_work_waiting", "Heavy agent work (samples, profiles, "
                                   "queries not known cheap) waiting for a place (QUERY_HEAVY_CONCURRENT per worker).",
                                   multiprocess_mode="livesum", registry=r)
        self.limited = Counter("agents_data_limit_refusals", "429 answers by the limit that refused (rule).",
                               ["limit"], registry=r)
        self.guard_cache = Counter("agents_data_guard_cache_lookups", "SQL guard cache lookups by result (hit, miss).",
                                   ["result"], registry=r)
        self.refreshes = Counter("agents_data_refresh_requests", "Agent refresh requests by outcome.",
                                 ["outcome"], registry=r)
        self.refresh_visible = Histogram("agents_data_refresh_to_visible_seconds",
                                         "From an agent's refresh request to its new data being served.",
                                         buckets=SYNC_BUCKETS, registry=r)


class _Process:
    """This process's state: whether it counts, and its metrics once made."""

    enabled = False
    metrics: Metrics | None = None
    lock = threading.Lock()


def enabled() -> bool:
    return _Process.enabled


def enable(settings: Settings) -> None:
    """Count from now on in this process if ``METRICS`` is not off (the app calls it at creation)."""
    _Process.enabled = settings.observability.metrics_mode != "off"


def get() -> Metrics:
    """This process's metrics (made on first use, after ``PROMETHEUS_MULTIPROC_DIR`` is settled)."""
    if _Process.metrics is None:
        with _Process.lock:
            if _Process.metrics is None:
                _Process.metrics = Metrics()
    return _Process.metrics


def _safe(fn: Any) -> Any:
    """Counting must never fail a request: errors are logged at DEBUG and dropped. Off: nothing is counted."""
    def wrapper(*args: Any, **kwargs: Any) -> None:
        if not _Process.enabled:
            return
        try:
            fn(*args, **kwargs)
        except Exception:
            log.debug("metric update failed", exc_info=True)
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_safe
def observe_request(route: str, method: str, status: int, seconds: float, rule: str | None) -> None:
    m = get()
    m.requests.labels(route, method, str(status)).inc()
    m.request_seconds.labels(route, method).observe(seconds)
    if status == 429:
        m.limited.labels(rule or "unknown").inc()


@_safe
def observe_query(outcome: str, rule: str | None, seconds: float | None = None, *, rows: int | None = None,
                  nbytes: int | None = None, fmt: str | None = None) -> None:
    m = get()
    m.queries.labels(outcome, rule or "").inc()
    if seconds is not None:
        m.query_seconds.labels(outcome).observe(seconds)
    if outcome == "succeeded" and rows is not None:
        m.query_rows.observe(rows)
    if nbytes and fmt:
        m.result_bytes.labels(fmt).inc(nbytes)


@_safe
def slot_taken(delta: int) -> None:
    get().slots.inc(delta)


@_safe
def heavy_waiting(delta: int) -> None:
    get().heavy_waiting.inc(delta)


@_safe
def guard_lookup(hit: bool) -> None:
    get().guard_cache.labels("hit" if hit else "miss").inc()


@_safe
def observe_refresh(outcome: str) -> None:
    get().refreshes.labels(outcome).inc()


@_safe
def observe_refresh_visible(seconds: float) -> None:
    get().refresh_visible.observe(max(0.0, seconds))


def mark_process_dead(pid: int | None = None) -> None:
    """At a worker's exit: its live gauges (slots in use) stop counting."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        try:
            mp.mark_process_dead(pid or os.getpid())
        except OSError:
            log.debug("could not mark the metrics of process %s dead", pid, exc_info=True)


# ----------------------------------------------------------------------------- control database
class ControlDbCollector:
    """Figures read from the control database and the served manifests when scraped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> list[Any]:
        return []  # no describe-time collection: the database is read only when scraped

    def collect(self) -> Iterator[Any]:
        try:
            yield from self._collect()
        except Exception as e:  # a scrape must still answer the process's own metrics
            log.warning("control database metrics unavailable: %s", type(e).__name__)
            from prometheus_client.core import GaugeMetricFamily

            yield GaugeMetricFamily("agents_data_control_db_up", "Whether the control database answered the scrape.",
                                    value=0)

    def _collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        from shared import partitions, registry, served, status
        from shared.control.models import ArtifactRow, SyncRequestRow

        settings = self.settings
        url = settings.control_url
        now = dt.datetime.now(dt.UTC)
        tables = registry.list_registered(url)
        statuses = status.read(url, [t.key for t in tables])
        age = GaugeMetricFamily("agents_data_table_served_version_age_seconds",
                                "Seconds since the served version of a table was published.", labels=["table"])
        rows = GaugeMetricFamily("agents_data_table_rows", "Rows in the served version of a table.", labels=["table"])
        fresh = GaugeMetricFamily("agents_data_table_freshness",
                                  "1 for the table's current freshness status (fresh, stale, failing).",
                                  labels=["table", "status"])
        last_sync = GaugeMetricFamily("agents_data_table_last_sync_duration_seconds",
                                      "Duration of the table's last finished sync job launched through the API.",
                                      labels=["table"])
        recent = GaugeMetricFamily("agents_data_table_recent_runs",
                                   "Outcomes of the table's recent Dagster runs (housekeeping's last sample).",
                                   labels=["table", "outcome"])
        run_q = GaugeMetricFamily("agents_data_table_run_duration_seconds",
                                  "Run duration quantiles of the table's recent successful runs.",
                                  labels=["table", "quantile"])
        for reg in tables:
            manifest = served.read_current(settings.served_path, reg.key)
            row = statuses.get(reg.key)
            verdict = status.freshness(manifest, row, reg.freshness_s, now, **partitions.freshness_coverage(
                reg, manifest, now))
            for name in ("fresh", "stale", "failing"):
                fresh.add_metric([reg.key, name], 1.0 if verdict["status"] == name else 0.0)
            if manifest is not None:
                synced = status.last_synced(manifest, row) or now  # the catalog's age: since the source was read
                age.add_metric([reg.key], max(0.0, (now - synced).total_seconds()))
                rows.add_metric([reg.key], float(manifest.row_count))
            stats = (row.stats or {}) if row is not None else {}
            if stats.get("runs_sampled"):
                recent.add_metric([reg.key, "succeeded"], float(stats.get("runs_succeeded") or 0))
                recent.add_metric([reg.key, "failed"], float(stats.get("runs_failed") or 0))
            for q, field in (("0.5", "run_p50_s"), ("0.95", "run_p95_s")):
                if stats.get(field) is not None:
                    run_q.add_metric([reg.key, q], float(stats[field]))
        jobs_total = CounterMetricFamily("agents_data_sync_jobs", "Sync jobs (runs and backfills launched through "
                                         "the API) by status and reason.", labels=["status", "reason"])
        durations: list[float] = []
        with session_scope(url) as s:
            for st, reason, n in s.execute(sa.select(SyncRequestRow.status, SyncRequestRow.reason, sa.func.count())
                                           .group_by(SyncRequestRow.status, SyncRequestRow.reason)):
                jobs_total.add_metric([st, reason], float(n))
            finished = s.execute(
                sa.select(SyncRequestRow.table_key, SyncRequestRow.created_at, SyncRequestRow.started_at,
                          SyncRequestRow.finished_at, SyncRequestRow.status)
                .where(SyncRequestRow.finished_at.is_not(None)).order_by(SyncRequestRow.finished_at)).all()
            artifact_bytes, artifact_count = s.execute(
                sa.select(sa.func.coalesce(sa.func.sum(ArtifactRow.size), 0), sa.func.count())
                .where(ArtifactRow.deleted_at.is_(None))).one()
        last: dict[str, float] = {}
        for key, created, started, ended, st in finished:
            seconds = (ended - (started or created)).total_seconds()
            if seconds >= 0:
                last[key] = seconds
                if st == "succeeded":
                    durations.append(seconds)
        for key, seconds in last.items():
            last_sync.add_metric([key], seconds)
        hist = HistogramMetricFamily("agents_data_sync_job_duration_seconds",
                                     "Durations of successful sync jobs launched through the API.")
        buckets = [(str(b), float(sum(1 for d in durations if d <= b))) for b in SYNC_BUCKETS]
        hist.add_metric([], [*buckets, ("+Inf", float(len(durations)))], sum_value=sum(durations))
        stored = GaugeMetricFamily("agents_data_artifact_bytes", "Bytes of artifacts stored (not deleted).",
                                   value=float(artifact_bytes))
        stored_n = GaugeMetricFamily("agents_data_artifacts", "Artifacts stored (not deleted).",
                                     value=float(artifact_count))
        up = GaugeMetricFamily("agents_data_control_db_up", "Whether the control database answered the scrape.",
                               value=1)
        yield from (age, rows, fresh, last_sync, recent, run_q, jobs_total, hist, stored, stored_n, up)
        yield from _housekeeping_families(url)


def _housekeeping_families(url: str) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily

    from shared.housekeeping import deletion_totals

    family = CounterMetricFamily("agents_data_housekeeping_deletions", "Things housekeeping deleted or expired, "
                                 "by job and kind, since the control database was created.", labels=["job", "what"])
    for (job, what), n in sorted(deletion_totals(url).items()):
        family.add_metric([job, what], float(n))
    yield family


# ----------------------------------------------------------------------------- exposition
def scrape_registry(settings: Settings) -> CollectorRegistry:
    """A registry for one scrape: every worker's values (or this process's), plus the control DB figures."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    reg = CollectorRegistry(auto_describe=False)
    if multiprocess():
        MultiProcessCollector(reg)
    else:
        reg.register(_Forward(get().registry))
    reg.register(ControlDbCollector(settings))  # type: ignore[arg-type]
    return reg


class _Forward:
    """Collects another registry's metrics (the in-process values when not in multiprocess mode)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        return iter(self._registry.collect())


def render(settings: Settings) -> bytes:
    from prometheus_client import generate_latest

    get()  # this process's families exist (with zero values) even before its first request
    return generate_latest(scrape_registry(settings))


def serve_port(settings: Settings) -> Any:
    """Start the internal metrics port (``METRICS=port``) in this process; returns the server."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(settings.observability.metrics_port,
                                        addr=settings.observability.metrics_host,
                                        registry=scrape_registry(settings))
    return server

