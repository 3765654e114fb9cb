"""A small async client for Dagster's GraphQL API: the only way the API drives Dagster.

Why our own client (over httpx) instead of ``dagster_graphql.DagsterGraphQLClient``: the
API is async, must tell "Dagster is unreachable" (503) apart from "Dagster said no"
(4xx with Dagster's message), and needs a few queries the stock client lacks
(backfills, asset latest info, run failure messages). It is created once in the sync
feature's ``startup`` and injected; tests pass an ``httpx`` transport that fakes the
server.

Every run is launched with an explicit ``assetSelection``: measured on Dagster 1.13,
``__ASSET_JOB`` without a selection runs every asset. ``__ASSET_JOB`` holds every table
whatever its partitions (Dagster checks one partitions definition per *selection*), and a
selection here is always one table, so runs and backfills work for any mix of layouts.

Every message taken from Dagster passes :func:`clean_message` before it can reach an API
answer: Dagster's errors carry Python stack traces and server paths (a code location that
failed to load answers with its whole traceback), which callers must never see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from shared.dagster_names import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from shared.settings import DagsterSettings

ASSET_JOB = "__ASSET_JOB"
REPOSITORY = "__repository__"

QUEUED = frozenset({"QUEUED", "NOT_STARTED"})
RUNNING = frozenset({"STARTING", "STARTED", "CANCELING", "SUSPENDED", "MANAGED"})
TERMINAL_RUN = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
# Dagster's run retries (``run_retries`` in dagster.yaml) re-execute a run whose worker died: the
# failed run is tagged whether it will be retried, and the new run names it as its parent.
WILL_RETRY_TAG = "dagster/will_retry"
PARENT_RUN_TAG = "dagster/parent_run_id"
TERMINAL_BACKFILL = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"})


MAX_MESSAGE_CHARS = 1000
# Where Dagster's own text stops being a message and becomes a trace.
_TRACE_MARKERS = re.compile(r"\n\s*(?:Stack Trace:|Traceback \(most recent call last\)|The above exception)|"
                            r"\n\s*File \"", re.IGNORECASE)
# An absolute path of two or more segments, not part of a URL or a relative name (``demo/public/t``).
_PATH = re.compile(r"""(?<![\w.:/~-])~?/[^\s/'"`,;:()<>\[\]{}]+(?:/[^\s/'"`,;:()<>\[\]{}]*)+""")
_SPACE = re.compile(r"\s+")


def clean_message(text: str | None) -> str:
    """Dagster's message without its stack trace, server paths or line breaks, at most 1,000 characters."""
    if not text:
        return ""
    head = _TRACE_MARKERS.split(str(text), maxsplit=1)[0]
    head = _SPACE.sub(" ", _PATH.sub("<path>", head)).strip()
    if len(head) > MAX_MESSAGE_CHARS:
        head = head[:MAX_MESSAGE_CHARS - 1] + "…"
    return head


class DagsterUnavailable(RuntimeError):
    """Dagster's webserver could not be reached, timed out, or answered a server error."""


class DagsterError(RuntimeError):
    """Dagster answered, but refused or failed the request; ``kind`` is its GraphQL type."""

    def __init__(self, message: str, kind: str = "Error") -> None:
        super().__init__(clean_message(message))
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str  # Dagster RunStatus, e.g. QUEUED, STARTED, SUCCESS, FAILURE
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rows: int | None = None
    partitions_done: tuple[str, ...] = ()

    @property
    def partition(self) -> str | None:
        return self.tags.get(PARTITION_TAG)

    def covered(self, ordered: Sequence[str]) -> list[str]:
        """The partitions of ``ordered`` this run covers: its one partition, or its range
        (a backfill run over a range of partitions carries range tags, not a partition tag)."""
        if self.partition:
            return [self.partition]
        start, end = self.tags.get(RANGE_START_TAG), self.tags.get(RANGE_END_TAG)
        if start in ordered and end in ordered:
            return list(ordered[ordered.index(start): ordered.index(end) + 1])
        return []

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_RUN

    @property
    def will_retry(self) -> bool:
        """A failed run Dagster re-executes (its worker died; step failures are not retried here)."""
        return self.status == "FAILURE" and self.tags.get(WILL_RETRY_TAG) == "true"


