"""room held in a swarm's storage quota by writes in progress, and conversions counted in it

``storage_reservations`` holds, per write in progress (a result file, an upload, a saved
result, a conversion), the bytes it may still add to its swarm's storage; the quota counts
them beside the stored artifacts and results, so concurrent writes cannot each take the
same room. ``query_jobs.converted_bytes`` is what a result's conversions (``?format=``)
keep beside it, counted in the quota with the result.

Revision ID: 0009_storage_reservations
Revises: 0008_sources
Create Date: 2026-12-07 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_storage_reservations"
down_revision: str | None = "0008_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storage_reservations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("swarm_id", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_storage_reservations_swarm_id", "storage_reservations", ["swarm_id"])
    op.add_column("query_jobs", sa.Column("converted_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("query_jobs") as batch:
        batch.drop_column("converted_bytes")
    op.drop_index("ix_storage_reservations_swarm_id", table_name="storage_reservations")
    op.drop_table("storage_reservations")
