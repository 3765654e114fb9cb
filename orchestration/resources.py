"""Resources of the code location: the Snowflake source and the served-data folder.

Why built by functions: values come from ``shared.settings`` when the definitions load,
never at import. Account names and the user are ``dg.EnvVar`` whenever the variable is
set, so the Dagster UI shows the variable's name and the value is resolved in each run
worker; unset (the embedded stand-in) they fall back to the stand-in's literals.

The password is *always* ``dg.EnvVar("SNOWFLAKE_PASSWORD")``: Dagster shows resource
config to anyone who can read its UI or GraphQL (``allTopLevelResourceDetails``), and a
literal would be shown as is. When the variable is unset (the embedded stand-in's
default password), the default is put into this process's environment, which the run
workers it starts inherit (and they resolve it the same way when they load the code).

Why not ``dagster_snowflake.SnowflakeResource``: importing ``dagster_snowflake`` imports
Snowpark and ``snowflake.core`` at module level (over 2 s per process with compiled
bytecode, several times that without), and every run worker is a fresh interpreter that
imports the code location before its step starts. A sync only ever uses the connector, so
``SnowflakeSource`` is a plain ``dg.ConfigurableResource`` with the same field names that
imports the connector when it connects. Endpoint fields (host, port, protocol) go in
``additional_snowflake_connection_args`` as before, and an unknown keyword is refused
rather than dropped (tested in tests/orchestration/test_resources.py).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import model_validator

from shared.demo import effective_snowflake
from shared.served_storage import ServedStore, open_store
from shared.settings import Settings, SnowflakeSettings, get_settings
from shared.snowflake import SourceError, endpoint_args

SNOWFLAKE_RESOURCE_KEY = "snowflake"
SERVED_RESOURCE_KEY = "served"
DEFAULT_EXTRACT_WORKERS = 2
APPLICATION = "agents_data"  # the connector's application name, seen in Snowflake's login history
PASSWORD_VAR = "SNOWFLAKE_PASSWORD"  # noqa: S105 - the variable's name, never its value
_ENV_FIELDS = {
    "account": "SNOWFLAKE_ACCOUNT", "user": "SNOWFLAKE_USER",
    "database": "SNOWFLAKE_DATABASE", "warehouse": "SNOWFLAKE_WAREHOUSE", "role": "SNOWFLAKE_ROLE",
}


def connection_args(sf: SnowflakeSettings) -> dict[str, Any]:
    """``additional_snowflake_connection_args``: endpoint, session parameters, exact decimals.

    ``arrow_number_to_decimal``: without it the connector turns NUMBER(p,s>0) into float64
    Arrow columns on real Snowflake (the stand-in happens to send decimals already).
    """
    return {**endpoint_args(sf), "arrow_number_to_decimal": True}


class SnowflakeSource(dg.ConfigurableResource):
    """The Snowflake source, through the connector only (no Snowpark, no ``snowflake.core``)."""

    account: str
    user: str
    password: str
    database: str | None = None
    warehouse: str | None = None
    role: str | None = None
    additional_snowflake_connection_args: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any) -> Any:
        """``host=...`` as a keyword is an error, never silently ignored."""
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(cls.model_fields))):
            raise ValueError(f"unknown Snowflake resource fields {unknown}: endpoint settings go in "
                             "additional_snowflake_connection_args")
        return data

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``snowflake.connector.connect``; the extra arguments win."""
        args: dict[str, Any] = {"account": self.account, "user": self.user, "password": self.password,
                                "application": APPLICATION}
        for name in ("database", "warehouse", "role"):
            if getattr(self, name):
                args[name] = getattr(self, name)
        return {**args, **(self.additional_snowflake_connection_args or {})}

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        import snowflake.connector  # only the step that reads the source pays for the connector

        con = snowflake.connector.connect(**self.connect_kwargs())
        try:
            yield con
        finally:
            con.close()


def snowflake_resource(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> SnowflakeSource:
    settings = settings or get_settings()
    env = os.environ if env is None else env
    sf = effective_snowflake(settings)
    if not os.environ.get(PASSWORD_VAR):
        os.environ[PASSWORD_VAR] = sf.password
    fields: dict[str, Any] = {"password": dg.EnvVar(PASSWORD_VAR)}
    for name, var in _ENV_FIELDS.items():
        if env.get(var):
            fields[name] = dg.EnvVar(var)
        elif name == "account":
            fields[name] = sf.account or "fakesnow"
        elif getattr(sf, name):
            fields[name] = getattr(sf, name)
    return SnowflakeSource(**fields, additional_snowflake_connection_args=connection_args(sf))


def describe_endpoint(resource: SnowflakeSource) -> str:
    args = resource.additional_snowflake_connection_args or {}
    host = args.get("host") or f"{resource.account}.snowflakecomputing.com"
    return f"{args.get('protocol', 'https')}://{host}:{args.get('port', 443)} as {resource.user!r}"


@contextmanager
def source_connection(resource: SnowflakeSource) -> Iterator[Any]:
    """A connector session from the resource; failing to connect is a ``SourceError`` naming the endpoint."""
    with ExitStack() as stack:
        try:
            con = stack.enter_context(resource.get_connection())
        except Exception as e:  # the connector raises many unrelated types for a dead endpoint or a bad login
            raise SourceError(
                f"Snowflake source unreachable or credentials refused at {describe_endpoint(resource)}: "
                f"{type(e).__name__}: {e}"
            ) from e
        yield con


class ServedDataResource(dg.ConfigurableResource):
    """Where served DuckDB data and the control database live, and how syncs slice.

    Empty fields resolve from ``shared.settings.get_settings()`` in the process that runs
    the materialization.
    """

    home: str = ""
    control_url: str = ""
    slice_rows: int = 0
    extract_workers: int = DEFAULT_EXTRACT_WORKERS

    def settings(self) -> Settings:
        return get_settings()

    def served_root(self) -> Path:
        return Path(self.home) / "served" if self.home else self.settings().served_path

    def store(self) -> ServedStore:
        """The served-data store (``SERVED_STORAGE``) rooted at ``served_root()``."""
        settings = self.settings()
        if self.home:
            settings = dataclasses.replace(settings, home=self.home)
        if self.control_url:
            settings = dataclasses.replace(settings, database_url=self.control_url)
        return open_store(settings)

    def control_db(self) -> str:
        return self.control_url or self.settings().control_url

    def rows_per_slice(self) -> int:
        return self.slice_rows or self.settings().snowflake.slice_rows


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    return {SNOWFLAKE_RESOURCE_KEY: snowflake_resource(settings), SERVED_RESOURCE_KEY: ServedDataResource()}
