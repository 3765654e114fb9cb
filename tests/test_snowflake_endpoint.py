"""Explicit endpoints win: the embedded stand-in is the default only when no account and no host is set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestration.resources import snowflake_resource
from shared import cli, demo
from shared.settings import Settings
from shared.snowflake import connect, connect_args


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"AGENTS_DATA_HOME": str(home), "DEMO_SNOWFLAKE_PORT": "18999", **extra}


def test_account_fakesnow_with_explicit_host_and_port_targets_them(home: Path, fakesnow_port: int) -> None:
    env = _env(home, SNOWFLAKE_ACCOUNT="fakesnow", SNOWFLAKE_HOST="127.0.0.1", SNOWFLAKE_PORT=str(fakesnow_port),
               SNOWFLAKE_PROTOCOL="http")
    settings = Settings.from_env(env)
    assert not settings.snowflake.embedded
    sf = demo.effective_snowflake(settings)
    assert (sf.host, sf.port, sf.protocol) == ("127.0.0.1", fakesnow_port, "http")
    args = connect_args(sf)
    assert (args["account"], args["host"], args["port"]) == ("fakesnow", "127.0.0.1", fakesnow_port)
    resource_args = snowflake_resource(settings, env=env).additional_snowflake_connection_args or {}
    assert (resource_args["host"], resource_args["port"]) == ("127.0.0.1", fakesnow_port)
    planned, starts_stand_in = cli.source_plan(settings)
    assert not starts_stand_in
    assert (planned.snowflake.host, planned.snowflake.port) == ("127.0.0.1", fakesnow_port)
    # and the explicit endpoint really answers (the session's fakesnow server, not the demo port)
    with connect(sf) as con:
        assert con.cursor().execute("select 41 + 1").fetchone()[0] == 42


def test_explicit_host_without_account_is_not_replaced(home: Path) -> None:
    settings = Settings.from_env(_env(home, SNOWFLAKE_HOST="10.1.2.3", SNOWFLAKE_PORT="4443"))
    assert not settings.snowflake.embedded
    planned, starts_stand_in = cli.source_plan(settings)
    assert not starts_stand_in
    assert (planned.snowflake.host, planned.snowflake.port) == ("10.1.2.3", 4443)
    assert (demo.effective_snowflake(settings).host, demo.effective_snowflake(settings).port) == ("10.1.2.3", 4443)


def test_real_account_without_host_is_never_the_stand_in(home: Path) -> None:
    settings = Settings.from_env(_env(home, SNOWFLAKE_ACCOUNT="acme-xy123"))
    planned, starts_stand_in = cli.source_plan(settings)
    assert not starts_stand_in
    assert planned.snowflake.host == ""
    assert "host" not in connect_args(demo.effective_snowflake(settings))


def test_no_account_and_no_host_uses_the_embedded_stand_in(home: Path) -> None:
    settings = Settings.from_env(_env(home))
    assert settings.snowflake.embedded
    planned, starts_stand_in = cli.source_plan(settings)
    assert starts_stand_in
    assert (planned.snowflake.host, planned.snowflake.port, planned.snowflake.protocol) == ("127.0.0.1", 18999, "http")
    sf = demo.effective_snowflake(settings)
    assert (sf.host, sf.port) == ("127.0.0.1", 18999)


def test_a_login_probes_no_cloud_metadata_endpoint(home: Path, fakesnow_port: int, monkeypatch: Any) -> None:
    """The connector's platform probes (telemetry only) would cost every login up to 0.2 s."""
    from snowflake.connector import platform_detection

    probed: list[str] = []
    for name in ("is_ec2_instance", "has_aws_identity", "is_azure_vm", "has_azure_managed_identity", "is_gce_vm",
                 "has_gcp_identity"):
        monkeypatch.setattr(platform_detection, name, lambda *_a, _n=name, **_k: probed.append(_n))
    env = _env(home, SNOWFLAKE_ACCOUNT="fakesnow", SNOWFLAKE_HOST="127.0.0.1", SNOWFLAKE_PORT=str(fakesnow_port),
               SNOWFLAKE_PROTOCOL="http")
    settings = Settings.from_env(env)
    with connect(demo.effective_snowflake(settings)) as con:
        assert con.cursor().execute("select 1").fetchone()[0] == 1
    with snowflake_resource(settings, env=env).get_connection() as con:
        assert con.cursor().execute("select 2").fetchone()[0] == 2
    assert probed == []
