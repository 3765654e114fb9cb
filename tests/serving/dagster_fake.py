"""A small fake of Dagster's GraphQL API for the sync feature's unit tests.

It answers the operations ``serving.sync.dagster.DagsterClient`` sends (by operation
name) from in-memory state, over an ``httpx.MockTransport``, so the real client code
runs. The code location is simulated from the real registry: ``reloadRepositoryLocation``
re-reads the registered tables from the control database, like the real factory does.
Tests drive runs with :meth:`FakeDagster.finish`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from typing import Any

import httpx

from serving.sync.dagster import DagsterClient
from shared import registry
from shared.settings import DagsterSettings


@dataclasses.dataclass
class FakeRun:
    run_id: str
    path: list[str]
    tags: dict[str, str]
    status: str = "QUEUED"
    created: float = dataclasses.field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    rows: int | None = None
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def partition(self) -> str | None:
        return self.tags.get("dagster/partition")


@dataclasses.dataclass
class FakeBackfill:
    backfill_id: str
    path: list[str]
    partitions: list[str]
    tags: dict[str, str]
    status: str = "REQUESTED"
    run_ids: list[str] = dataclasses.field(default_factory=list)
    created: float = dataclasses.field(default_factory=time.time)


class FakeDagster:
    """In-memory Dagster: assets from the registry, runs, backfills, and a switch to be 'down'."""

    def __init__(self, control_url: str, *, partition_keys: dict[str, list[str]] | None = None) -> None:
        self.control_url = control_url
        self.assets: set[tuple[str, ...]] = set()
        self.partition_keys = partition_keys or {}
        self.runs: dict[str, FakeRun] = {}
        self.backfills: dict[str, FakeBackfill] = {}
        self.down = False
        self.reload_error: str | None = None
        self.fail_runs_with: str | None = None  # new runs fail at once with this error
        self.calls: list[str] = []
        self.launch_params: list[dict[str, Any]] = []
        self.freshness: dict[tuple[str, ...], str] = {}  # Dagster's freshnessStatus per asset
        self.reload()

    # ------------------------------------------------------------- test API
    def client(self, settings: DagsterSettings | None = None) -> DagsterClient:
        settings = settings or DagsterSettings(graphql_url="http://dagster.test/graphql")
        return DagsterClient(settings, transport=httpx.MockTransport(self.handle))

    def reload(self) -> None:
        self.assets = {tuple(r.asset_key_path) for r in registry.list_registered(self.control_url)}

    def finish(self, run_id: str, status: str = "SUCCESS", *, rows: int | None = None,
               error: str | None = None) -> FakeRun:
        run = self.runs[run_id]
        run.status = status
        run.started = run.started or time.time()
        run.ended = time.time()
        run.rows = rows
        if error:
            run.errors.append(error)
        return run

    def start(self, run_id: str) -> None:
        self.runs[run_id].status, self.runs[run_id].started = "STARTED", time.time()

    def add_run(self, path: list[str], status: str = "STARTED", partition: str | None = None) -> FakeRun:
        tags = {"dagster/partition": partition} if partition else {}
        run = FakeRun(run_id=str(uuid.uuid4()), path=path, tags=tags, status=status, started=time.time())
        self.runs[run.run_id] = run
        return run

    # ------------------------------------------------------------ transport
    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content)
        match = re.search(r"(query|mutation)\s+(\w+)", body["query"])
        op = match.group(2) if match else "?"
        self.calls.append(op)
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            return httpx.Response(200, json={"errors": [{"message": f"unknown operation {op}"}]})
        return httpx.Response(200, json={"data": handler(body.get("variables") or {})})

    def _run_json(self, run: FakeRun) -> dict[str, Any]:
        mats = []
        if run.status == "SUCCESS":
            entries = []
            if run.rows is not None:
                entries = [{"label": "dagster/row_count", "intValue": run.rows, "intRepr": str(run.rows)}]
            mats.append({"partition": run.partition, "metadataEntries": entries})
        return {"runId": run.run_id, "status": run.status, "creationTime": run.created, "startTime": run.started,
                "endTime": run.ended, "tags": [{"key": k, "value": v} for k, v in run.tags.items()],
                "assetMaterializations": mats}

    def _op_Ping(self, _v: dict[str, Any]) -> dict[str, Any]:
        return {"version": "1.13.27-fake"}

    def _op_Reload(self, _v: dict[str, Any]) -> dict[str, Any]:
        if self.reload_error:
            return {"reloadRepositoryLocation": {"__typename": "WorkspaceLocationEntry", "loadStatus": "LOADED",
                                                 "locationOrLoadError": {"__typename": "PythonError",
                                                                         "message": self.reload_error}}}
        self.reload()
        return {"reloadRepositoryLocation": {"__typename": "WorkspaceLocationEntry", "loadStatus": "LOADED",
                                             "locationOrLoadError": {"__typename": "RepositoryLocation"}}}

    def _op_Asset(self, v: dict[str, Any]) -> dict[str, Any]:
        keys = [tuple(k["path"]) for k in v["keys"]]
        return {"assetNodes": [{"assetKey": {"path": list(k)}} for k in keys if k in self.assets]}

    def _op_Freshness(self, v: dict[str, Any]) -> dict[str, Any]:
        keys = [tuple(k["path"]) for k in v["keys"]]
        return {"assetNodes": [{"assetKey": {"path": list(k)},
                                "freshnessStatusInfo": {"freshnessStatus": self.freshness[k]} if k in self.freshness else None}
                               for k in keys if k in self.assets]}

    def _op_Keys(self, v: dict[str, Any]) -> dict[str, Any]:
        path = tuple(v["key"]["path"])
        if path not in self.assets:
            return {"assetNodeOrError": {"__typename": "AssetNotFoundError"}}
        keys = self.partition_keys.get("/".join(path), [])
        return {"assetNodeOrError": {"__typename": "AssetNode", "isPartitioned": bool(keys), "partitionKeys": keys}}

    def _op_Launch(self, v: dict[str, Any]) -> dict[str, Any]:
        params = v["params"]
        self.launch_params.append(params)
        selection = params["selector"].get("assetSelection")
        if not selection:  # the trap measured on real Dagster: no selection runs every asset
            return {"launchRun": {"__typename": "PythonError", "message": "no asset selection: would run every asset"}}
        path = selection[0]["path"]
        if tuple(path) not in self.assets:
            return {"launchRun": {"__typename": "InvalidSubsetError", "message": f"asset {path} not found"}}
        tags = {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}
        run = FakeRun(run_id=str(uuid.uuid4()), path=path, tags=tags)
        self.runs[run.run_id] = run
        if self.fail_runs_with:
            self.finish(run.run_id, "FAILURE", error=self.fail_runs_with)
        return {"launchRun": {"__typename": "LaunchRunSuccess", "run": self._run_json(run)}}

    def _op_Backfill(self, v: dict[str, Any]) -> dict[str, Any]:
        if "params" in v:
            params = v["params"]
            self.launch_params.append(params)
            path = params["assetSelection"][0]["path"]
            known = self.partition_keys.get("/".join(path), [])
            missing = [p for p in params["partitionNames"] if p not in known]
            if missing:
                return {"launchPartitionBackfill": {"__typename": "PartitionKeysNotFoundError",
                                                    "message": f"partitions not found: {missing}", "partitionKeys": missing}}
            bid = uuid.uuid4().hex[:8]
            tags = {t["key"]: t["value"] for t in params.get("tags") or []}
            bf = FakeBackfill(bid, path, list(params["partitionNames"]), tags)
            for p in bf.partitions:
                run = FakeRun(run_id=str(uuid.uuid4()), path=path, tags={**tags, "dagster/partition": p})
                self.runs[run.run_id] = run
                bf.run_ids.append(run.run_id)
            self.backfills[bid] = bf
            return {"launchPartitionBackfill": {"__typename": "LaunchBackfillSuccess", "backfillId": bid}}
        bf = self.backfills.get(v["id"])
        if bf is None:
            return {"partitionBackfillOrError": {"__typename": "BackfillNotFoundError", "message": "nope"}}
        runs = [self.runs[r] for r in bf.run_ids]
        done = sum(r.status == "SUCCESS" for r in runs)
        failed = sum(r.status == "FAILURE" for r in runs)
        status = bf.status
        if done + failed == len(runs):
            status = "COMPLETED_SUCCESS" if not failed else "COMPLETED_FAILED"
        return {"partitionBackfillOrError": {
            "__typename": "PartitionBackfill", "id": bf.backfill_id, "status": status,
            "partitionNames": bf.partitions, "timestamp": bf.created,
            "endTimestamp": time.time() if status.startswith("COMPLETED") else None, "error": None,
            "assetBackfillData": {"assetBackfillStatuses": [{
                "__typename": "AssetPartitionsStatusCounts", "numPartitionsTargeted": len(runs),
                "numPartitionsInProgress": len(runs) - done - failed, "numPartitionsMaterialized": done,
                "numPartitionsFailed": failed}]},
            "runs": [self._run_json(r) for r in reversed(runs)],
        }}

    def _op_Run(self, v: dict[str, Any]) -> dict[str, Any]:
        run = self.runs.get(v["id"])
        if run is None:
            return {"runOrError": {"__typename": "RunNotFoundError", "message": "no run"}}
        return {"runOrError": {"__typename": "Run", **self._run_json(run)}}

    def _op_Retry(self, v: dict[str, Any]) -> dict[str, Any]:
        tags = {t["key"]: t["value"] for t in v["filter"]["tags"]}
        runs = [r for r in reversed(list(self.runs.values())) if all(r.tags.get(k) == val for k, val in tags.items())]
        return {"runsOrError": {"__typename": "Runs", "results": [self._run_json(r) for r in runs[: v.get("limit") or 1]]}}

    def _op_Logs(self, v: dict[str, Any]) -> dict[str, Any]:
        run = self.runs.get(v["id"])
        events = [{"__typename": "ExecutionStepFailureEvent", "stepKey": "s", "message": "step failed",
                   "error": {"message": e}} for e in (run.errors if run else [])]
        if run and run.status == "FAILURE":
            events.append({"__typename": "RunFailureEvent", "message": "Execution of run failed.", "error": None})
        return {"logsForRun": {"__typename": "EventConnection", "events": events}}

    def _op_Durations(self, v: dict[str, Any]) -> dict[str, Any]:
        tags = {t["key"]: t["value"] for t in v["filter"]["tags"]}
        runs = [r for r in reversed(list(self.runs.values()))
                if r.status == "SUCCESS" and all(r.tags.get(k) == val for k, val in tags.items())]
        return {"runsOrError": {"__typename": "Runs", "results": [
            {"creationTime": r.created, "endTime": r.ended} for r in runs[: v.get("limit") or 10]]}}

    def _op_Latest(self, v: dict[str, Any]) -> dict[str, Any]:
        out = []
        for key in v["keys"]:
            runs = [r for r in self.runs.values() if r.path == key["path"]]
            out.append({
                "unstartedRunIds": [r.run_id for r in runs if r.status in ("QUEUED", "NOT_STARTED")],
                "inProgressRunIds": [r.run_id for r in runs if r.status in ("STARTING", "STARTED")],
                "latestRun": self._run_json(runs[-1]) if runs else None,
            })
        return {"assetsLatestInfo": out}