@dataclasses.dataclass(frozen=True)
class BackfillInfo:
    backfill_id: str
    status: str  # Dagster BulkActionStatus
    partitions: tuple[str, ...] = ()
    created_at: float | None = None
    ended_at: float | None = None
    targeted: int = 0
    materialized: int = 0
    failed: int = 0
    in_progress: int = 0
    runs: tuple[RunInfo, ...] = ()
    error: str | None = None

    @property
    def terminal(self) -> bool:
        """Dagster's status is final and every run of the backfill has ended. Dagster can close a
        backfill while a run is still ending (its failure recorded, its last events not yet), and
        what a run did is read from its end, so until then the backfill is still in progress."""
        return self.status in TERMINAL_BACKFILL and all(r.terminal for r in self.runs)


@dataclasses.dataclass(frozen=True)
class AssetActivity:
    """What Dagster knows about one asset right now (``assetsLatestInfo``)."""

    in_progress: tuple[str, ...]
    unstarted: tuple[str, ...]
    latest_run: RunInfo | None


_RUN_FIELDS = """
  runId status creationTime startTime endTime
  tags { key value }
  assetMaterializations { partition metadataEntries { label ... on IntMetadataEntry { intValue intRepr } } }
"""

_ERROR_FRAGMENT = "... on Error { message } ... on PythonError { message }"


def _run_from(raw: Mapping[str, Any]) -> RunInfo:
    rows: int | None = None
    done: list[str] = []
    for mat in raw.get("assetMaterializations") or []:
        if mat.get("partition"):
            done.append(mat["partition"])
        for entry in mat.get("metadataEntries") or []:
            if entry.get("label") == "dagster/row_count" and entry.get("intRepr") is not None:
                rows = (rows or 0) + int(entry["intRepr"])
    return RunInfo(
        run_id=raw["runId"], status=raw["status"], created_at=raw.get("creationTime"),
        started_at=raw.get("startTime"), ended_at=raw.get("endTime"),
        tags={t["key"]: t["value"] for t in raw.get("tags") or []}, rows=rows, partitions_done=tuple(done),
    )


def _asset_key(path: Sequence[str]) -> dict[str, list[str]]:
    return {"path": list(path)}


