"""room held in a swarm's storage quota by writes in progress

``storage_reservations`` holds, per write in progress (a result file, an upload, a saved
result), the bytes it may still add to its swarm's storage; the quota counts them beside
the stored artifacts and results, so concurrent writes cannot each take the same room.

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


def downgrade() -> None:
    op.drop_index("ix_storage_reservations_swarm_id", table_name="storage_reservations")
    op.drop_table("storage_reservations")
