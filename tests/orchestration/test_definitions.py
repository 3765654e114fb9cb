"""The code location: definitions load from the registry, the factory's exact shape, and reload semantics.

The reload test runs the Dagster webserver as a real process on a loopback port with the
repository's workspace.yaml, changes the registry, and reloads the code location through
GraphQL ``reloadRepositoryLocation`` (the mutation the API calls).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from orchestration.assets import GROUP_NAME, build_table_asset
from orchestration.checks import PRIMARY_KEY_CHECK, ROW_COUNT_CHECK, SCHEMA_DRIFT_CHECK
from orchestration.definitions import load_definitions
from shared import processes, registry
from shared.control.db import migrate
from shared.dagster_names import TABLE_TAG, table_pool
from shared.registry import build_registration
from shared.settings import Settings
from tests.orchestration.conftest import reload_code_location

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "agents_data"


def _register(settings: Settings, name: str, **raw: object) -> None:
    migrate(settings.control_url)
    registry.save(settings.control_url, build_registration({"schema_name": "public", "table_name": name, **raw},
                                                           default_database="demo"))


def test_definitions_hold_one_asset_per_registration(settings: Settings) -> None:
    _register(settings, "orders", partitioning={"kind": "daily", "column": "ORDERED_AT", "start": "2025-01-01"},
              freshness="26h", primary_key=["ORDER_ID"], description="Orders")
    _register(settings, "customers")
    defs = load_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert {k.path[-1] for k in graph.get_all_asset_keys()} == {"orders", "customers"}
    assert set(defs.resources or {}) >= {"snowflake", "served"}
    assert defs.resolve_implicit_global_asset_job_def() is not None  # everything resolves together


def test_factory_makes_the_exact_asset(settings: Settings) -> None:
    table = build_registration({"schema_name": "Public", "table_name": "Orders", "primary_key": ["ORDER_ID"],
                                "partitioning": {"kind": "daily", "column": "ORDERED_AT", "start": "2025-01-01"},
                                "freshness": "2h", "description": "All orders."}, default_database="Demo")
    asset = build_table_asset(table=table)
    key = dg.AssetKey(["demo", "public", "orders"])
    assert asset.key == key
    spec = asset.specs_by_key[key]
    assert spec.group_name == GROUP_NAME
    assert spec.kinds == {"snowflake", "duckdb"}
    assert spec.description is not None
    assert spec.description.startswith("All orders.")
    assert spec.tags[TABLE_TAG] == "demo.public.orders"
    assert asset.op.pool == table_pool("demo.public.orders")
    assert spec.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=2))
    assert isinstance(asset.partitions_def, dg.TimeWindowPartitionsDefinition)
    assert asset.backfill_policy is not None
    assert asset.backfill_policy.max_partitions_per_run == 30
    assert {c.name for c in asset.check_specs} == {ROW_COUNT_CHECK, SCHEMA_DRIFT_CHECK, PRIMARY_KEY_CHECK}


@pytest.fixture
def webserver(settings: Settings, fakesnow_port: int, tmp_path: Path) -> Iterator[str]:
    """``dagster-webserver`` on a free loopback port, loading workspace.yaml; stopped by PID (group first).

    ``demo.public.orders`` is registered before it starts, so the first load holds it.
    """
    _register(settings, "orders")
    port = processes.free_port()
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "AGENTS_DATA_HOME": settings.home,
           "DATABASE_URL": settings.control_url, "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(fakesnow_port),
           "SNOWFLAKE_PROTOCOL": "http", "DAGSTER_LOCATION_NAME": LOCATION}
    log = tmp_path / "webserver.log"
    proc = processes.start([sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port),
                            "-w", str(ROOT / "workspace.yaml")], env=env, cwd=ROOT, log_path=log)
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/server_info", proc=proc, timeout_s=300)
        reload_code_location(f"http://127.0.0.1:{port}/graphql", LOCATION, timeout_s=300)  # returns once loaded
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        processes.stop(proc, grace_s=5)


def _asset_names(url: str) -> set[str]:
    body = httpx.post(url, json={"query": "{ assetNodes { assetKey { path } } }"}, timeout=120).json()
    return {"/".join(n["assetKey"]["path"]) for n in body["data"]["assetNodes"]}


@pytest.mark.e2e
def test_reloading_the_code_location_follows_the_registry(settings: Settings, webserver: str) -> None:
    assert _asset_names(webserver) == {"demo/public/orders"}
    # One registry change that adds a table and removes another; one reload shows both.
    _register(settings, "customers")
    registry.soft_delete(settings.control_url, "demo.public.orders")
    reload_code_location(webserver, LOCATION, timeout_s=300)
    assert _asset_names(webserver) == {"demo/public/customers"}