class DagsterClient:
    """Async GraphQL client bound to one webserver and one code location."""

    def __init__(self, settings: DagsterSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.graphql_url = settings.graphql_url
        self.location = settings.location_name
        self._http = httpx.AsyncClient(timeout=settings.request_timeout_s, transport=transport)

    # ------------------------------------------------------------------ links
    @property
    def ui_url(self) -> str:
        base = self.settings.ui_url or self.graphql_url.rsplit("/graphql", 1)[0]
        return base.rstrip("/")

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url}/runs/{run_id}"

    def backfill_url(self, backfill_id: str) -> str:
        return f"{self.ui_url}/runs/b/{backfill_id}"

    def asset_url(self, path: Sequence[str]) -> str:
        return f"{self.ui_url}/assets/{'/'.join(path)}"

    # --------------------------------------------------------------- transport
    async def execute(self, query: str, variables: Mapping[str, Any] | None = None, *,
                      timeout_s: float | None = None) -> dict[str, Any]:
        """POST one GraphQL document; network trouble and 5xx become ``DagsterUnavailable``."""
        try:
            resp = await self._http.post(
                self.graphql_url, json={"query": query, "variables": dict(variables or {})},
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as e:
            raise DagsterUnavailable("Dagster did not answer in time") from e
        except httpx.HTTPError as e:
            raise DagsterUnavailable(f"Dagster is unreachable ({type(e).__name__})") from e
        if resp.status_code >= 500:
            raise DagsterUnavailable(f"Dagster answered HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as e:
            raise DagsterUnavailable(f"Dagster answered HTTP {resp.status_code} without JSON") from e
        if body.get("errors"):
            messages = "; ".join(str(err.get("message", err)) for err in body["errors"])
            raise DagsterError(f"Dagster GraphQL error: {messages}", "GraphQLError")
        data: dict[str, Any] = body.get("data") or {}
        return data

    async def aclose(self) -> None:
        await self._http.aclose()

    # ----------------------------------------------------------------- health
    async def ping(self, timeout_s: float = 2.0) -> str:
        """Dagster's version string; raises ``DagsterUnavailable`` when it is down."""
        data = await self.execute("query Ping { version }", timeout_s=timeout_s)
        return str(data.get("version", ""))

    # ---------------------------------------------------------- code location
    async def reload_location(self, *, timeout_s: float = 120.0) -> None:
        """``reloadRepositoryLocation`` and wait until the location is loaded again.

        A code-location load error raises ``DagsterError`` with Dagster's message.
        """
        entry_fields = """
              __typename
              ... on WorkspaceLocationEntry {
                loadStatus
                locationOrLoadError { __typename ... on PythonError { message } }
              }
              """ + _ERROR_FRAGMENT
        reload = ("mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {"
                  + entry_fields + "} }")
        status = ("query Location($name: String!) { workspaceLocationEntryOrError(name: $name) {"
                  + entry_fields + "} }")
        deadline = time.monotonic() + timeout_s
        data = await self.execute(reload, {"name": self.location}, timeout_s=timeout_s)
        entry = data["reloadRepositoryLocation"]
        while not self._loaded(entry):
            if time.monotonic() > deadline:
                raise DagsterUnavailable(f"code location {self.location!r} still loading after {timeout_s:g} s")
            await asyncio.sleep(0.25)
            entry = (await self.execute(status, {"name": self.location}))["workspaceLocationEntryOrError"]

    def _loaded(self, entry: Mapping[str, Any] | None) -> bool:
        """True once loaded; raises ``DagsterError`` on a load error; False while loading."""
        if entry is None:
            return False
        kind = entry["__typename"]
        if kind != "WorkspaceLocationEntry":
            raise DagsterError(entry.get("message") or f"reload of code location {self.location!r} failed", kind)
        loaded = entry.get("locationOrLoadError") or {}
        if loaded.get("__typename") == "PythonError":
            raise DagsterError(f"code location {self.location!r} failed to load: {loaded.get('message', '')}",
                               "PythonError")
        return entry.get("loadStatus") == "LOADED" and bool(loaded)

    async def asset_exists(self, path: Sequence[str]) -> bool:
        query = "query Asset($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } } }"
        data = await self.execute(query, {"keys": [_asset_key(path)]})
        return any(n["assetKey"]["path"] == list(path) for n in data.get("assetNodes") or [])

    async def partition_keys(self, path: Sequence[str]) -> list[str]:
        query = """
        query Keys($key: AssetKeyInput!) {
          assetNodeOrError(assetKey: $key) { __typename ... on AssetNode { isPartitioned partitionKeys } }
        }"""
        data = await self.execute(query, {"key": _asset_key(path)})
        node = data["assetNodeOrError"]
        if node["__typename"] != "AssetNode":
            raise DagsterError(f"asset {'/'.join(path)} is not in Dagster; reload the code location", "AssetNotFoundError")
        return list(node.get("partitionKeys") or [])

    # --------------------------------------------------------------- launching
    async def launch_run(self, path: Sequence[str], *, partition: str | None = None,
                         tags: Mapping[str, str] | None = None,
                         run_config: Mapping[str, Any] | None = None) -> RunInfo:
        """Materialize one asset (one partition, or the whole unpartitioned asset)."""
        all_tags = dict(tags or {})
        if partition is not None:
            all_tags[PARTITION_TAG] = partition
        query = """
        mutation Launch($params: ExecutionParams!) {
          launchRun(executionParams: $params) {
            __typename
            ... on LaunchRunSuccess { run { runId status creationTime startTime endTime tags { key value } } }
            ... on InvalidSubsetError { message }
            ... on RunConfigValidationInvalid { errors { message } }
            """ + _ERROR_FRAGMENT + """
          }
        }"""
        params = {
            "selector": {
                "repositoryLocationName": self.location, "repositoryName": REPOSITORY, "jobName": ASSET_JOB,
                # No assetCheckSelection: null runs the selected asset's own checks with it. An empty
                # list would ask for the asset without its checks, which Dagster refuses for an
                # asset that declares check specs (it cannot be subset).
                "assetSelection": [_asset_key(path)],
            },
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
        }
        data = await self.execute(query, {"params": params})
        result = data["launchRun"]
        kind = result["__typename"]
        if kind != "LaunchRunSuccess":
            message = result.get("message") or "; ".join(e["message"] for e in result.get("errors") or []) or kind
            raise DagsterError(f"Dagster refused the run: {message}", kind)
        return _run_from(result["run"])

    async def launch_backfill(self, path: Sequence[str], partitions: Sequence[str], *,
                              tags: Mapping[str, str] | None = None, title: str | None = None,
                              run_config: Mapping[str, Any] | None = None) -> str:
        """An asset backfill of ``partitions`` of one asset; returns the backfill id."""
        query = """
        mutation Backfill($params: LaunchBackfillParams!) {
          launchPartitionBackfill(backfillParams: $params) {
            __typename
            ... on LaunchBackfillSuccess { backfillId }
            ... on PartitionKeysNotFoundError { message partitionKeys }
            """ + _ERROR_FRAGMENT + """
          }
        }"""
        params: dict[str, Any] = {
            "assetSelection": [_asset_key(path)], "partitionNames": list(partitions), "fromFailure": False,
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        }
        if title:
            params["title"] = title
        if run_config:
            params["runConfigData"] = dict(run_config)
        data = await self.execute(query, {"params": params})
        result = data["launchPartitionBackfill"]
        kind = result["__typename"]
        if kind != "LaunchBackfillSuccess":
            raise DagsterError(f"Dagster refused the backfill: {result.get('message') or kind}", kind)
        return str(result["backfillId"])

    # ------------------------------------------------------------------ status
    async def run(self, run_id: str) -> RunInfo | None:
        query = "query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run {" + _RUN_FIELDS + "} } }"
        data = await self.execute(query, {"id": run_id})
        result = data["runOrError"]
        if result["__typename"] == "RunNotFoundError":
            return None
        if result["__typename"] != "Run":
            raise DagsterError(result.get("message") or "could not read the run", result["__typename"])
        return _run_from(result)

    async def retry_of(self, run_id: str) -> RunInfo | None:
        """The run Dagster launched to retry ``run_id``, if there is one yet."""
        query = ("query Retry($filter: RunsFilter, $limit: Int) { runsOrError(filter: $filter, limit: $limit) { "
                 "__typename ... on Runs { results {" + _RUN_FIELDS + "} } } }")
        data = await self.execute(query, {"filter": {"tags": [{"key": PARENT_RUN_TAG, "value": run_id}]}, "limit": 1})
        runs = data["runsOrError"]
        if runs["__typename"] != "Runs" or not runs.get("results"):
            return None
        return _run_from(runs["results"][0])

    async def run_errors(self, run_id: str, limit: int = 500) -> list[str]:
        """Dagster's error messages for a run: step failures first, then the run failure."""
        query = """
        query Logs($id: ID!, $limit: Int) {
          logsForRun(runId: $id, limit: $limit) {
            __typename
            ... on EventConnection { events {
              __typename
              ... on ExecutionStepFailureEvent { stepKey message error { message causes { message } } }
              ... on RunFailureEvent { message error { message causes { message } } }
              ... on EngineEvent { message level error { message causes { message } } }
            } }
          }
        }"""
        data = await self.execute(query, {"id": run_id, "limit": limit})
        conn = data["logsForRun"]
        if conn["__typename"] != "EventConnection":
            return []
        steps: list[str] = []
        others: list[str] = []
        for ev in conn.get("events") or []:
            kind = ev.get("__typename")
            error = ev.get("error") or {}
            causes = error.get("causes") or []
            # The root cause is the user-facing message ("SourceError: table … does not exist");
            # the outer error is Dagster's "Error occurred while executing op …" wrapper.
            err = clean_message((causes[-1].get("message") if causes else None) or error.get("message"))
            if kind == "ExecutionStepFailureEvent":
                steps.append(err or clean_message(ev.get("message")) or "step failed")
            elif kind == "RunFailureEvent":
                others.append(err or clean_message(ev.get("message")) or "run failed")
            elif kind == "EngineEvent" and err:
                others.append(err)
        return list(dict.fromkeys(steps + others))

    async def backfill(self, backfill_id: str) -> BackfillInfo | None:
        query = """
        query Backfill($id: String!) {
          partitionBackfillOrError(backfillId: $id) {
            __typename
            ... on PartitionBackfill {
              id status partitionNames timestamp endTimestamp
              error { message }
              assetBackfillData { assetBackfillStatuses {
                __typename
                ... on AssetPartitionsStatusCounts {
                  numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed
                }
              } }
              runs(limit: 1000) {""" + _RUN_FIELDS + """}
            }
            """ + _ERROR_FRAGMENT + """
          }
        }"""
        data = await self.execute(query, {"id": backfill_id})
        result = data["partitionBackfillOrError"]
        if result["__typename"] == "BackfillNotFoundError":
            return None
        if result["__typename"] != "PartitionBackfill":
            raise DagsterError(result.get("message") or "could not read the backfill", result["__typename"])
        counts = {"numPartitionsTargeted": 0, "numPartitionsInProgress": 0, "numPartitionsMaterialized": 0,
                  "numPartitionsFailed": 0}
        for status in (result.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []:
            for name in counts:
                counts[name] += int(status.get(name) or 0)
        names = tuple(result.get("partitionNames") or ())
        return BackfillInfo(
            backfill_id=result["id"], status=result["status"], partitions=names,
            created_at=result.get("timestamp"), ended_at=result.get("endTimestamp"),
            targeted=counts["numPartitionsTargeted"] or len(names), materialized=counts["numPartitionsMaterialized"],
            failed=counts["numPartitionsFailed"], in_progress=counts["numPartitionsInProgress"],
            runs=tuple(_run_from(r) for r in result.get("runs") or []),
            error=clean_message((result.get("error") or {}).get("message")) or None,
        )

    async def recent_durations(self, tag_key: str, tag_value: str, *, limit: int = 10) -> list[float]:
        """Creation-to-end seconds of the latest successful runs carrying this tag, newest first."""
        query = """
        query Durations($filter: RunsFilter, $limit: Int) {
          runsOrError(filter: $filter, limit: $limit) { __typename ... on Runs { results { creationTime endTime } } }
        }"""
        variables = {"filter": {"tags": [{"key": tag_key, "value": tag_value}], "statuses": ["SUCCESS"]},
                     "limit": limit}
        data = await self.execute(query, variables)
        runs = data["runsOrError"]
        if runs["__typename"] != "Runs":
            return []
        return [r["endTime"] - r["creationTime"] for r in runs.get("results") or []
                if r.get("endTime") and r.get("creationTime") and r["endTime"] >= r["creationTime"]]

    async def freshness_statuses(self, paths: Sequence[Sequence[str]], *, timeout_s: float | None = None
                                 ) -> dict[tuple[str, ...], str | None]:
        """Dagster's own freshness verdict per asset (``freshnessStatusInfo``), in one query.

        Values: HEALTHY, WARNING, DEGRADED, UNKNOWN, NOT_APPLICABLE; None when Dagster has none.
        """
        query = """
        query Freshness($keys: [AssetKeyInput!]!) {
          assetNodes(assetKeys: $keys) { assetKey { path } freshnessStatusInfo { freshnessStatus } }
        }"""
        data = await self.execute(query, {"keys": [_asset_key(p) for p in paths]}, timeout_s=timeout_s)
        return {tuple(n["assetKey"]["path"]): (n.get("freshnessStatusInfo") or {}).get("freshnessStatus")
                for n in data.get("assetNodes") or []}

    async def asset_activity(self, path: Sequence[str]) -> AssetActivity:
        """Runs queued or in progress for an asset, whoever launched them (schedules, sensors, UI)."""
        query = """
        query Latest($keys: [AssetKeyInput!]!) {
          assetsLatestInfo(assetKeys: $keys) {
            unstartedRunIds inProgressRunIds
            latestRun { runId status creationTime startTime endTime tags { key value } }
          }
        }"""
        data = await self.execute(query, {"keys": [_asset_key(path)]})
        infos = data.get("assetsLatestInfo") or []
        if not infos:
            return AssetActivity((), (), None)
        info = infos[0]
        latest = info.get("latestRun")
        return AssetActivity(
            in_progress=tuple(info.get("inProgressRunIds") or ()), unstarted=tuple(info.get("unstartedRunIds") or ()),
            latest_run=_run_from(latest) if latest else None,
        )
