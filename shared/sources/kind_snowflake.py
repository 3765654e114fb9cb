"""Snowflake tables: the registered names are the source's names (``shared/snowflake.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from shared import snowflake
from shared.identifiers import snowflake_reference
from shared.registry import RegisteredTable
from shared.settings import Settings
from shared.snowflake import SourceColumn, SourceTable


class SnowflakeKind:
    name = "snowflake"

    def check_location(self, reg: RegisteredTable, settings: Settings) -> None:
        return None  # the names are checked against INFORMATION_SCHEMA with the columns

    def connect(self, reg: RegisteredTable, settings: Settings) -> AbstractContextManager[Any]:
        return snowflake.connect(settings.snowflake)  # callers holding another endpoint pass their own connection

    def columns(self, con: Any, reg: RegisteredTable) -> list[SourceColumn]:
        return snowflake.table_columns(con, reg.database, reg.schema, reg.table)

    def list_tables(self, reg: RegisteredTable, settings: Settings) -> list[SourceTable]:
        with self.connect(reg, settings) as con:
            return snowflake.list_tables(con, reg.database, reg.schema)

    def change_signatures(
        self, regs: Sequence[RegisteredTable], settings: Settings, con: Any = None
    ) -> dict[tuple[str, str, str], str]:
        names = [(r.database, r.schema, r.table) for r in regs]
        if con is not None:
            return snowflake.change_signatures(con, names)
        with self.connect(regs[0], settings) as own:
            return snowflake.change_signatures(own, names)

    def describe(self, reg: RegisteredTable) -> str:
        return f"Snowflake {snowflake_reference(reg.database, reg.schema, reg.table)}"
