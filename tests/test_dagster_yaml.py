"""Every shipped Dagster instance file validates against Dagster's own config schemas.

The most honest offline check: (1) the instance-level schema, exactly as Dagster loads
``dagster.yaml`` (``dagster_instance_config``); (2) each configurable class (run
launcher, coordinator) imported for real and its config validated against that
class's own ``config_type()``, with ``{env: ...}`` values resolved from a test
environment; (3) where no cluster or broker is needed, the instance or launcher is
actually built. dagster-k8s and dagster-celery are dev dependencies for this test only.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config, validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import class_from_code_pointer

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = sorted([*ROOT.glob("dagster*.yaml"), *(ROOT / "deploy").glob("dagster*.yaml")])
CLASS_SECTIONS = ("run_launcher", "run_coordinator", "scheduler", "compute_logs", "local_artifact_storage")
ENV = {
    "DAGSTER_PG_URL": "postgresql://dagster@127.0.0.1:5432/dagster",
    "DAGSTER_K8S_JOB_IMAGE": "registry.example/agents-data:1.0",
    "DAGSTER_K8S_NAMESPACE": "agents-data",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "agents-data-dagster-instance",
    "DAGSTER_CELERY_BROKER_URL": "memory://",
    "DAGSTER_CELERY_BACKEND_URL": "cache+memory://",
}


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_all_four_variants_are_shipped() -> None:
    names = {str(p.relative_to(ROOT)) for p in VARIANTS}
    assert names == {"dagster.yaml", "dagster.postgres.yaml", "deploy/dagster.k8s.yaml", "deploy/dagster.celery.yaml"}


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.name)
def test_variant_passes_dagster_instance_schema(path: Path, tmp_path: Path) -> None:
    shutil.copyfile(path, tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert config["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.name)
def test_each_configurable_class_resolves_and_validates_its_own_config(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    raw = _load(path)
    for section in CLASS_SECTIONS:
        if section not in raw:
            continue
        data = raw[section]
        klass = class_from_code_pointer(data["module"], data["class"])
        shape = klass.config_type()
        checked = validate_config(shape, data.get("config") or {})
        assert checked.success, f"{path.name} {section}: {[e.message for e in checked.errors]}"
        processed = process_config(shape, data.get("config") or {})  # resolves {env: ...}
        assert processed.success, f"{path.name} {section}: {[e.message for e in processed.errors]}"


def test_a_misspelt_field_is_caught_by_this_validation(tmp_path: Path) -> None:
    """Guard against a validation that accepts anything."""
    from dagster._core.errors import DagsterInvalidConfigError

    raw = _load(ROOT / "dagster.yaml")
    raw["run_coordinator"]["config"]["dequeue_interval_secs"] = 1
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(raw))
    dagster_instance_config(str(tmp_path))  # the outer schema only checks module/class...
    klass = class_from_code_pointer(raw["run_coordinator"]["module"], raw["run_coordinator"]["class"])
    assert not validate_config(klass.config_type(), raw["run_coordinator"]["config"]).success  # ...this catches it
    raw["concurrency"]["pools"]["granularity"] = "table"
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(DagsterInvalidConfigError, match="granularity"):
        dagster_instance_config(str(tmp_path))


def test_shared_blocks_are_identical_in_every_variant() -> None:
    """Only storage and the launcher may differ; concurrency and monitoring are global policy."""
    local = _load(ROOT / "dagster.yaml")
    assert "storage" not in local, "the local default keeps SQLite under DAGSTER_HOME"
    for path in VARIANTS:
        raw = _load(path)
        for key in set(local) | set(raw):
            if key in ("storage", "run_launcher"):
                continue
            assert raw.get(key) == local.get(key), f"{path.name}: block {key!r} differs from dagster.yaml"
        if path.name != "dagster.yaml":
            assert raw["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}


def test_one_writer_per_table_is_enforced_by_tag_and_pool() -> None:
    from shared.dagster_names import TABLE_TAG

    conc = _load(ROOT / "dagster.yaml")["concurrency"]
    assert {"key": TABLE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in conc["runs"]["tag_concurrency_limits"]
    assert conc["pools"] == {"default_limit": 1, "granularity": "run"}


def test_local_default_instance_builds_with_sqlite_under_its_home(tmp_path: Path) -> None:
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator

    from orchestration.launcher import WarmRunLauncher

    shutil.copyfile(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.run_monitoring_max_runtime_seconds == 21600  # a hung sync fails, never blocks forever
        assert "sqlite" in type(instance.run_storage).__name__.lower()
        assert (tmp_path / "history").exists()
        assert instance.freshness_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()


def test_celery_launcher_builds_from_the_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the Celery app needs no broker connection, so do it for real."""
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    data = _load(ROOT / "deploy" / "dagster.celery.yaml")["run_launcher"]
    klass = class_from_code_pointer(data["module"], data["class"])
    value = process_config(klass.config_type(), data["config"]).value
    launcher = klass(**value)
    assert launcher.celery.conf.broker_url == "memory://"
    assert launcher.include == ["orchestration.definitions"]


@pytest.mark.postgres
def test_postgres_variant_builds_against_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os
    import secrets

    import sqlalchemy as sa

    pg = os.environ.get("TEST_POSTGRES_URL", "")
    if not pg:
        pytest.skip("TEST_POSTGRES_URL is not set (.ci/run sets it to the local PostgreSQL server)")
    from dagster import DagsterInstance

    from shared.control.db import normalize_url

    db = "dagster_yaml_" + secrets.token_hex(4)
    admin = sa.create_engine(normalize_url(pg), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{db}"'))
    try:
        monkeypatch.setenv("DAGSTER_PG_URL", pg.rsplit("/", 1)[0] + "/" + db)
        shutil.copyfile(ROOT / "dagster.postgres.yaml", tmp_path / "dagster.yaml")
        instance = DagsterInstance.from_config(str(tmp_path))
        try:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert instance.get_runs() == []
        finally:
            instance.dispose()
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("name", ["workspace.yaml", "deploy/workspace.grpc.yaml"])
def test_workspace_files_pass_dagster_workspace_schema_and_name_the_location(name: str) -> None:
    from dagster._core.workspace.config_schema import ensure_workspace_config

    from shared.settings import Settings

    raw = _load(ROOT / name)
    ensure_workspace_config(raw, str(ROOT / name))  # raises on an invalid workspace
    [entry] = raw["load_from"]
    target = entry.get("python_module") or entry["grpc_server"]
    assert target["location_name"] == Settings.from_env({}).dagster.location_name == "agents_data"
    if "python_module" in entry:
        assert target["module_name"] == "orchestration.definitions"
