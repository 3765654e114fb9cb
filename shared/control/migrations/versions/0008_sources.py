"""where a registered table's rows come from: Snowflake, a DuckDB file or Parquet files; live tables

``source_kind`` (snowflake, duckdb, parquet), ``source_path`` (a file, folder, glob or
``s3://`` location) and ``source_table`` (the table inside a DuckDB file) say where a
registered table is read from; ``live`` marks a Snowflake table that is not copied (agents'
queries on it run in Snowflake). Existing rows are Snowflake tables, copied. ``live_usage``
counts the Snowflake seconds each swarm's pushed-down queries spent per UTC day.

Revision ID: 0008_sources
Revises: 0002_lifecycle
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_sources"
down_revision: str | None = "0006_served_objects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("registered_tables", sa.Column("source_kind", sa.String(16), nullable=False, server_default="snowflake"))
    op.add_column("registered_tables", sa.Column("source_path", sa.Text(), nullable=True))
    op.add_column("registered_tables", sa.Column("source_table", sa.String(512), nullable=True))
    op.add_column("registered_tables", sa.Column("live", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "live_usage",
        sa.Column("swarm_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("seconds", sa.Float(), nullable=False, server_default="0"),
        sa.Column("queries", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("live_usage")
    with op.batch_alter_table("registered_tables") as batch:
        batch.drop_column("live")
        batch.drop_column("source_table")
        batch.drop_column("source_path")
        batch.drop_column("source_kind")
