"""bytes of a query result's conversions, counted against its swarm's storage quota

A result fetched in another format (``GET /api/v1/queries/jobs/{id}/result?format=…``) is
converted once and the conversion kept beside the result until it expires; ``converted_bytes``
is the size of those conversions, so they count against the swarm's storage quota as the
result itself does (a compressed Parquet result can convert to a JSON file hundreds of times
its size).

Revision ID: 0009_result_conversions
Revises: 0008_sources
Create Date: 2026-12-07 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_result_conversions"
down_revision: str | None = "0008_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("query_jobs", sa.Column("converted_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("query_jobs") as batch:
        batch.drop_column("converted_bytes")
