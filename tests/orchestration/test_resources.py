"""The Snowflake resource really reaches the configured endpoint; host/port/protocol are never dropped."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pytest

from orchestration.resources import ServedDataResource, SnowflakeSource, snowflake_resource, source_connection
from shared.settings import Settings


def test_resource_built_from_env_reaches_the_stand_in(settings: Settings, fakesnow_port: int) -> None:
    env = {"SNOWFLAKE_USER": "fake", "SNOWFLAKE_PASSWORD": "snow", "SNOWFLAKE_HOST": "127.0.0.1",
           "SNOWFLAKE_PORT": str(fakesnow_port), "SNOWFLAKE_PROTOCOL": "http"}
    resource = snowflake_resource(Settings.from_env({**env, "AGENTS_DATA_HOME": settings.home}), env=env)
    args = resource.additional_snowflake_connection_args or {}
    assert (args["host"], args["port"], args["protocol"]) == ("127.0.0.1", fakesnow_port, "http")
    assert args["arrow_number_to_decimal"] is True
    with source_connection(resource) as con:
        # The connection went where we said: if host/port were dropped it would target
        # fakesnow.snowflakecomputing.com and fail (this sandbox has no route there).
        assert (con.host, con.port) == ("127.0.0.1", fakesnow_port)
        cur = con.cursor()
        cur.execute("SELECT 41 + 1")
        assert cur.fetchone() == (42,)


def test_credentials_are_env_vars_when_set(settings: Settings) -> None:
    env = {"SNOWFLAKE_ACCOUNT": "acme-xy123", "SNOWFLAKE_USER": "svc", "SNOWFLAKE_PASSWORD": "secret",
           "SNOWFLAKE_WAREHOUSE": "WH", "SNOWFLAKE_ROLE": "READER"}
    resource = snowflake_resource(Settings.from_env({**env, "AGENTS_DATA_HOME": settings.home}), env=env)
    for field, var in [("account", "SNOWFLAKE_ACCOUNT"), ("user", "SNOWFLAKE_USER"), ("password", "SNOWFLAKE_PASSWORD"),
                       ("warehouse", "SNOWFLAKE_WAREHOUSE"), ("role", "SNOWFLAKE_ROLE")]:
        assert resource._get_non_default_public_field_values()[field] == dg.EnvVar(var)
    assert "host" not in (resource.additional_snowflake_connection_args or {})  # real account: connector default


def test_keyword_host_port_are_refused_not_dropped() -> None:
    """dagster-snowflake's resource silently drops host/port keywords (the trap the factory
    avoided); ours refuses them, so a stand-in configuration can never reach real Snowflake."""
    kwargs = {"account": "fakesnow", "user": "u", "password": "p", "host": "127.0.0.1", "port": 1, "protocol": "http"}
    with pytest.raises(Exception, match="host"):
        SnowflakeSource(**kwargs)  # type: ignore[arg-type]


def test_the_run_worker_never_imports_snowpark_or_snowflake_core() -> None:
    """The code location (what every run worker imports before its step) stays off Snowpark
    and snowflake.core, which cost seconds per run worker start."""
    import subprocess
    import sys

    code = ("import sys, orchestration.definitions, orchestration.resources; "
            "print(sorted(m for m in sys.modules if m.startswith(('snowflake.snowpark', 'snowflake.core', "
            "'dagster_snowflake'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"


def test_embedded_default_points_at_the_demo_port(settings: Settings) -> None:
    embedded = Settings.from_env({"AGENTS_DATA_HOME": settings.home, "DEMO_SNOWFLAKE_PORT": "18765"})
    args = snowflake_resource(embedded, env={}).additional_snowflake_connection_args or {}
    assert (args["host"], args["port"], args["protocol"]) == ("127.0.0.1", 18765, "http")


def test_served_resource_defaults_come_from_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration import resources

    monkeypatch.setattr(ServedDataResource, "settings", lambda self: dataclasses.replace(settings))
    res = ServedDataResource()
    assert res.served_root() == settings.served_path
    assert res.control_db() == settings.control_url
    assert res.rows_per_slice() == settings.snowflake.slice_rows
    assert ServedDataResource(home="/x", slice_rows=7).served_root().as_posix() == "/x/served"
    assert resources.SNOWFLAKE_RESOURCE_KEY == "snowflake"


def test_the_password_is_always_an_env_var_even_for_the_stand_in(settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster shows resource config to whoever reads its UI: a literal password would be shown."""
    monkeypatch.delenv("SNOWFLAKE_PASSWORD", raising=False)
    embedded = Settings.from_env({"AGENTS_DATA_HOME": settings.home})
    resource = snowflake_resource(embedded, env={})
    assert resource._get_non_default_public_field_values()["password"] == dg.EnvVar("SNOWFLAKE_PASSWORD")
    import os

    assert os.environ["SNOWFLAKE_PASSWORD"] == embedded.snowflake.password, "run workers inherit the default"
